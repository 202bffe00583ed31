#!/usr/bin/env bash
# arbstream: a real Apache Kafka broker (KRaft, combined broker+controller), or a cluster
# of them, without Docker. Jars come from Maven Central (see pom.xml), each broker runs as
# a plain background JVM on 127.0.0.1.
#
# Usage: deploy/kafka/kafka.sh COMMAND
#   up | down | status | fetch
#   stop N | kill N | start N   one node of a cluster: SIGTERM, SIGKILL, start it again
#                               (its data kept); N counts from 1
#   acls ARGS...                Kafka's kafka-acls tool on this broker, as its super user
#                               in the secured mode (--bootstrap-server and
#                               --command-config are added)
#
# Environment (all optional):
#   KAFKA_PORT              broker port on 127.0.0.1 (default 9092); in a cluster node N
#                           listens on KAFKA_PORT + N - 1, and KAFKA_PORT names the cluster
#   KAFKA_NODES             brokers in the cluster `up` starts (default 1): 3 is a cluster
#                           with replication 3 and min.insync.replicas 2 for every
#                           internal topic (deploy/kafka/README.md)
#   KAFKA_CONTROLLER_PORT   KRaft controller port of a single node (default: a free port)
#   KAFKA_DATA_DIR          data dir (default <repo>/.kafka/<port>; a cluster's nodes in
#                           its node-N/)
#   KAFKA_KEEP_DATA=1       `down` keeps the data dir; `up` then reuses it
#   KAFKA_HEAP              heap flags (default "-Xmx512m -Xms256m"; in a cluster
#                           "-Xmx384m -Xms192m" per node)
#   KAFKA_GC_OPTS           garbage collector flags (default: G1 with 20 ms pause goal)
#   KAFKA_JVM_OPTS          extra JVM flags for the broker
#   KAFKA_REQUEST_LOG       a file: log every request the broker answers, with its
#                           times, there (benchmarks/request_log.py reads it; costs CPU)
#   KAFKA_EXTRA_CONFIG      extra server.properties lines (newline separated, override)
#   KAFKA_SECURITY          plaintext (default) or sasl_ssl: TLS, SCRAM users, ACLs
#                           enforced (deploy/kafka/security.sh says what it makes)
#   KAFKA_USERS             the secured mode's users (default: admin feed worker
#                           gateway faust nobody; admin is the super user)
#   KAFKA_START_TIMEOUT     seconds `up` waits for the broker (default 60)
#   KAFKA_STOP_TIMEOUT      seconds `down` waits after SIGTERM before SIGKILL (default 20)
#   ARBSTREAM_CACHE         jar cache (default ~/.cache/arbstream)
#   ARBSTREAM_TIMEOUT_FACTOR  multiplies both timeouts (default 1)
#   JAVA_HOME               java to use (default: java on PATH)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
POM="$SCRIPT_DIR/pom.xml"
TEMPLATE="$SCRIPT_DIR/server.properties.template"
LOG4J2="$SCRIPT_DIR/log4j2.xml"

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p;T;q' "$POM")
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka.sh: no <kafka.version> in $POM" >&2; exit 1; }
CACHE_DIR=${ARBSTREAM_CACHE:-$HOME/.cache/arbstream}
DIST_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIBS="$DIST_DIR/libs"
MARKER="$DIST_DIR/.fetched"

PORT=${KAFKA_PORT:-9092}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
FACTOR=${ARBSTREAM_TIMEOUT_FACTOR:-1}
START_TIMEOUT=$(awk -v t="${KAFKA_START_TIMEOUT:-60}" -v f="$FACTOR" 'BEGIN { printf "%d", t * f }')
STOP_TIMEOUT=$(awk -v t="${KAFKA_STOP_TIMEOUT:-20}" -v f="$FACTOR" 'BEGIN { printf "%d", t * f }')

# Marker arguments on the broker's command line: identify "our broker on port N" exactly
# (a cluster's node N is "our broker on its own port").
PORT_TAG_PREFIX="-Darbstream.kafka.port="
DIR_TAG_PREFIX="-Darbstream.kafka.datadir="
# File that marks a directory as an arbstream broker data dir (`down` only deletes those).
OWNER_FILE=".arbstream-kafka"
# File in a cluster's data dir: its size and its nodes' controller ports.
CLUSTER_FILE="cluster.env"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# shellcheck source=deploy/kafka/security.sh
. "$SCRIPT_DIR/security.sh"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

case "$PORT" in
'' | *[!0-9]*) die "KAFKA_PORT must be a number, got '$PORT'" ;;
esac

# ---------------------------------------------------------------------------------------------
# fetch

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() { [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(pom_digest)" && -d "$LIBS" ]]; }

cmd_fetch() {
    command -v mvn >/dev/null || die "mvn not found (needed once to download Kafka jars)"
    mkdir -p "$DIST_DIR"
    # serialise concurrent fetches (several `up`s at once); the subshell scopes the lock fd
    (
        exec 9>"$DIST_DIR/.lock"
        if command -v flock >/dev/null; then flock 9; fi
        fetch_locked
    )
}

fetch_locked() {
    if fetched; then
        log "Kafka $KAFKA_VERSION jars already in $LIBS"
        return 0
    fi
    local t0 tmp
    t0=$(now)
    tmp="$DIST_DIR/libs.tmp.$$"
    rm -rf "$tmp"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS ..."
    # (maven 3.8 -q still emits bare colour resets: strip escape sequences)
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2; then
        rm -rf "$tmp"
        die "mvn dependency:copy-dependencies failed"
    fi
    compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null || die "kafka jar missing in $tmp"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    pom_digest >"$MARKER"
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $(elapsed "$t0")s"
}

ensure_fetched() { fetched || cmd_fetch; }

# ---------------------------------------------------------------------------------------------
# process / port helpers

# true if something accepts TCP connections on 127.0.0.1:$1
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# arguments of pid $1, one per line
pid_args() { tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null || true; }

# true if pid $1 is alive (zombies count as dead) and is our broker on port $2
is_our_broker() {
    local pid=$1 port=$2 args state _
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    args=$'\n'$(pid_args "$pid")$'\n'
    [[ "$args" == *$'\n'"$PORT_TAG_PREFIX$port"$'\n'* && "$args" == *$'\n'kafka.Kafka$'\n'* ]] || return 1
    read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null || return 1
    [[ "$state" != "Z" ]]
}

# pid of our broker on port $2 (the pid file in dir $1 first, then the command line
# marker), or nothing
find_pid() {
    local pidfile="$1/kafka.pid" port=$2 pid f
    if [[ -f "$pidfile" ]]; then
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if is_our_broker "$pid" "$port"; then
            echo "$pid"
            return 0
        fi
    fi
    for f in $(grep -lzxF -- "$PORT_TAG_PREFIX$port" /proc/[0-9]*/cmdline 2>/dev/null || true); do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        if is_our_broker "$pid" "$port"; then
            echo "$pid"
            return 0
        fi
    done
    return 0
}

# data dir of a running broker (from its command line)
pid_data_dir() {
    pid_args "$1" | sed -n "s:^${DIR_TAG_PREFIX}::p;T;q"
}

default_data_dir() { echo "${KAFKA_DATA_DIR:-$REPO_ROOT/.kafka/$PORT}"; }

# free_port [TAKEN...]: a port nothing listens on, below the ephemeral range, not TAKEN
free_port() {
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [[ " $PORT $* " == *" $p "* ]] && continue
        if ! port_open "$p" && ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

random_cluster_id() {
    # Kafka cluster ids are 16 random bytes, URL-safe base64 without padding.
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ "$id" != -* ]] && echo "$id" && return 0 # a leading '-' would look like an option
    done
}

print_log() {
    local file=$1
    if [[ -f "$file" ]]; then
        log "----- $file (last ${KAFKA_LOG_TAIL:-300} lines) -----"
        tail -n "${KAFKA_LOG_TAIL:-300}" "$file" >&2
        log "----- end of $file -----"
    fi
}

# probe DATA_DIR PORT ID...: a real protocol check (Metadata + ApiVersions, Kafka's own
# tool) against 127.0.0.1:PORT: true when the brokers IDs are all in its metadata
probe() {
    local data_dir=$1 port=$2 cls=org.apache.kafka.tools.BrokerApiVersionsCommand out extra id
    shift 2
    [[ "$KAFKA_VERSION" == 3.* ]] && cls=kafka.admin.BrokerApiVersionsCommand
    mapfile -t extra < <(admin_command_config "$data_dir")
    out=$(timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$LOG4J2" -Darbstream.log.level=ERROR \
        -cp "$LIBS/*" "$cls" --bootstrap-server "127.0.0.1:$port" \
        ${extra[@]+"${extra[@]}"} 2>&1) || return 1
    for id in "$@"; do
        grep -q "(id: $id rack" <<<"$out" || return 1
    done
}

# ---------------------------------------------------------------------------------------------
# one node: its config, its storage, its JVM

# node_dir DATA_DIR NODES N: where node N keeps its data (a single node: the data dir)
node_dir() { if (($2 == 1)); then echo "$1"; else echo "$1/node-$3"; fi; }
node_port() { echo $((PORT + $1 - 1)); }

# render_config NODE_DIR N PORT VOTERS NODES CONTROLLER_PORT MTLS_PORT ADMIN_DIR
render_config() {
    local dir=$1 id=$2 port=$3 voters=$4 nodes=$5 cport=$6 mport=$7 admin_dir=$8
    local out="$dir/server.properties" esc replication=1 min_isr=1
    if ((nodes >= 3)); then
        replication=3
        min_isr=2
    elif ((nodes == 2)); then
        replication=2
    fi
    esc=$(printf '%s' "$dir/logs" | sed 's/[\\|&]/\\&/g')
    (
        umask 077 # the secured mode's PLAIN users have their passwords in it
        sed -e "s|@NODE_ID@|$id|g" -e "s|@VOTERS@|$voters|g" -e "s|@LOG_DIRS@|$esc|g" \
            -e "s|@REPLICATION@|$replication|g" -e "s|@MIN_ISR@|$min_isr|g" "$TEMPLATE"
        printf '\n# listeners (%s)\n' "$SECURITY"
        PORT=$port listener_config "$admin_dir" "$cport" "$mport"
    ) >"$out.tmp"
    if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
        printf '\n# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >>"$out.tmp"
    fi
    mv "$out.tmp" "$out"
}

# format NODE_DIR CLUSTER_ID [SCRAM ARGS...]: KRaft storage, when the dir has none
format_storage() {
    local dir=$1 cluster_id=$2
    shift 2
    [[ -f "$dir/logs/meta.properties" ]] && return 0
    # (its output lists the users' salted keys, never their passwords)
    if ! "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$LOG4J2" -Darbstream.log.level=WARN \
        -cp "$LIBS/*" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$dir/server.properties" "$@" >"$dir/format.log" 2>&1; then
        print_log "$dir/format.log"
        die "formatting KRaft storage in $dir/logs failed"
    fi
}

# launch NODE_DIR PORT HEAP: start the broker's JVM (no wait); its pid in NODE_DIR/kafka.pid
launch() {
    local dir=$1 port=$2 heap=$3
    # In a session of its own (setsid, where util-linux has it), so that signals sent to
    # the caller's process group (Ctrl-C, a closing terminal, `timeout`) do not reach the
    # broker: whoever started it stops it, last, with `down`.
    local detach=()
    if command -v setsid >/dev/null; then detach=(setsid); fi
    local request_log=()
    if [[ -n "${KAFKA_REQUEST_LOG:-}" ]]; then
        local rlog=$KAFKA_REQUEST_LOG
        [[ "$rlog" == /* ]] || rlog="$PWD/$rlog"
        mkdir -p "$(dirname "$rlog")" || die "KAFKA_REQUEST_LOG: cannot create the directory of $rlog"
        request_log=(-Darbstream.request.level=DEBUG "-Darbstream.request.log=$rlog")
    fi
    # shellcheck disable=SC2086 # word splitting of the flag variables is intended
    ${detach[@]+"${detach[@]}"} nohup "$JAVA" $heap \
        -server ${KAFKA_GC_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent} \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.shutdownHookEnabled=false \
        ${KAFKA_JVM_OPTS:-} ${request_log[@]+"${request_log[@]}"} \
        -Dlog4j2.configurationFile="$LOG4J2" \
        "$PORT_TAG_PREFIX$port" "$DIR_TAG_PREFIX$dir" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 </dev/null &
    echo "$!" >"$dir/kafka.pid"
}

# await NODE_DIR PORT PROBE_DIR ID...: until the broker launched in NODE_DIR listens and
# its metadata holds the brokers IDs; on failure print its log, kill it and die
await() {
    local dir=$1 port=$2 probe_dir=$3 pid deadline exec_deadline
    shift 3
    pid=$(cat "$dir/kafka.pid")
    deadline=$(($(date +%s) + START_TIMEOUT))
    # For a moment after the fork the child is still this script (then setsid, nohup):
    # it is only ours once its command line is the broker's.
    exec_deadline=$(($(date +%s) + 5))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            print_log "$dir/broker.log"
            die "Kafka broker exited during start-up (port $port)"
        fi
        if ! is_our_broker "$pid" "$port"; then
            if (($(date +%s) < exec_deadline)); then
                sleep 0.05
                continue
            fi
            print_log "$dir/broker.log"
            die "the process started for the broker is not a Kafka broker (port $port)"
        fi
        if port_open "$port" && probe "$probe_dir" "$port" "$@"; then
            return 0
        fi
        if (($(date +%s) >= deadline)); then
            print_log "$dir/broker.log"
            kill -KILL "$pid" 2>/dev/null || true
            die "Kafka broker not ready on 127.0.0.1:$port after ${START_TIMEOUT}s (killed)"
        fi
        sleep 0.2
    done
}

# halt NODE_DIR PORT SIGNAL: stop the broker on PORT (SIGTERM, then SIGKILL after the
# stop timeout; or SIGKILL at once), and wait until it has gone
halt() {
    local dir=$1 port=$2 signal=$3 pid deadline
    pid=$(find_pid "$dir" "$port")
    if [[ -z "$pid" ]]; then
        log "no Kafka broker running on 127.0.0.1:$port"
        return 0
    fi
    kill "-$signal" "$pid" 2>/dev/null || true
    deadline=$(($(date +%s) + STOP_TIMEOUT))
    while is_our_broker "$pid" "$port" && (($(date +%s) < deadline)); do sleep 0.1; done
    if is_our_broker "$pid" "$port"; then
        log "broker pid $pid ignored SIG$signal for ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while is_our_broker "$pid" "$port"; do sleep 0.1; done
    fi
    # the listener goes away with the process; wait briefly to be sure
    for _ in $(seq 50); do port_open "$port" || break; sleep 0.1; done
    rm -f "$dir/kafka.pid"
    log "Kafka on 127.0.0.1:$port stopped (SIG$signal, pid $pid)"
}

# ---------------------------------------------------------------------------------------------
# up / down / status, one node or a cluster

# the running broker's (or cluster's) data dir, or the default one
current_data_dir() {
    local dir pid
    dir=$(default_data_dir)
    pid=$(find_pid "$(node_dir "$dir" 1 1)" "$PORT")
    [[ -z "$pid" ]] && pid=$(find_pid "$dir/node-1" "$PORT")
    if [[ -n "$pid" ]]; then
        dir=$(pid_data_dir "$pid")
        [[ "$(basename "$dir")" == node-1 ]] && dir=$(dirname "$dir")
    fi
    echo "$dir"
}

# the size of the cluster whose data dir is $1 (1: a single broker)
cluster_nodes() {
    local nodes=1
    if [[ -f "$1/$CLUSTER_FILE" ]]; then nodes=$(sed -n 's/^NODES=//p' "$1/$CLUSTER_FILE"); fi
    echo "$nodes"
}

cmd_up() {
    local t0 data_dir nodes n dir port pid cports=() voters="" mport="" cluster_id heap scram=()
    t0=$(now)
    nodes=${KAFKA_NODES:-1}
    case "$nodes" in
    '' | *[!0-9]* | 0) die "KAFKA_NODES must be a number of nodes, got '$nodes'" ;;
    esac
    if secured && ((nodes > 1)); then die "KAFKA_SECURITY=sasl_ssl runs a single node"; fi
    data_dir=$(default_data_dir)
    pid=$(find_pid "$(node_dir "$data_dir" "$nodes" 1)" "$PORT")
    if [[ -n "$pid" ]]; then
        log "Kafka already running on 127.0.0.1:$PORT (pid $pid, data dir $(pid_data_dir "$pid"))"
        return 0
    fi
    for ((n = 1; n <= nodes; n++)); do
        port=$(node_port "$n")
        if port_open "$port"; then
            die "127.0.0.1:$port is already in use by another process (not an arbstream broker)"
        fi
    done
    command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or PATH)"
    ensure_fetched

    mkdir -p "$data_dir"
    data_dir=$(cd "$data_dir" && pwd)
    touch "$data_dir/$OWNER_FILE"

    # controller ports: explicit (one node), else those of a kept data dir if still free,
    # else free ones
    if ((nodes == 1)) && [[ -n "${KAFKA_CONTROLLER_PORT:-}" ]]; then
        cports=("$KAFKA_CONTROLLER_PORT")
    else
        for ((n = 1; n <= nodes; n++)); do
            local old=""
            dir=$(node_dir "$data_dir" "$nodes" "$n")
            if [[ -f "$dir/server.properties" ]]; then
                old=$(sed -n "s/^controller\.quorum\.voters=.*\b$n@127\.0\.0\.1:\([0-9]*\).*$/\1/p" "$dir/server.properties")
                if [[ -n "$old" ]] && port_open "$old"; then old=""; fi
            fi
            cports+=("${old:-$(free_port "${cports[@]}")}")
        done
    fi
    for ((n = 1; n <= nodes; n++)); do
        voters+="${voters:+,}$n@127.0.0.1:${cports[n - 1]}"
    done
    # the secured mode's mutual-TLS listener: the kept data dir's port if still free
    if secured; then
        if [[ -f "$data_dir/server.properties" ]]; then
            mport=$(sed -n 's/^listeners=.*MTLS:\/\/127\.0\.0\.1:\([0-9]*\).*$/\1/p' "$data_dir/server.properties")
            if [[ -n "$mport" ]] && port_open "$mport"; then mport=""; fi
        fi
        [[ -n "$mport" ]] || mport=$(free_port "${cports[@]}")
        if [[ ! -f "$data_dir/logs/meta.properties" || ! -f "$data_dir/tls/ca.pem" ]]; then
            [[ ! -f "$data_dir/logs/meta.properties" ]] ||
                die "$data_dir holds a plaintext broker's data: KAFKA_SECURITY=sasl_ssl needs a new data dir"
            make_tls "$data_dir"
            make_passwords "$data_dir"
        fi
        mapfile -t scram < <(scram_args "$data_dir")
    fi
    if ((nodes > 1)); then
        printf 'NODES=%s\nCONTROLLER_PORTS="%s"\n' "$nodes" "${cports[*]}" >"$data_dir/$CLUSTER_FILE"
        heap=${KAFKA_HEAP:--Xmx384m -Xms192m}
    else
        rm -f "$data_dir/$CLUSTER_FILE"
        heap=${KAFKA_HEAP:--Xmx512m -Xms256m}
    fi

    cluster_id=$(random_cluster_id)
    for ((n = 1; n <= nodes; n++)); do
        dir=$(node_dir "$data_dir" "$nodes" "$n")
        mkdir -p "$dir"
        render_config "$dir" "$n" "$(node_port "$n")" "$voters" "$nodes" "${cports[n - 1]}" "$mport" "$data_dir"
        # (a kept node's storage keeps its own cluster id)
        format_storage "$dir" "$cluster_id" ${scram[@]+"${scram[@]}"}
    done
    if secured; then write_client_files "$data_dir" "$mport"; fi
    for ((n = 1; n <= nodes; n++)); do
        launch "$(node_dir "$data_dir" "$nodes" "$n")" "$(node_port "$n")" "$heap"
    done
    # every node knows every other (a cluster is ready once its controllers have a
    # quorum and every broker has registered)
    local ids
    ids=$(seq -s ' ' 1 "$nodes")
    for ((n = 1; n <= nodes; n++)); do
        # shellcheck disable=SC2086 # the ids are words
        await "$(node_dir "$data_dir" "$nodes" "$n")" "$(node_port "$n")" "$data_dir" $ids
    done
    if ((nodes == 1)); then
        log "Kafka $KAFKA_VERSION up on 127.0.0.1:$PORT in $(elapsed "$t0")s" \
            "(controller 127.0.0.1:${cports[0]}, pid $(cat "$data_dir/kafka.pid"), data $data_dir, log $data_dir/broker.log)"
    else
        log "Kafka $KAFKA_VERSION cluster of $nodes up in $(elapsed "$t0")s: $(bootstrap "$nodes")" \
            "(controllers $voters; data $data_dir/node-N, logs $data_dir/node-N/broker.log)"
    fi
    if secured; then
        log "secured: SASL_SSL on 127.0.0.1:$PORT, mutual TLS on 127.0.0.1:$mport;" \
            "each user's client settings are in $data_dir/clients/"
    fi
}

# the bootstrap addresses of a cluster of $1 nodes
bootstrap() {
    local n out=""
    for ((n = 1; n <= $1; n++)); do out+="${out:+,}127.0.0.1:$(node_port "$n")"; done
    echo "$out"
}

cmd_down() {
    local t0 data_dir nodes n pids=()
    t0=$(now)
    data_dir=$(current_data_dir)
    nodes=$(cluster_nodes "$data_dir")
    # every node at once: each stops as the others do
    for ((n = 1; n <= nodes; n++)); do
        halt "$(node_dir "$data_dir" "$nodes" "$n")" "$(node_port "$n")" TERM &
        pids+=("$!")
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    ((nodes == 1)) || log "Kafka cluster of $nodes on 127.0.0.1:$PORT stopped in $(elapsed "$t0")s"
    if [[ "${KAFKA_KEEP_DATA:-0}" != "1" && -f "$data_dir/$OWNER_FILE" ]]; then
        rm -rf "$data_dir"
    fi
}

cmd_status() {
    local data_dir nodes n pid running=0 port
    data_dir=$(current_data_dir)
    nodes=$(cluster_nodes "$data_dir")
    for ((n = 1; n <= nodes; n++)); do
        port=$(node_port "$n")
        pid=$(find_pid "$(node_dir "$data_dir" "$nodes" "$n")" "$port")
        if [[ -n "$pid" ]]; then
            running=$((running + 1))
            if [[ -d "$data_dir/clients" ]]; then
                echo "running: Kafka $KAFKA_VERSION on 127.0.0.1:$port (secured: SASL_SSL; clients in $data_dir/clients) pid $pid data $data_dir"
            elif ((nodes == 1)); then
                echo "running: Kafka $KAFKA_VERSION on 127.0.0.1:$port pid $pid data $data_dir"
            else
                echo "running: node $n of $nodes, Kafka $KAFKA_VERSION on 127.0.0.1:$port pid $pid data $data_dir/node-$n"
            fi
        elif ((nodes > 1)); then
            echo "stopped: node $n of $nodes (127.0.0.1:$port)"
        fi
    done
    if ((running == 0)); then
        echo "not running: no Kafka broker on 127.0.0.1:$PORT"
        return 3
    fi
}

# node_command stop|kill|start N: one node of the running cluster
node_command() {
    local what=$1 n=${2:-} data_dir nodes dir port heap ids
    data_dir=$(current_data_dir)
    nodes=$(cluster_nodes "$data_dir")
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= nodes)) ||
        die "$what: a node number from 1 to $nodes, got '$n' (the cluster on 127.0.0.1:$PORT)"
    dir=$(node_dir "$data_dir" "$nodes" "$n")
    port=$(node_port "$n")
    case "$what" in
    stop) halt "$dir" "$port" TERM ;;
    kill) halt "$dir" "$port" KILL ;;
    start)
        if [[ -n "$(find_pid "$dir" "$port")" ]]; then
            log "node $n already runs on 127.0.0.1:$port"
            return 0
        fi
        port_open "$port" && die "127.0.0.1:$port is in use by another process"
        [[ -f "$dir/logs/meta.properties" ]] || die "node $n has no storage in $dir: run up"
        if ((nodes > 1)); then heap=${KAFKA_HEAP:--Xmx384m -Xms192m}; else heap=${KAFKA_HEAP:--Xmx512m -Xms256m}; fi
        local t0
        t0=$(now)
        launch "$dir" "$port" "$heap"
        ids=$n
        await "$dir" "$port" "$data_dir" "$ids"
        log "node $n up again on 127.0.0.1:$port in $(elapsed "$t0")s"
        ;;
    esac
}

cmd_acls() {
    local data_dir pid extra
    data_dir=$(current_data_dir)
    pid=$(find_pid "$(node_dir "$data_dir" "$(cluster_nodes "$data_dir")" 1)" "$PORT")
    [[ -n "$pid" ]] || die "no Kafka broker running on 127.0.0.1:$PORT"
    mapfile -t extra < <(admin_command_config "$data_dir")
    "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$LOG4J2" -Darbstream.log.level=WARN \
        -cp "$LIBS/*" org.apache.kafka.tools.AclCommand \
        --bootstrap-server "127.0.0.1:$PORT" ${extra[@]+"${extra[@]}"} "$@"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
fetch) cmd_fetch ;;
stop | kill | start) node_command "$1" "${2:-}" ;;
acls)
    shift
    cmd_acls "$@"
    ;;
*)
    echo "usage: $0 {up|down|status|fetch|stop N|kill N|start N|acls ARGS...}   (env: see header of $0)" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# arbstream: a real single-node Apache Kafka broker (KRaft, combined broker+controller)
# without Docker. Jars come from Maven Central (see pom.xml), the broker runs as a plain
# background JVM on 127.0.0.1:$KAFKA_PORT.
#
# Usage: deploy/kafka/kafka.sh {up|down|status|fetch|acls ARGS...}
#   acls ARGS...  Kafka's kafka-acls tool on this broker, as its super user in the
#                 secured mode (--bootstrap-server and --command-config are added)
#
# Environment (all optional):
#   KAFKA_PORT              broker port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT   KRaft controller port (default: a free port)
#   KAFKA_DATA_DIR          data dir (default <repo>/.kafka/<port>)
#   KAFKA_KEEP_DATA=1       `down` keeps the data dir; `up` then reuses it
#   KAFKA_HEAP              heap flags (default "-Xmx512m -Xms256m")
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

# Marker arguments on the broker's command line: identify "our broker on port N" exactly.
PORT_TAG="-Darbstream.kafka.port=$PORT"
DIR_TAG_PREFIX="-Darbstream.kafka.datadir="
# File that marks a directory as an arbstream broker data dir (`down` only deletes those).
OWNER_FILE=".arbstream-kafka"

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

# true if pid $1 is alive (zombies count as dead) and is our broker for $PORT
is_our_broker() {
    local pid=$1 args state _
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    args=$'\n'$(pid_args "$pid")$'\n'
    [[ "$args" == *$'\n'"$PORT_TAG"$'\n'* && "$args" == *$'\n'kafka.Kafka$'\n'* ]] || return 1
    read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null || return 1
    [[ "$state" != "Z" ]]
}

# pid of our broker on $PORT (pid file first, then the command line marker), or nothing
find_pid() {
    local pidfile="$1/kafka.pid" pid f
    if [[ -f "$pidfile" ]]; then
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if is_our_broker "$pid"; then
            echo "$pid"
            return 0
        fi
    fi
    for f in $(grep -lzxF -- "$PORT_TAG" /proc/[0-9]*/cmdline 2>/dev/null || true); do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        if is_our_broker "$pid"; then
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

free_port() {
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000)) # below the Linux ephemeral range
        [[ "$p" == "$PORT" ]] && continue
        if ! port_open "$p" && ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    die "no free controller port found"
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

# Real protocol check: Metadata + ApiVersions via Kafka's own CLI class.
probe() {
    local cls=org.apache.kafka.tools.BrokerApiVersionsCommand out extra
    [[ "$KAFKA_VERSION" == 3.* ]] && cls=kafka.admin.BrokerApiVersionsCommand
    mapfile -t extra < <(admin_command_config "$1")
    out=$(timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$LOG4J2" -Darbstream.log.level=ERROR \
        -cp "$LIBS/*" "$cls" --bootstrap-server "127.0.0.1:$PORT" \
        ${extra[@]+"${extra[@]}"} 2>&1) || return 1
    grep -q "127.0.0.1:$PORT (id: 1" <<<"$out"
}

# ---------------------------------------------------------------------------------------------
# up / down / status

render_config() {
    local data_dir=$1 cport=$2 mport=$3 out="$1/server.properties" esc
    esc=$(printf '%s' "$data_dir/logs" | sed 's/[\\|&]/\\&/g')
    (
        umask 077 # the secured mode's PLAIN users have their passwords in it
        sed -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@LOG_DIRS@|$esc|g" "$TEMPLATE"
        printf '\n# listeners (%s)\n' "$SECURITY"
        listener_config "$data_dir" "$cport" "$mport"
    ) >"$out.tmp"
    if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
        printf '\n# KAFKA_EXTRA_CONFIG\n%s\n' "$KAFKA_EXTRA_CONFIG" >>"$out.tmp"
    fi
    mv "$out.tmp" "$out"
}

cmd_up() {
    local t0 data_dir pid cport old_cport mport cfg blog deadline exec_deadline
    t0=$(now)
    data_dir=$(default_data_dir)
    pid=$(find_pid "$data_dir")
    if [[ -n "$pid" ]]; then
        log "Kafka already running on 127.0.0.1:$PORT (pid $pid, data dir $(pid_data_dir "$pid"))"
        return 0
    fi
    if port_open "$PORT"; then
        die "127.0.0.1:$PORT is already in use by another process (not an arbstream broker)"
    fi
    command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or PATH)"
    ensure_fetched

    mkdir -p "$data_dir"
    data_dir=$(cd "$data_dir" && pwd)
    touch "$data_dir/$OWNER_FILE"
    cfg="$data_dir/server.properties"
    blog="$data_dir/broker.log"

    # controller port: explicit, else the one of a kept data dir if still free, else any free
    cport=${KAFKA_CONTROLLER_PORT:-}
    if [[ -z "$cport" && -f "$cfg" ]]; then
        old_cport=$(sed -n 's/^controller\.quorum\.voters=1@127\.0\.0\.1:\([0-9]*\)$/\1/p' "$cfg")
        if [[ -n "$old_cport" ]] && ! port_open "$old_cport"; then cport=$old_cport; fi
    fi
    [[ -n "$cport" ]] || cport=$(free_port)
    # the secured mode's mutual-TLS listener: the kept data dir's port if still free
    mport=
    if secured; then
        if [[ -f "$cfg" ]]; then
            mport=$(sed -n 's/^listeners=.*MTLS:\/\/127\.0\.0\.1:\([0-9]*\).*$/\1/p' "$cfg")
            if [[ -n "$mport" ]] && port_open "$mport"; then mport=; fi
        fi
        while [[ -z "$mport" || "$mport" == "$cport" ]]; do mport=$(free_port); done
    fi

    local fresh=0 scram=()
    [[ -f "$data_dir/logs/meta.properties" ]] || fresh=1
    if secured && { ((fresh)) || [[ ! -f "$data_dir/tls/ca.pem" ]]; }; then
        [[ $fresh == 1 ]] || die "$data_dir holds a plaintext broker's data: KAFKA_SECURITY=sasl_ssl needs a new data dir"
        make_tls "$data_dir"
        make_passwords "$data_dir"
    fi
    render_config "$data_dir" "$cport" "$mport"

    if ((fresh)); then
        if secured; then mapfile -t scram < <(scram_args "$data_dir"); fi
        # (its output lists the users' salted keys, never their passwords)
        if ! "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
            -Dlog4j2.configurationFile="$LOG4J2" -Darbstream.log.level=WARN \
            -cp "$LIBS/*" kafka.tools.StorageTool format \
            -t "$(random_cluster_id)" -c "$cfg" ${scram[@]+"${scram[@]}"} \
            >"$data_dir/format.log" 2>&1; then
            print_log "$data_dir/format.log"
            die "formatting KRaft storage in $data_dir/logs failed"
        fi
    fi
    if secured; then write_client_files "$data_dir" "$mport"; fi

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
    ${detach[@]+"${detach[@]}"} nohup "$JAVA" ${KAFKA_HEAP:--Xmx512m -Xms256m} \
        -server ${KAFKA_GC_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent} \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.shutdownHookEnabled=false \
        ${KAFKA_JVM_OPTS:-} ${request_log[@]+"${request_log[@]}"} \
        -Dlog4j2.configurationFile="$LOG4J2" \
        "$PORT_TAG" "$DIR_TAG_PREFIX$data_dir" \
        -cp "$LIBS/*" kafka.Kafka "$cfg" >>"$blog" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$data_dir/kafka.pid"

    deadline=$(($(date +%s) + START_TIMEOUT))
    # For a moment after the fork the child is still this script (then setsid, nohup):
    # it is only ours once its command line is the broker's.
    exec_deadline=$(($(date +%s) + 5))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            print_log "$blog"
            die "Kafka broker exited during start-up (port $PORT)"
        fi
        if ! is_our_broker "$pid"; then
            if (($(date +%s) < exec_deadline)); then
                sleep 0.05
                continue
            fi
            print_log "$blog"
            die "the process started for the broker is not a Kafka broker (port $PORT)"
        fi
        if port_open "$PORT" && probe "$data_dir"; then
            break
        fi
        if (($(date +%s) >= deadline)); then
            print_log "$blog"
            kill -KILL "$pid" 2>/dev/null || true
            die "Kafka broker not ready on 127.0.0.1:$PORT after ${START_TIMEOUT}s (killed)"
        fi
        sleep 0.2
    done
    log "Kafka $KAFKA_VERSION up on 127.0.0.1:$PORT in $(elapsed "$t0")s" \
        "(controller 127.0.0.1:$cport, pid $pid, data $data_dir, log $blog)"
    if secured; then
        log "secured: SASL_SSL on 127.0.0.1:$PORT, mutual TLS on 127.0.0.1:$mport;" \
            "each user's client settings are in $data_dir/clients/"
    fi
}

cmd_down() {
    local t0 data_dir pid deadline running_dir
    t0=$(now)
    data_dir=$(default_data_dir)
    pid=$(find_pid "$data_dir")
    if [[ -n "$pid" ]]; then
        running_dir=$(pid_data_dir "$pid")
        [[ -n "$running_dir" ]] && data_dir=$running_dir
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$(($(date +%s) + STOP_TIMEOUT))
        while is_our_broker "$pid" && (($(date +%s) < deadline)); do sleep 0.1; done
        if is_our_broker "$pid"; then
            log "broker pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while is_our_broker "$pid"; do sleep 0.1; done
        fi
        # the listener goes away with the process; wait briefly to be sure
        for _ in $(seq 50); do port_open "$PORT" || break; sleep 0.1; done
        log "Kafka on 127.0.0.1:$PORT stopped (pid $pid) in $(elapsed "$t0")s"
    else
        log "no Kafka broker running on 127.0.0.1:$PORT"
    fi
    rm -f "$data_dir/kafka.pid"
    if [[ "${KAFKA_KEEP_DATA:-0}" != "1" && -f "$data_dir/$OWNER_FILE" ]]; then
        rm -rf "$data_dir"
    fi
}

cmd_status() {
    local data_dir pid
    data_dir=$(default_data_dir)
    pid=$(find_pid "$data_dir")
    if [[ -n "$pid" ]]; then
        data_dir=$(pid_data_dir "$pid")
        if [[ -d "$data_dir/clients" ]]; then
            echo "running: Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (secured: SASL_SSL; clients in $data_dir/clients) pid $pid data $data_dir"
        else
            echo "running: Kafka $KAFKA_VERSION on 127.0.0.1:$PORT pid $pid data $data_dir"
        fi
        return 0
    fi
    echo "not running: no Kafka broker on 127.0.0.1:$PORT"
    return 3
}

cmd_acls() {
    local data_dir pid extra
    data_dir=$(default_data_dir)
    pid=$(find_pid "$data_dir")
    [[ -n "$pid" ]] || die "no Kafka broker running on 127.0.0.1:$PORT"
    data_dir=$(pid_data_dir "$pid")
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
acls)
    shift
    cmd_acls "$@"
    ;;
*)
    echo "usage: $0 {up|down|status|fetch|acls ARGS...}   (env: see header of $0 / README.md)" >&2
    exit 2
    ;;
esac

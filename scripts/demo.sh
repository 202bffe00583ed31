#!/usr/bin/env bash
# `make demo`: the live system on one machine. Starts a Kafka broker on $KAFKA_PORT
# (default 9092) unless one of ours already runs there, runs `arbstream demo` (simulator,
# feeds, a worker and the terminal view), and stops the broker if it started it.
#   DEMO_BROKER=H:P  run on this broker instead (with the ARBSTREAM_KAFKA_* credentials
#                    of the environment, docs/deploy.md), and start none
#   DEMO_SECONDS=N   run N seconds, print the summary, exit 0 (default: until stopped)
#   DEMO_SUMMARY=F   also write the summary as JSON to F
#   DEMO_SPEED=X     scenario speed (default 10: the 17-minute scenario loops every ~100 s;
#                    200 for cny-holiday)
#   DEMO_SCENARIO=S  "dislocation" (default), "cny-holiday" (sessions, basis, delivery
#                    stress: its own config), "run-to-120" (price levels, a halt, an ETF
#                    premium: its own config), "generated" (endless random), or a JSONL file
#   DEMO_CONFIG=F    another config (default: the scenario's, deploy/demo/*.toml)
#   DEMO_LOG_DIR=D   where the components' logs go (default out/demo)
#   DEMO_ALERTS=1    also run Prometheus (http://127.0.0.1:9090) and an Alertmanager
#                    (http://127.0.0.1:9093) with the shipped rules and routes, each
#                    rule's `for` divided by the speed; the terminal and the page show
#                    the alerts that fire, the summary what was notified. Unpacks Debian's
#                    binaries into .tools/ first (`make prometheus-tools`; needs apt).
#                    DEMO_PROMETHEUS_PORT, DEMO_ALERTMANAGER_PORT move them.
#
# However it is stopped (Ctrl-C, SIGTERM or SIGHUP to make or to this script, `timeout N
# make demo`, the terminal closing), the demo is told to stop, this script waits for it,
# then stops the broker it started, last, and exits 128 + the signal's number. The demo
# and its components get SIGTERM from the kernel if their parent dies without a word
# (the parent-death signal), so nothing it started outlives it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
port=${KAFKA_PORT:-9092}
export KAFKA_PORT=$port

# `setpriv --pdeathsig` (util-linux) where it exists: the child gets SIGTERM when this
# script dies, even by SIGKILL.
orphan_guard=()
if command -v setpriv >/dev/null 2>&1; then
    orphan_guard=(setpriv --pdeathsig TERM --)
fi

started=0
demo_pid=
signalled=
cleanup() {
    if [[ -n $demo_pid ]] && kill -0 "$demo_pid" 2>/dev/null; then
        kill -TERM "$demo_pid" 2>/dev/null || true
        wait "$demo_pid" 2>/dev/null || true
    fi
    if [[ $started == 1 ]]; then deploy/kafka/kafka.sh down || true; fi
}
trap cleanup EXIT
on_signal() {
    signalled=$1
    if [[ -n $demo_pid ]]; then kill -TERM "$demo_pid" 2>/dev/null || true; fi
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

if [[ ${DEMO_ALERTS:-0} == 1 ]]; then
    # before the broker: a machine without apt stops here, having started nothing
    prometheus_dir=$(scripts/install-prometheus.sh | tail -1)
    alertmanager_dir=$(scripts/install-alertmanager.sh | tail -1)
fi
if [[ -n ${DEMO_BROKER:-} ]]; then
    # A broker of one's own (a company's cluster, say), with its ARBSTREAM_KAFKA_*
    # credentials in the environment: every component runs as that user.
    export ARBSTREAM_BROKER="kafka://${DEMO_BROKER#kafka://}"
    echo "demo: on the broker at $ARBSTREAM_BROKER (DEMO_BROKER)"
else
    if ! deploy/kafka/kafka.sh status >/dev/null 2>&1; then
        started=1
        deploy/kafka/kafka.sh up
    fi
    # A signal during the broker's start: the EXIT trap stops it.
    if [[ -n $signalled ]]; then exit "$signalled"; fi
    export ARBSTREAM_BROKER="kafka://127.0.0.1:$port"
fi
# A scenario by name (its config and a speed that shows it within a minute), or a file.
config=deploy/demo/silver.toml
speed=10
case ${DEMO_SCENARIO:-dislocation} in
dislocation) scenario=scenarios/dislocation-2026-01-30/ticks.jsonl ;;
cny-holiday)
    scenario=scenarios/cny-holiday-2026-02/ticks.jsonl
    config=deploy/demo/cny-holiday.toml
    speed=200 # Shanghai closes 30 min in, COMEX's delivery stress 2 h in (event time)
    ;;
run-to-120)
    scenario=scenarios/run-to-120-2026-01/ticks.jsonl
    config=deploy/demo/run-to-120.toml
    speed=60 # the hour in a minute: $100 at 4 s, $120 at 29 s, the halt at 39 s
    ;;
*) scenario=$DEMO_SCENARIO ;;
esac
args=(--config "${DEMO_CONFIG:-$config}" --speed "${DEMO_SPEED:-$speed}")
args+=(--log-dir "${DEMO_LOG_DIR:-out/demo}")
if [[ $scenario != generated ]]; then
    args+=(--scenario "$scenario")
fi
if [[ -n ${DEMO_SECONDS:-} ]]; then
    args+=(--seconds "$DEMO_SECONDS")
fi
if [[ -n ${DEMO_SUMMARY:-} ]]; then
    args+=(--summary "$DEMO_SUMMARY")
fi
if [[ ${DEMO_ALERTS:-0} == 1 ]]; then
    args+=(--alerts --prometheus-bin "$prometheus_dir/prometheus")
    args+=(--alertmanager-bin "$alertmanager_dir/alertmanager")
    args+=(--prometheus-port "${DEMO_PROMETHEUS_PORT:-9090}")
    args+=(--alertmanager-port "${DEMO_ALERTMANAGER_PORT:-9093}")
fi
# In the background, so that a signal runs its trap at once (bash runs traps only after
# a foreground command ends); `wait` returns early on a trapped signal, hence the loop.
# A background job of a script starts with SIGINT ignored; the demo installs its own
# handler, and the trap's SIGTERM reaches it in any case.
${orphan_guard[@]+"${orphan_guard[@]}"} .venv/bin/arbstream demo "${args[@]}" </dev/null &
demo_pid=$!
# A signal between the check above and here found no demo to pass itself on to.
if [[ -n $signalled ]]; then kill -TERM "$demo_pid" 2>/dev/null || true; fi
status=0
while true; do
    wait "$demo_pid" && status=0 || status=$?
    kill -0 "$demo_pid" 2>/dev/null || break
done
demo_pid=
exit "${signalled:-$status}"

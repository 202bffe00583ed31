#!/usr/bin/env bash
# `make demo`: the live system on one machine. Starts a Kafka broker on $KAFKA_PORT
# (default 9092) unless one of ours already runs there, runs `arbstream demo` (simulator,
# feeds, a worker and the terminal view), and stops the broker if it started it.
#   DEMO_SECONDS=N   run N seconds, print the summary, exit 0 (default: until Ctrl-C)
#   DEMO_SUMMARY=F   also write the summary as JSON to F
#   DEMO_SPEED=X     scenario speed (default 10: the 17-minute scenario loops every ~100 s)
#   DEMO_SCENARIO=F  another JSONL scenario, or "generated" for the endless random one
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
: "${SHARED:=$here/../shared}"
port=${KAFKA_PORT:-9092}
export KAFKA_PORT=$port

started=0
if ! deploy/kafka/kafka.sh status >/dev/null 2>&1; then
    deploy/kafka/kafka.sh up
    started=1
fi
cleanup() { if [[ $started == 1 ]]; then deploy/kafka/kafka.sh down || true; fi; }
trap cleanup EXIT

export ARBSTREAM_BROKER="kafka://127.0.0.1:$port"
args=(--config deploy/demo/silver.toml --speed "${DEMO_SPEED:-10}")
scenario=${DEMO_SCENARIO:-$SHARED/scenarios/dislocation-2026-01-30/ticks.jsonl}
if [[ $scenario != generated ]]; then
    args+=(--scenario "$scenario")
fi
if [[ -n ${DEMO_SECONDS:-} ]]; then
    args+=(--seconds "$DEMO_SECONDS")
fi
if [[ -n ${DEMO_SUMMARY:-} ]]; then
    args+=(--summary "$DEMO_SUMMARY")
fi
.venv/bin/arbstream demo "${args[@]}"

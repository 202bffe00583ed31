#!/usr/bin/env bash
# Run a command with a real Kafka broker: KAFKA_BOOTSTRAP when it is set (a broker
# someone else runs), otherwise a fresh broker on a free port that is stopped when the
# command ends, whether it passed or failed. Usage: scripts/with-kafka.sh CMD [ARGS...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
    exec "$@"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export KAFKA_PORT=$port
stop() { KAFKA_PORT=$port "$here/deploy/kafka/kafka.sh" down || true; }
trap stop EXIT
"$here/deploy/kafka/kafka.sh" up
export KAFKA_BOOTSTRAP="127.0.0.1:$port"
set +e
"$@"
status=$?
exit $status

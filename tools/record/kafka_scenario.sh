#!/usr/bin/env bash
# The Kafka scenario: kafkajs and confluent-kafka, each with its OpenTelemetry instrumentation,
# exporting to an OTLP/HTTP endpoint, on a Kafka-protocol broker.
#
# Usage: kafka_scenario.sh ENDPOINT
#   topic orders<RUN_SUFFIX> with 3 partitions;
#   group billing<RUN_SUFFIX>: service billing, two kafkajs members (billing-1 with eachBatch,
#     billing-2 with eachMessage): a work queue inside the group;
#   group audit<RUN_SUFFIX>: service audit, one confluent-kafka member that fails order-3 and
#     order-9: a broadcast across the groups;
#   checkout-js (kafkajs) produces order-1..6, checkout-py (confluent-kafka) order-7..12, one
#   message per produce request; once both groups processed all 12 the consumers stop (and
#   export); then checkout-js produces AFTER_STOP (default 0) more, order-13.., that nobody
#   reads: each group's lag is AFTER_STOP.
# Environment: KAFKA_BOOTSTRAP (HOST:PORT; default: a tansu of its own on a free port, from
#   tools/kafka/tansu.sh), RUN_SUFFIX, AFTER_STOP, SKIP_SETUP=1 (no setup.sh check).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
export OTEL_EXPORTER_OTLP_ENDPOINT=${1%/}
[ "${SKIP_SETUP:-0}" = 1 ] || "$HERE/setup.sh" --if-missing
AFTER_STOP=${AFTER_STOP:-0}
PY=${PY:-$HERE/.venv/bin/python}
TOTAL=12
DEADLINE_S=120

WORK=$(mktemp -d)
export KAFKA_STATE="$WORK"
PIDS=()
cleanup() {
  # On a failure the consumers may be stuck leaving a group (or the broker gone): no waiting.
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  TANSU=$("$ROOT/tools/kafka/tansu.sh" --if-missing)
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$WORK/tansu"
  (cd "$WORK/tansu" && exec env -u OTEL_EXPORTER_OTLP_ENDPOINT "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1) &
  PIDS+=($!)
  export KAFKA_BOOTSTRAP="127.0.0.1:$PORT"
fi

# Waits (up to the deadline) until the command succeeds.
wait_for() {
  local what=$1; shift
  local until=$((SECONDS + DEADLINE_S))
  until "$@"; do
    if [ $SECONDS -ge $until ]; then echo "kafka_scenario: timed out waiting for $what" >&2; exit 1; fi
    sleep 0.2
  done
}
count() { cat "$WORK/$1.count" 2>/dev/null || echo 0; }
assigned() { [ -s "$WORK/$1.assigned" ]; }
parts() { tr ',' '\n' <"$WORK/$1.assigned" | grep -c . || true; }
billing_split() {
  assigned billing-1 && assigned billing-2 && assigned audit &&
    [ $(($(parts billing-1) + $(parts billing-2))) = 3 ] && [ "$(parts audit)" = 3 ]
}
all_read() { [ $(($(count billing-1) + $(count billing-2))) -ge $TOTAL ] && [ "$(count audit)" -ge $TOTAL ]; }

node_run() { (cd "$HERE/node" && exec node orders_kafka.js "$@"); }
py_run() { (cd "$HERE/python" && exec "$PY" orders_kafka.py "$@"); }

wait_for "the broker" node_run setup
# Each consumer in a subshell that execs it: $! is the consumer's own pid, to signal.
(cd "$HERE/node" && exec node orders_kafka.js consume billing-1 batch) 2>"$WORK/billing-1.log" &
B1=$!; PIDS+=($B1)
(cd "$HERE/node" && exec node orders_kafka.js consume billing-2 message) 2>"$WORK/billing-2.log" &
B2=$!; PIDS+=($B2)
(cd "$HERE/python" && exec "$PY" orders_kafka.py consume) 2>"$WORK/audit.log" &
AU=$!; PIDS+=($AU)
wait_for "both groups' assignments" billing_split
node_run produce 1 6
py_run produce 7 6 2>"$WORK/checkout-py.log"
wait_for "every message read by both groups" all_read
for p in $B1 $B2 $AU; do kill -TERM "$p" 2>/dev/null || true; done
for p in $B1 $B2 $AU; do
  rc=0; wait "$p" || rc=$?
  # kafkajs traps SIGTERM itself: it leaves the group, then dies of the signal again (143).
  [ $rc = 0 ] || [ $rc = 143 ] || { echo "kafka_scenario: a consumer failed ($rc)" >&2; tail -n 20 "$WORK"/*.log >&2; exit 1; }
done
if [ "$AFTER_STOP" -gt 0 ]; then
  node_run produce $((TOTAL + 1)) "$AFTER_STOP"
fi
echo "kafka_scenario: $TOTAL messages read by billing and audit, $AFTER_STOP left unread" >&2

#!/usr/bin/env bash
# Re-records the OTLP fixtures under fixtures/otlp/<scenario>/ from the real
# OpenTelemetry SDKs talking to the local RabbitMQ.
#
# Usage: tools/record/record.sh [SCENARIO...]   (default: all scenarios)
#   SCENARIO: python-pika | python-pika-gzip | python-pika-global | python-aio-pika | python-celery | node-amqplib-json
#             | python-nats (NATS JetStream on $NATS_URL, default nats://127.0.0.1:4222; its
#               stream ORDERS is deleted again afterwards)
#             | python-pika-deadletter (in a virtual host of its own, switchyard-deadletter, made
#               and deleted here; the management API's answers go to fixtures/rabbitmq/deadletter/)
#             | kafka (kafka_scenario.sh: kafkajs and confluent-kafka on a tansu of its own)
# For every scenario: starts capture.py on a free 127.0.0.1 port, runs the
# scenario against it (run_scenarios.sh), stops capture, replaces
# fixtures/otlp/<scenario>/ with the captured requests and writes a decoded
# view to ${DUMP_DIR:-/tmp/fixture-dumps}/<scenario>.txt.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURES="$ROOT/fixtures/otlp"
DUMP_DIR=${DUMP_DIR:-/tmp/fixture-dumps}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(python-pika python-pika-gzip python-aio-pika python-celery node-amqplib-json)

"$HERE/setup.sh"
mkdir -p "$FIXTURES" "$DUMP_DIR"

WORK=$(mktemp -d)
CAPTURE_PID=""
cleanup() {
  if [ -n "$CAPTURE_PID" ]; then kill "$CAPTURE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

for s in "${SCENARIOS[@]}"; do
  out="$WORK/$s"
  mkdir -p "$out"
  rm -f "$WORK/port"
  python3 "$HERE/capture.py" 0 "$out" --port-file "$WORK/port" >/dev/null 2>"$WORK/$s.capture.log" &
  CAPTURE_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  [ -s "$WORK/port" ] || { echo "capture.py did not start" >&2; exit 1; }
  port=$(cat "$WORK/port")
  if [ "$s" = python-pika-deadletter ]; then
    # A virtual host of its own; the broker's answers are recorded while the consumers hold on.
    vhost=switchyard-deadletter
    curl -fsS -u guest:guest -X DELETE "http://127.0.0.1:15672/api/vhosts/$vhost" >/dev/null 2>&1 || true
    curl -fsS -u guest:guest -X PUT "http://127.0.0.1:15672/api/vhosts/$vhost" >/dev/null
    AMQP_VHOST=$vhost SHOP_BROKER_DIR="$WORK/$s-broker" NATS_CLEANUP=1 SKIP_SETUP=1 \
      "$HERE/run_scenarios.sh" "http://127.0.0.1:$port" "$s"
    curl -fsS -u guest:guest -X DELETE "http://127.0.0.1:15672/api/vhosts/$vhost" >/dev/null
    rm -rf "$ROOT/fixtures/rabbitmq/deadletter"
    mkdir -p "$ROOT/fixtures/rabbitmq/deadletter"
    cp "$WORK/$s-broker"/*.json "$ROOT/fixtures/rabbitmq/deadletter/"
  else
    NATS_CLEANUP=1 SKIP_SETUP=1 "$HERE/run_scenarios.sh" "http://127.0.0.1:$port" "$s"
  fi
  kill "$CAPTURE_PID"
  wait "$CAPTURE_PID" 2>/dev/null || true
  CAPTURE_PID=""
  if ! ls "$out"/0* >/dev/null 2>&1; then
    echo "no trace request captured for $s" >&2
    exit 1
  fi
  rm -rf "${FIXTURES:?}/$s"
  mkdir -p "$FIXTURES/$s"
  cp "$out"/* "$FIXTURES/$s/"
  "$HERE/.venv/bin/python" "$HERE/dump.py" "$FIXTURES/$s" > "$DUMP_DIR/$s.txt"
  echo "recorded $s: $(ls "$FIXTURES/$s" | grep -vc meta) request(s); decoded view: $DUMP_DIR/$s.txt" >&2
done

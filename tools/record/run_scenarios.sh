#!/usr/bin/env bash
# Runs the messaging scenarios against an OTLP/HTTP endpoint (base URL; the
# SDK exporters append /v1/traces). RabbitMQ must be reachable (AMQP_HOST /
# AMQP_PORT, default 127.0.0.1:5672, guest/guest).
#
# Usage: run_scenarios.sh ENDPOINT [SCENARIO...]
#   SCENARIO: python-pika | python-pika-gzip | python-aio-pika | python-celery | node-amqplib-json  (default: all)
#             python-pika-retry: pika's nacks with requeue and a dead-letter queue (shop.py's
#               retry part); never run by default
#             python-pika-deadletter: a queue with a dead-letter exchange, a consumer that rejects
#               some messages and requeues one, and a consumer of the dead-letter queue (shop.py's
#               deadletter part; SHOP_BROKER_DIR=DIR also writes the management API's answers
#               there); never run by default
#             python-nats: NATS JetStream (nats-py, trace context in message headers) on $NATS_URL
#               (default nats://127.0.0.1:4222); never run by default
#             kafka: kafkajs and confluent-kafka on a Kafka-protocol broker (kafka_scenario.sh;
#               $KAFKA_BOOTSTRAP, default a tansu of its own); never run by default
#             python-pika-global: the broadcast and rpc parts of python-pika with the pika
#               instrumentation installed globally (nested publish spans of one message)
#             python-pika-rotel: the broadcast part of python-pika exporting to an intermediate
#               collector (rotel, OTLP/HTTP in) that forwards to ENDPOINT; never run by default
#             python-aio-pika-grpc | python-celery-grpc | node-amqplib-grpc: the same over OTLP/gRPC to
#             $OTLP_GRPC_ENDPOINT (e.g. http://127.0.0.1:4317; never run by default)
# Environment: OTLP_GRPC_ENDPOINT (for the -grpc scenarios), RUN_SUFFIX
# (appended to every exchange/queue name), SKIP_SETUP=1 (do not check/install
# the venv and node_modules), AMQP_VHOST (the RabbitMQ virtual host, default /),
# HOLD_FILE (the consumers export their spans once every message is processed
# and stay connected until this file exists: broker discovery sees them too).
#
# Example: tools/record/run_scenarios.sh http://127.0.0.1:4318 python-pika
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ]; then
  sed -n '2,25p' "$0" >&2
  exit 2
fi
ENDPOINT=${1%/}
shift
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -eq 0 ] && SCENARIOS=(python-pika python-pika-gzip python-aio-pika python-celery node-amqplib-json)

[ "${SKIP_SETUP:-0}" = 1 ] || "$HERE/setup.sh" --if-missing

# A clean OTel environment: only what each scenario sets below.
for v in $(compgen -e | grep '^OTEL_' || true); do unset "$v"; done
export OTEL_EXPORTER_OTLP_ENDPOINT="$ENDPOINT"

for s in "${SCENARIOS[@]}"; do
  echo "== scenario $s -> $ENDPOINT" >&2
  case "$s" in
    python-pika)
      SHOP_PARTS=broadcast,workqueue,rpc,audit "$HERE/.venv/bin/python" "$HERE/python/shop.py"
      ;;
    python-pika-gzip)
      OTEL_EXPORTER_OTLP_COMPRESSION=gzip SHOP_PARTS=broadcast "$HERE/.venv/bin/python" "$HERE/python/shop.py"
      ;;
    python-pika-retry)
      SHOP_PARTS=retry "$HERE/.venv/bin/python" "$HERE/python/shop.py"
      ;;
    python-pika-deadletter)
      SHOP_PARTS=deadletter "$HERE/.venv/bin/python" "$HERE/python/shop.py"
      ;;
    python-aio-pika)
      "$HERE/.venv/bin/python" "$HERE/python/quotes.py"
      ;;
    python-celery)
      "$HERE/.venv/bin/python" "$HERE/python/press.py"
      ;;
    python-aio-pika-grpc | python-celery-grpc)
      [ -n "${OTLP_GRPC_ENDPOINT:-}" ] || { echo "$s needs OTLP_GRPC_ENDPOINT" >&2; exit 2; }
      script=quotes.py
      [ "$s" = python-celery-grpc ] && script=press.py
      OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="$OTLP_GRPC_ENDPOINT" \
        "$HERE/.venv/bin/python" "$HERE/python/$script"
      ;;
    node-amqplib-json)
      (cd "$HERE/node" && node stock.js)
      ;;
    python-nats)
      (cd "$HERE/python" && "$HERE/.venv/bin/python" orders_nats.py)
      ;;
    kafka)
      AFTER_STOP=${AFTER_STOP:-2} SKIP_SETUP=1 "$HERE/kafka_scenario.sh" "$ENDPOINT"
      ;;
    python-pika-global)
      SHOP_INSTRUMENT=global SHOP_PARTS=broadcast,rpc "$HERE/.venv/bin/python" "$HERE/python/shop.py"
      ;;
    python-pika-rotel)
      SHOP_PARTS=broadcast "$HERE/rotel.sh" "$ENDPOINT" "$HERE/.venv/bin/python" "$HERE/python/shop.py"
      ;;
    node-amqplib-grpc)
      [ -n "${OTLP_GRPC_ENDPOINT:-}" ] || { echo "$s needs OTLP_GRPC_ENDPOINT" >&2; exit 2; }
      (cd "$HERE/node" && OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="$OTLP_GRPC_ENDPOINT" node stock.js)
      ;;
    *)
      echo "unknown scenario: $s" >&2
      exit 2
      ;;
  esac
done

#!/usr/bin/env bash
# Installs the recording toolchain: tools/record/.venv (pinned Python SDK,
# pika, aio-pika, Celery and confluent-kafka instrumentations, OTLP/HTTP and gRPC exporters,
# nats-py, rotel) and tools/record/node/node_modules (npm ci from the committed package-lock.json:
# the Node SDK scenarios, and @asyncapi/specs with ajv for validate-asyncapi.js).
# Usage: setup.sh [--if-missing]   (--if-missing: skip parts already installed)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IF_MISSING=0
[ "${1:-}" = "--if-missing" ] && IF_MISSING=1

if [ ! -x "$HERE/.venv/bin/python" ]; then
  python3 -m venv "$HERE/.venv"
  IF_MISSING=0
fi
if [ "$IF_MISSING" = 0 ] || ! "$HERE/.venv/bin/python" -c 'import opentelemetry.instrumentation.pika, opentelemetry.instrumentation.aio_pika, opentelemetry.instrumentation.celery, opentelemetry.exporter.otlp.proto.http, opentelemetry.exporter.otlp.proto.grpc, pika, aio_pika, celery, nats, rotel, opentelemetry.instrumentation.confluent_kafka, confluent_kafka' 2>/dev/null; then
  "$HERE/.venv/bin/pip" install -q -r "$HERE/python/requirements.txt"
fi
if [ "$IF_MISSING" = 0 ] || [ ! -d "$HERE/node/node_modules/@opentelemetry/instrumentation-amqplib" ] || [ ! -d "$HERE/node/node_modules/@opentelemetry/exporter-trace-otlp-grpc" ] || [ ! -d "$HERE/node/node_modules/@opentelemetry/instrumentation-kafkajs" ] || [ ! -d "$HERE/node/node_modules/@asyncapi/specs" ] || [ ! -d "$HERE/node/node_modules/ajv-formats" ]; then
  (cd "$HERE/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

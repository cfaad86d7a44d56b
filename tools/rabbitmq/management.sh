#!/usr/bin/env bash
# Enables RabbitMQ's management plugin (the HTTP API that `--discover rabbitmq=...` polls and
# tests/discover_rabbitmq.rs uses) on the machine's RabbitMQ, then waits, at most 60 s, until
# http://127.0.0.1:15672/api/overview answers. Idempotent; run as root.
set -euo pipefail
URL=http://127.0.0.1:15672/api/overview
if ! curl -fsS -m 2 -u guest:guest "$URL" >/dev/null 2>&1; then
  rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
fi
for _ in $(seq 1 120); do
  if curl -fsS -m 2 -u guest:guest "$URL" >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "rabbitmq management API did not answer on $URL within 60 s" >&2
exit 1

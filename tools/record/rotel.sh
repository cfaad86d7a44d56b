#!/usr/bin/env bash
# Runs a command whose OpenTelemetry SDK exports through an intermediate collector: rotel
# (the pinned `rotel` package's agent, from tools/record/.venv) receives OTLP on free loopback
# ports and forwards every trace to ENDPOINT over OTLP/HTTP protobuf (gzip), the way a
# collector in front of Switchyard would. Stops rotel (SIGTERM, which flushes its batches)
# when the command ends, and exits with the command's status.
#
# Usage: rotel.sh ENDPOINT COMMAND [ARG...]
#   ENDPOINT: the OTLP/HTTP base URL rotel forwards to (e.g. http://127.0.0.1:4318)
# The command runs with OTEL_EXPORTER_OTLP_ENDPOINT set to rotel's OTLP/HTTP receiver.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 2 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
ENDPOINT=${1%/}
shift
PY="$HERE/.venv/bin/python"
AGENT=$("$PY" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
LOG=$(mktemp)
"$AGENT" start \
  --otlp-http-endpoint "127.0.0.1:$HTTP_PORT" --otlp-grpc-endpoint "127.0.0.1:$GRPC_PORT" \
  --exporter otlp --otlp-exporter-endpoint "$ENDPOINT" --otlp-exporter-protocol http \
  --batch-timeout 100ms >"$LOG" 2>&1 &
ROTEL=$!
stop_rotel() {
  kill -TERM "$ROTEL" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$ROTEL" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$ROTEL" 2>/dev/null || true
  wait "$ROTEL" 2>/dev/null || true
}
trap 'stop_rotel; rm -f "$LOG"' EXIT
ready=0
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then ready=1; break; fi
  kill -0 "$ROTEL" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "rotel did not start:" >&2
  cat "$LOG" >&2
  exit 1
fi
echo "rotel $("$AGENT" version) on 127.0.0.1:$HTTP_PORT -> $ENDPOINT" >&2
status=0
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$HTTP_PORT" "$@" || status=$?
exit "$status"

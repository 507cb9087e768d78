#!/usr/bin/env bash
# Make sure `$1 -m venv` works (Debian splits venv into python3-venv).
set -euo pipefail
PY="${1:-python3}"
if ! command -v "$PY" >/dev/null; then
  echo "error: $PY not found; install Python 3.11+ (apt-get install python3 python3-venv)" >&2; exit 1
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "error: Python 3.11 or newer is required" >&2; exit 1; }
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv
fi

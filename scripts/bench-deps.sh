#!/usr/bin/env bash
# Debian packages the benchmarks use: wrk (the HTTP load generator; written in C, so the client takes little of
# the 2 cores it shares with the server; without it bench/http.py falls back to the Python bench.loadgen).
set -euo pipefail
need=()
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

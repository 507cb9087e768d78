#!/usr/bin/env bash
# Debian packages the tests need: chromium (browser tests), redis-server (a throwaway Redis when none runs),
# curl and jq (the README's curl walkthrough is run as written).
# PostgreSQL is installed and started by scripts/ci-services.sh when no server answers.
set -euo pipefail
need=()
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
command -v curl >/dev/null || need+=(curl)        # the README's API walkthrough runs as a test
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

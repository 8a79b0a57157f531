#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs the whole suite.
# Usage: ./run-tests.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")"

# System tools the end-to-end tests drive (real capture on lo, a real reverse proxy, a peer
# dissector). Installed only when missing; needs root (CI and the dev machines are root).
need=()
for tool in tcpdump:tcpdump tshark:tshark nginx:nginx curl:curl editcap:wireshark-common \
    openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if ((${#need[@]})) && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
exec python3 -m pytest "$@"

#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs the whole suite.
# Usage: ./run-tests.sh [pytest arguments]
#
# Python packages go into a virtual environment inside the repository (.venv/, or $VENV): a
# stock Debian/Ubuntu Python refuses `pip install` into the system interpreter (PEP 668,
# "externally-managed-environment"), and a venv per checkout leaves every other Python on the
# machine as it was. A second run reuses the venv and reinstalls only when the package's
# metadata or compiled source changed.
set -euo pipefail
cd "$(dirname "$0")"
venv=$(realpath -m "${VENV:-.venv}")
python=${PYTHON:-python3}

# Waits for the package manager instead of failing when another install holds its lock
# (unattended-upgrades at boot, another session): apt-get waits for dpkg's lock itself
# (DPkg::Lock::Timeout), and `apt-get update`'s lists lock is retried, both for at most
# APT_LOCK_WAIT seconds.
apt_wait=${APT_LOCK_WAIT:-600}
apt_get() {
  local deadline=$((SECONDS + apt_wait)) out
  while :; do
    if out=$(apt-get -o DPkg::Lock::Timeout="$apt_wait" "$@" 2>&1 >/dev/null); then
      return 0
    fi
    if ! grep -qiE 'could not get lock|unable to lock|is another process using it' <<<"$out" \
        || ((SECONDS >= deadline)); then
      printf '%s\n' "$out" >&2
      return 1
    fi
    echo "run-tests.sh: waiting for the package manager's lock ($*)" >&2
    sleep 5
  done
}

# System tools the end-to-end tests drive (real capture on lo, real reverse proxies: nginx,
# HAProxy (tests/test_haproxy_live.py) and Apache httpd (tests/test_apache_live.py starts its
# own apache2 -X, never the service); a real forward proxy, Squid (tests/test_squid_live.py
# starts its own squid -N from its own configuration on a free port of 127.0.0.1, never the
# service Debian's package may start on 3128); a peer dissector, headless Chromium and its driver for
# the HTML report, Node (whose TLS errors
# tests/test_tls_node_live.py reads) and its ws library, Go and gorilla/websocket's sources
# (tests/test_gorilla_nodews_live.py builds a gorilla server and client offline from them),
# the compressors tcpdump -z runs on rotated captures), libpcap (what `live -f`
# compiles capture filters with, through scapy) and python3-venv (Debian's python3 has no
# `-m venv` without it). Installed only when missing and running as root (CI and the dev
# machines are root).
need=()
for tool in tcpdump:tcpdump tshark:tshark nginx:nginx haproxy:haproxy apache2:apache2 \
            squid:squid curl:curl \
            editcap:wireshark-common \
            chromium:chromium chromedriver:chromium-driver openssl:openssl xz:xz-utils \
            bzip2:bzip2 zstd:zstd lz4:lz4 node:nodejs go:golang-go; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
[ -d /usr/share/nodejs/ws ] || need+=(node-ws)
[ -d /usr/share/gocode/src/github.com/gorilla/websocket ] \
  || need+=(golang-github-gorilla-websocket-dev)
ldconfig -p 2>/dev/null | grep -q 'libpcap\.so\.0\.8 ' || need+=(libpcap0.8)
# tests/test_quickstart.py runs the README's first command with the system's /usr/bin/python3.
for py in "$python" /usr/bin/python3; do
  if command -v "$py" >/dev/null && ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    need+=(python3-venv)
    break
  fi
done
if ((${#need[@]})); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "run-tests.sh: installing ${need[*]}" >&2
    apt_get update -qq
    apt_get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "run-tests.sh: missing ${need[*]} (not root or no apt-get: the tests that need" \
         "them are skipped)" >&2
  fi
fi

# The venv: created once (a half-made one, from a python3 without venv support, is made
# again), then reused.
if [ ! -x "$venv/bin/pip" ]; then
  [ -f "$venv/pyvenv.cfg" ] && rm -rf "$venv"  # a half-made one
  "$python" -m venv "$venv"
fi
# Editable, so the tests run this tree; the compiled fast path is built beside its source.
# Installed again when the package's metadata or compiled source (the .pyx and the .pxi files
# it includes: a changed .pxi alone left a stale module) changed, when the venv's `analyzer` is
# not this tree (the README's first command installs a copy), or when the compiled module is
# missing where a compiler could build it.
stamp="$venv/.installed"
here=$(cd / && "$venv/bin/python" -c 'import analyzer; print(analyzer.__file__)' 2>/dev/null \
       || true)
if [ ! -f "$stamp" ] || [ "$here" != "$(pwd -P)/analyzer/__init__.py" ] \
    || [ -n "$(find setup.cfg setup.py pyproject.toml analyzer/decode/_fastpath.pyx \
               analyzer/decode/*.pxi -newer "$stamp" 2>/dev/null)" ] \
    || { command -v cc >/dev/null && ! ls analyzer/decode/_fastpath.*.so >/dev/null 2>&1; }; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

# The venv's python first on PATH, as if activated, for anything a test runs by name.
export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"
exec "$venv/bin/python" -m pytest "$@"

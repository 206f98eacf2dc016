#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine and runs them all:
# tox envs unit (no servers, no subprocesses), e2e (real servers on loopback,
# SQLite), postgis (a throwaway PostgreSQL 15 + PostGIS 3 cluster that the tests
# start as the `postgres` user) and lint, each with pytest-xdist on every core.
# Run as root (or with sudo available). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(python3 python3-venv python3-pip postgresql-15 postgresql-15-postgis-3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

venv=.venv-test
[ -x "$venv/bin/tox" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q tox; }
started=$(date +%s)
status=0
# tox env `all`: the commands of the envs unit, e2e, postgis and lint in one
# virtualenv, so the package and its dependencies are installed once (four envs
# would install them four times, about 35 s each).
"$venv/bin/tox" -e all -- "$@" || status=$?
echo "test command finished in $(( $(date +%s) - started )) s (tox prints each env's time above), exit $status"
exit "$status"

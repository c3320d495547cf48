#!/usr/bin/env bash
# Bootstrap a fresh Debian/Ubuntu machine for pmsops: system packages, .venv, the package.
# Idempotent and quiet when everything is already there. Needs root or sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

sudo_cmd() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v make >/dev/null 2>&1 || need+=(make)
# the production-variant tests: PgBouncer in front of the test PostgreSQL, openssl next to TLS redis-server/PostgreSQL
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# the report tests open report.html in a real headless browser
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v "$PYTHON" >/dev/null 2>&1 || need+=(python3)
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then need+=(python3-venv); fi
# a real Docker engine for the container tests (started privately by the tests, no registry needed)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
# the exporter's tests: promtool checks and unit-tests the alert rules; a private prometheus scrapes the exporter
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# the API-behind-a-proxy tests and pmsops sandbox up --proxy: a real nginx terminating TLS on loopback
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
# jq: the CI gate the tests run on every --json output
command -v jq >/dev/null 2>&1 || need+=(jq)
if [ "${#need[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need[*]}"
  sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"bootstrap: pmsops needs Python >= 3.11, this is {sys.version.split()[0]} (set PYTHON=python3.11)")
PY

# The locked versions (constraints.txt) unless LATEST=1: then the newest that pyproject.toml's
# ranges allow (make test-latest, in its own venv), so drift is found on purpose.
stamp="$VENV/.pmsops-installed"
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
mode=locked; [ "${LATEST:-0}" = 1 ] && mode=latest
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] || [ "$(cat "$stamp")" != "$mode" ]; then
  # pip's warnings about index locations this machine's pip configuration names are noise here
  if [ "${LATEST:-0}" = 1 ]; then
    echo "bootstrap: installing pmsops with dev extras into $VENV: the newest versions pyproject.toml allows"
    "$VENV/bin/python" -m pip install -q --upgrade pip 2>/dev/null >/dev/null
    "$VENV/bin/python" -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev]' 2> >(grep -v "^WARNING: Location" >&2)
  else
    echo "bootstrap: installing pmsops with dev extras into $VENV: the versions in constraints.txt"
    "$VENV/bin/python" -m pip install -q --upgrade pip 2>/dev/null >/dev/null
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev]' 2> >(grep -v "^WARNING: Location" >&2)
  fi
  echo "$mode" > "$stamp"
fi

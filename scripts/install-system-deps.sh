#!/usr/bin/env bash
# Installs the system packages gridgis needs, only where they are missing (Debian/Ubuntu, apt).
# Usage: scripts/install-system-deps.sh [--browser]
#   --browser  also Chromium, for the browser tests (`make test`).
# With DATABASE_URL set, PostgreSQL/PostGIS are not installed: that server is used instead.
set -euo pipefail

want=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "${DATABASE_URL:-}${GRIDGIS_DATABASE_URL:-}" ]; then
  if [ -z "$(pg_bindir)" ] || [ ! -x "$(pg_bindir)/initdb" ]; then
    want+=(postgresql)
  fi
fi
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || want+=(python3-venv)
have_cmd npm || want+=(npm)
# As root the local cluster runs as an unprivileged user, through runuser.
[ "$(id -u)" != 0 ] || have_cmd runuser || want+=(util-linux)
if [ "${1:-}" = "--browser" ]; then
  have_cmd chromium || want+=(chromium)
fi

postgis_missing() {
  [ -z "${DATABASE_URL:-}${GRIDGIS_DATABASE_URL:-}" ] || return 1
  local v; v=$(basename "$(dirname "$(pg_bindir)")")
  [ ! -f "/usr/share/postgresql/$v/extension/postgis.control" ]
}

apt_install() {
  if ! have_cmd apt-get; then
    echo "gridgis: missing system packages: $*" >&2
    echo "gridgis: this is not a Debian/Ubuntu system; see README 'Other systems'" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "gridgis: installing system packages: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ${#want[@]} -gt 0 ]; then
  apt_install "${want[@]}"
fi
if postgis_missing; then
  v=$(basename "$(dirname "$(pg_bindir)")")
  apt_install "postgresql-$v-postgis-3"
fi

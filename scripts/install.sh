#!/usr/bin/env bash
# Installs everything Petri needs on Debian 12 (as root), builds it, and starts
# `petri server` with its embedded defaults in the background (log: .petri/server.log).
# --no-start: install and build only (CI).
set -euo pipefail
cd "$(dirname "$0")/.."

start=1
[[ "${1:-}" == "--no-start" ]] && start=0

echo "==> system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  bubblewrap haproxy git nftables iproute2 util-linux e2fsprogs ca-certificates python3 make g++ wrk \
  python3-venv python3-pip python3-setuptools python3-wheel python3-flask python3-django \
  python3-whitenoise gunicorn \
  postgresql postgresql-client mariadb-server mariadb-client redis-server redis-tools \
  python3-psycopg2 python3-pymysql python3-redis python3-rq slapd ldap-utils \
  chromium postfix prometheus >/dev/null
# Managed add-on servers (PostgreSQL, MariaDB, Redis) run as this system user, never root.
if ! id petri-addons >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin petri-addons
fi
# Node.js 20+: keep the one installed (it may come from another apt source); else Debian's.
if ! command -v node >/dev/null; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if (( node_major < 20 )); then
  echo "Petri needs Node.js 20 or newer; this machine has $(node --version). Install Node.js 20+ and run this again." >&2
  exit 1
fi

echo "==> npm dependencies"
npm ci --no-audit --no-fund

echo "==> build"
npm run build --silent
# `petri` on the PATH: a link to this checkout's build, so a rebuild is picked up as is.
chmod 0755 dist/main.js
ln -sfn "$PWD/dist/main.js" /usr/local/bin/petri

if [[ "$start" == 1 ]]; then
  mkdir -p .petri
  if [[ -f .petri/server.pid ]] && kill -0 "$(cat .petri/server.pid)" 2>/dev/null; then
    echo "==> petri server already runs (pid $(cat .petri/server.pid))"
  else
    echo "==> starting petri server (log: .petri/server.log)"
    nohup node dist/main.js server >>.petri/server.log 2>&1 &
    echo $! >.petri/server.pid
    for _ in $(seq 1 100); do
      grep -q 'Petri is running' .petri/server.log 2>/dev/null && break
      kill -0 "$(cat .petri/server.pid)" 2>/dev/null || { tail -20 .petri/server.log; exit 1; }
      sleep 0.2
    done
    tail -n 3 .petri/server.log
  fi
  echo "==> log in with: petri login --url http://127.0.0.1:7070 --token \$(cat .petri/admin.token)"
fi

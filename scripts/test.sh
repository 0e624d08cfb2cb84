#!/usr/bin/env bash
# The whole test suite: typecheck, lint (format, rules, import arrows), then every test
# against the real HAProxy, bubblewrap and cgroups. Needs scripts/install.sh first.
#
# Two groups, so CI stays well under its 20 minutes on 2 cores: tests that start no sandbox
# and no router of their own (API, CLI, domain, identity ...: temp dirs and free ports only)
# run two files at a time; those that start sandboxes, networks, HAProxy or add-on servers
# run one file at a time, since their timings (boot timeouts, zero-downtime swaps, sleep
# and wake) are what they assert about.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d node_modules ]] || { echo "node_modules missing: run bash scripts/install.sh first" >&2; exit 1; }
# The Node.js that scripts/install.sh built with (its own 22 on a host with an older one).
if [[ -f node_modules/.petri-node-bin ]]; then
  PATH="$(cat node_modules/.petri-node-bin):$PATH"
  export PATH
fi
npm run --silent typecheck
npm run --silent lint
# The dashboard's component tests (Vitest); its journeys run in Chromium below (test/browser).
npm run --silent test:dashboard
heavy='^test/(e2e|runtime|router|egress|addons|specs|controllers|browser)/|^test/cli/run\.test\.ts$|^test/mail/e2e\.test\.ts$'
mapfile -t light < <(find test -name '*.test.ts' | sort | grep -Ev "$heavy")
mapfile -t heavy < <(find test -name '*.test.ts' | sort | grep -E "$heavy")
node --import tsx --test --test-concurrency=2 --test-reporter=spec "${light[@]}"
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${heavy[@]}"

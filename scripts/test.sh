#!/usr/bin/env bash
# The whole test suite: typecheck, lint (format, rules, import arrows), then every test
# against the real HAProxy, bubblewrap and cgroups. Needs scripts/install.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d node_modules ]] || { echo "node_modules missing: run bash scripts/install.sh first" >&2; exit 1; }
npm run --silent typecheck
npm run --silent lint
mapfile -t tests < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${tests[@]}"

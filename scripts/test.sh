#!/usr/bin/env bash
# The whole test suite: typecheck, lint (format, rules, import arrows), then every test
# against the real HAProxy, bubblewrap and cgroups. Needs scripts/install.sh first.
#
# Tests that start no sandbox (API, CLI, domain, identity ...) and those that start
# sandboxes, networks, HAProxy, browsers or add-on servers run together, two files at a time:
# every test Petri has its own ports, bridge, subnet (a slot claimed on the host), cgroup
# parent and uid range, so they never meet, and their waits have deadlines that hold on a
# busy host. The slowest files go first, so the last minutes are not one long file alone.
# Files whose point is a timing under traffic (zero failed requests through reloads, wakes
# against the wake timeout, an upload's time limit) then run one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d node_modules ]] || { echo "node_modules missing: run bash scripts/install.sh first" >&2; exit 1; }
# The Node.js that scripts/install.sh built with (its own 22 on a host with an older one).
if [[ -f node_modules/.petri-node-bin ]]; then
  PATH="$(cat node_modules/.petri-node-bin):$PATH"
  export PATH
fi
# Typecheck and lint side by side (each keeps mostly one core busy), then the dashboard's
# component tests (Vitest); its journeys run in Chromium below (test/browser).
npm run --silent typecheck &
typecheck=$!
npm run --silent lint &
lint=$!
failed=0
wait "$typecheck" || failed=1
wait "$lint" || failed=1
[[ $failed == 0 ]] || { echo "typecheck or lint failed (above)" >&2; exit 1; }
npm run --silent test:dashboard
serial='^test/e2e/(zero-downtime|sleep|upload-bombs)\.test\.ts$|^test/router/hitless\.test\.ts$'
slow='^test/(browser/dashboard|e2e/(addons|hostile|lifecycle|deploy|python|hostile-build|hostile-tenant|metrics)|tls/(acme|https))\.test\.ts$'
mapfile -t all < <(find test -name '*.test.ts' | sort)
mapfile -t first < <(printf '%s\n' "${all[@]}" | grep -E "$slow")
mapfile -t rest < <(printf '%s\n' "${all[@]}" | grep -Ev "$slow|$serial")
mapfile -t serial < <(printf '%s\n' "${all[@]}" | grep -E "$serial")
node --import tsx --test --test-concurrency=2 --test-reporter=spec "${first[@]}" "${rest[@]}"
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${serial[@]}"

// The arrows of CONVENTIONS.md and docs/architecture.md, checked on every import, type-only
// ones included (tsPreCompilationDeps): a type is a dependency too, and the one a second
// driver or a Kubernetes router would trip over first. A circle in the imports is a bug.
//
// Each folder lists what it may import; anything else of ours is an error. Where the real tree
// needs an arrow the conventions do not draw, the rule allows it and says why.

/** Folders whose every import of ours is listed below; `only(folder, allowed)` forbids the rest. */
const only = (from, allowed, why) => ({
  name: `${from.replace(/\W+$/, '')}-imports-only-its-arrows`,
  comment: why,
  severity: 'error',
  from: { path: `^src/${from}` },
  to: { path: '^src/', pathNot: [`^src/${from}`, ...allowed.map((a) => `^src/${a}`)] },
});

// The interfaces of the two seams that have a second implementation in view. Their
// implementations (bubblewrap, HAProxy) are chosen once, by the composition root.
const RUNTIME_INTERFACE = 'runtime/driver\\.ts$';
const ROUTER_INTERFACE = 'router/router\\.ts$';

// The composition roots: server.ts and the pieces it is split into (components/), and
// stop-all.ts, the `petri stop-all` command, which stops what a crashed server left running
// through the concrete driver and HAProxy process. main.ts only dispatches to them.
const ROOTS = ['^src/server\\.ts$', '^src/components/', '^src/stop-all\\.ts$', '^src/main\\.ts$'];

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },

    // Only the composition roots pick the implementations and start the loops.
    {
      name: 'only-roots-import-controllers',
      comment: 'controllers/ are started by server.ts; api/ nudges them through callbacks it is given',
      severity: 'error',
      from: { pathNot: [...ROOTS, '^src/controllers/'] },
      to: { path: '^src/controllers/' },
    },
    {
      name: 'only-roots-import-edge',
      severity: 'error',
      from: { pathNot: [...ROOTS, '^src/edge/'] },
      to: { path: '^src/edge/' },
    },
    {
      name: 'only-roots-import-the-local-driver',
      comment: 'everyone else takes a RuntimeDriver (runtime/driver.ts)',
      severity: 'error',
      from: { pathNot: [...ROOTS, '^src/runtime/local/'] },
      to: { path: '^src/runtime/local/' },
    },
    {
      name: 'only-roots-import-the-haproxy-router',
      comment: 'everyone else takes a Router (router/router.ts)',
      severity: 'error',
      from: { pathNot: [...ROOTS, '^src/router/', '^src/edge/'] },
      to: { path: '^src/router/', pathNot: `^src/${ROUTER_INTERFACE}` },
    },
    {
      name: 'edge-imports-only-the-router-pages',
      comment:
        'the waker answers in place of a sleeping app behind HAProxy, so it serves the same ' +
        'pages HAProxy does (router/pages.ts: pure text, no HAProxy process or socket)',
      severity: 'error',
      from: { path: '^src/edge/' },
      to: { path: '^src/router/', pathNot: [`^src/${ROUTER_INTERFACE}`, '^src/router/pages\\.ts$'] },
    },

    // store/ holds the handle (store/db.ts) and the row types (store/schema.ts). Above domain/,
    // code passes the handle to domain/ functions and reads the rows they return, so it may
    // name those types; it may not use store/ itself (open, migrate): queries are domain/'s,
    // and scripts/check-queries.sh refuses a raw one anywhere else.
    {
      name: 'only-domain-uses-the-store',
      severity: 'error',
      from: { path: '^src/(api|services|controllers|edge|specs)/' },
      to: { path: '^src/store/', dependencyTypesNot: ['type-only'] },
    },

    // The leaves: they import only lib/ (and take plain specs defined beside their interface).
    only('lib/', []),
    only('runtime/', ['lib/']),
    only('router/', ['lib/']),
    only('addons/', ['lib/']),
    only('logs/', ['lib/']),
    only('egress/', ['lib/']),
    only('git/', ['lib/']),
    only('store/', ['lib/']),
    only('contract/', ['lib/']),

    only(
      'identity/',
      ['domain/', 'store/', 'lib/'],
      'sign-in (OIDC, LDAP, passwords): decides with domain/sign-in.ts; store/ for its types only',
    ),
    {
      name: 'only-api-and-roots-import-identity',
      comment: 'the API signs people in and re-checks sessions; the composition root builds it',
      severity: 'error',
      from: { pathNot: [...ROOTS, '^src/api/', '^src/identity/'] },
      to: { path: '^src/identity/' },
    },
    only('client/', ['contract/', 'lib/']),
    only('cli/', ['client/', 'lib/']),
    only(
      'dashboard/',
      ['client/(browser|errors|ndjson|types)\\.ts$', 'contract/'],
      'the dashboard runs in a browser: it reads and changes through /v1 with the fetch client ' +
        '(client/browser.ts) and its types, never with client.ts (undici, node:stream)',
    ),
    only(
      'domain/',
      ['store/', 'lib/', 'gate/cookie\\.ts$'],
      'gate/cookie.ts: route-gate.ts puts the gate cookie’s key of an app into its route (pure, lib/ only)',
    ),
    only(
      'specs/',
      ['domain/', RUNTIME_INTERFACE, 'build/builder\\.ts$', 'store/', 'lib/'],
      'the build request is the builder’s spec, declared beside it (build/builder.ts) as the ' +
        'driver specs are beside the driver; store/ rows are what specs/ translates (types only)',
    ),
    only(
      'build/',
      [RUNTIME_INTERFACE, 'logs/', 'egress/', 'lib/'],
      'egress/: a manifest’s egress hosts are checked with the proxy’s own pattern parser',
    ),
    only(
      'services/',
      ['domain/', 'specs/', 'addons/', 'graduation/', RUNTIME_INTERFACE, 'store/', 'lib/'],
      'store/ for its types only; graduation/: the handoff bundle’s renderers',
    ),
    only(
      'graduation/',
      ['egress/matching\\.ts$', 'lib/'],
      'pure renderers of the handoff bundle (plain data in, text out); egress/matching.ts reads the ' +
        'declared egress patterns the NetworkPolicy opens',
    ),
    only(
      'controllers/',
      [
        'domain/',
        'services/',
        'specs/',
        'build/',
        'addons/',
        RUNTIME_INTERFACE,
        ROUTER_INTERFACE,
        'logs/',
        'store/',
        'lib/',
      ],
      'logs/: the loops write the deploy log and hand the driver its output sink; store/ for its types only',
    ),
    only(
      'edge/',
      ['domain/', 'egress/', RUNTIME_INTERFACE, 'router/pages\\.ts$', 'logs/', 'store/', 'lib/'],
      'logs/: the waker records a wake in the app’s log; store/ for its types only',
    ),
    only(
      'gate/',
      ['store/', 'lib/'],
      'the audience gate’s pure parts (its cookie, its pages, the next-path check): plain data in, ' +
        'text out, shared by the API’s gate routes and, next, the router’s check; store/ for types only',
    ),
    only(
      'metrics/',
      ['domain/', RUNTIME_INTERFACE, 'store/', 'lib/'],
      'the metrics collector (issue 18): a loop like controllers/, started by server.ts; its queries are ' +
        'domain/metrics.ts, the cgroups it reads come through the driver; store/ for its types only',
    ),
    {
      name: 'only-roots-import-metrics',
      comment: 'the API reaches the collector through ApiContext.metrics (api/context.ts MetricsView)',
      severity: 'error',
      from: { pathNot: [...ROOTS, '^src/metrics/'] },
      to: { path: '^src/metrics/' },
    },
    only(
      'api/',
      ['services/', 'domain/', 'contract/', 'identity/', 'gate/', 'logs/', 'git/', 'store/', 'lib/'],
      'logs/: the API tails the log store; git/: the smart-HTTP route speaks git’s protocol; identity/: sign-ins and session re-checks; gate/: the audience gate’s pages and cookie; store/ for its types only',
    ),
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
  },
};

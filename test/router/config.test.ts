// Pure parts of the router: the rendered config (golden file), the pages, the server plan and
// the parsers of HAProxy's answers. UPDATE_GOLDEN=1 rewrites the golden files.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  fingerprintOf,
  type RenderOptions,
  renderHaproxyConfig,
  routerThreads,
} from '../../src/router/config.js';
import { gateMapEntries, parseShowMap, planMapChanges, renderGateMap } from '../../src/router/gate-map.js';
import { escapeHtml, renderPages } from '../../src/router/pages.js';
import type { RouteSpec } from '../../src/router/router.js';
import { groupRoutes } from '../../src/router/routes.js';
import { parseLastSessions, parseServersState, parseShowProc } from '../../src/router/runtime-api.js';
import { planServerChanges } from '../../src/router/server-plan.js';

const opts: RenderOptions = {
  dir: '/var/lib/petri/router',
  httpPort: 8080,
  apiHost: 'petri.localhost',
  apiServer: { address: '127.0.0.1', port: 3000 },
  domain: 'petri.localhost',
  statsPort: 8404,
  threads: 1,
  waker: { address: '127.0.0.1', port: 7071 },
  requestLog: { address: '127.0.0.1', port: 5514, tag: '0123456789abcdef0123456789abcdef' },
};
const routes: RouteSpec[] = [
  {
    host: 'shop.petri.localhost',
    app: 'shop',
    servers: [{ id: 'shop-web.2', address: '10.0.0.3', port: 5001 }],
  },
  { host: 'blog.petri.localhost', app: 'blog', servers: [{ id: 'blog-web.1', address: '::1', port: 5000 }] },
  { host: 'www.shop.example', app: 'shop', servers: [{ id: 'shop-web.2', address: '10.0.0.3', port: 5001 }] },
  { host: 'idle.petri.localhost', app: 'idle', servers: [] },
  {
    host: 'lab.petri.localhost',
    app: 'lab',
    servers: [{ id: 'lab-web.1', address: '10.0.0.4', port: 5002 }],
    gate: { key: 'mL3pQ0vYh2y8xkz1g9aW4c7e5tJ6uB0nR2sD8fV1oIk' },
  },
];

function golden(name: string, actual: string): void {
  const file = fileURLToPath(new URL(`golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs from its golden file (UPDATE_GOLDEN=1)`);
}

describe('renderHaproxyConfig', () => {
  it('renders the golden config', () => {
    golden('haproxy.cfg', renderHaproxyConfig(opts, routes));
  });

  it('gives HAProxy half the CPUs, at least one thread', () => {
    assert.deepEqual([1, 2, 3, 4, 16].map(routerThreads), [1, 1, 1, 2, 8]);
  });

  it('does not depend on the order of routes', () => {
    assert.equal(renderHaproxyConfig(opts, [...routes].reverse()), renderHaproxyConfig(opts, routes));
  });

  it('keeps the fingerprint when servers or apps come and go, and changes it with an answer or a bigger pool', () => {
    const base = fingerprintOf(renderHaproxyConfig(opts, routes));
    const moved = routes.map((r) => ({ ...r, servers: r.servers.map((s) => ({ ...s, port: s.port + 1 })) }));
    assert.equal(fingerprintOf(renderHaproxyConfig(opts, moved)), base);
    assert.equal(fingerprintOf(renderHaproxyConfig(opts, routes.slice(1))), base);
    const more = Array.from({ length: 30 }, (_, i) => ({
      host: `n${i}.petri.localhost`,
      app: `n${i}`,
      servers: [],
    }));
    assert.equal(
      fingerprintOf(renderHaproxyConfig(opts, [...routes, ...more])),
      base,
      '35 apps fit the pool of 50',
    );
    const many = Array.from({ length: 45 }, (_, i) => ({
      host: `n${i}.petri.localhost`,
      app: `n${i}`,
      servers: [],
    }));
    assert.notEqual(fingerprintOf(renderHaproxyConfig(opts, [...routes, ...many])), base, 'the pool grows');
    const ended: RouteSpec = {
      host: 'x.petri.localhost',
      app: 'x',
      servers: [],
      answer: { kind: 'redirect', location: 'https://example.org/' },
    };
    assert.notEqual(fingerprintOf(renderHaproxyConfig(opts, [...routes, ended])), base);
    assert.notEqual(fingerprintOf(renderHaproxyConfig({ ...opts, domain: 'example.org' }, routes)), base);
  });

  it('keeps the fingerprint when an app is gated, made public or has its key rotated', () => {
    const base = fingerprintOf(renderHaproxyConfig(opts, routes));
    const publicAll = routes.map(({ gate: _gate, ...r }) => r);
    const gatedAll = routes.map((r) => ({ ...r, gate: { key: 'A'.repeat(43) } }));
    assert.equal(fingerprintOf(renderHaproxyConfig(opts, publicAll)), base);
    assert.equal(fingerprintOf(renderHaproxyConfig(opts, gatedAll)), base);
  });

  it('refuses what could inject config', () => {
    const bad: RouteSpec[][] = [
      [{ host: 'a.petri.localhost\nlisten x', app: 'a', servers: [] }],
      [{ host: 'a.petri.localhost', app: 'a b', servers: [] }],
      [{ host: 'a.petri.localhost', app: 'a', servers: [{ id: 'x y', address: '127.0.0.1', port: 1 }] }],
      [{ host: 'a.petri.localhost', app: 'a', servers: [{ id: 'x', address: 'evil.example', port: 1 }] }],
      [{ host: 'a.petri.localhost', app: 'a', servers: [{ id: 'x', address: '127.0.0.1', port: 70000 }] }],
      [{ host: 'petri.localhost', app: 'a', servers: [] }],
      [{ host: 'a.petri.localhost', app: 'a', servers: [], gate: { key: 'k k' } }],
      [{ host: 'a.petri.localhost', app: 'a', servers: [], gate: { key: `${'k'.repeat(40)}\nx` } }],
      [
        { host: 'a.petri.localhost', app: 'a', servers: [], gate: { key: 'k'.repeat(43) } },
        { host: 'b.petri.localhost', app: 'a', servers: [] },
      ],
    ];
    for (const r of bad) assert.throws(() => renderHaproxyConfig(opts, r));
    assert.throws(() => renderHaproxyConfig({ ...opts, dir: '/tmp/with space' }, []));
  });
});

describe('renderPages', () => {
  it('escapes what it interpolates', () => {
    assert.equal(
      escapeHtml(`<a href="x">'&'</a>`),
      '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;',
    );
    const pages = renderPages({ ...opts, domain: '<script>' }, groupRoutes(routes, opts.apiHost));
    for (const page of pages.values()) assert.doesNotMatch(page, /<script>/);
    golden('503-app.http', pages.get('503-app.http') ?? '');
  });
});

describe('the gate map', () => {
  it('renders the golden map: every host of a gated app, none of a public one', () => {
    golden('gate.map', renderGateMap(gateMapEntries(groupRoutes(routes, opts.apiHost))));
  });

  it('plans add, set and del map for what changed, nothing when it matches', () => {
    const file = '/r/gate.map';
    const wanted = new Map([
      ['a.petri.localhost', 'a:new'],
      ['b.petri.localhost', 'b:key'],
      ['c.petri.localhost', 'c:key'],
    ]);
    const running = parseShowMap(
      [
        '0x55e34f27d460 a.petri.localhost a:old',
        '0x55e34f27d470 b.petri.localhost b:key',
        '0x55e34f27d480 gone.petri.localhost gone:key',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      planMapChanges(file, wanted, running).map((c) => c.command),
      [
        'set map /r/gate.map a.petri.localhost a:new',
        'add map /r/gate.map c.petri.localhost c:key',
        'del map /r/gate.map gone.petri.localhost',
      ],
    );
    assert.deepEqual(planMapChanges(file, wanted, wanted), []);
  });
});

describe('planServerChanges', () => {
  const apps = groupRoutes(
    [
      {
        host: 'a.petri.localhost',
        app: 'a',
        servers: [
          { id: 'new', address: '127.0.0.1', port: 2 },
          { id: 'moved', address: '127.0.0.1', port: 4 },
        ],
      },
    ],
    opts.apiHost,
  );
  const state = (name: string, port: number, maint = false) => ({
    backend: 'app_a',
    name,
    address: '127.0.0.1',
    port,
    maint,
  });

  it('adds before it removes, and removes through maintenance', () => {
    const plan = planServerChanges(apps, [state('moved', 3), state('old', 1)]);
    assert.deepEqual(
      plan.map((c) => c.command),
      [
        'set server app_a/moved addr 127.0.0.1 port 4',
        'add server app_a/new 127.0.0.1:2 check inter 1s fall 2 rise 1 pool-max-conn -1 pool-purge-delay 5s',
        'enable health app_a/new',
        'set server app_a/new state ready',
        'set server app_a/old state maint',
        'del server app_a/old',
      ],
    );
  });

  it('plans nothing when the servers already match', () => {
    assert.deepEqual(planServerChanges(apps, [state('new', 2), state('moved', 4)]), []);
  });

  it('retries the deletion of a server still in maintenance, and readies a wanted one', () => {
    const plan = planServerChanges(apps, [state('new', 2, true), state('moved', 4), state('old', 1, true)]);
    assert.deepEqual(
      plan.map((c) => c.command),
      ['set server app_a/new state ready', 'del server app_a/old'],
    );
  });
});

describe('runtime API parsers', () => {
  it('parses show proc of HAProxy 2.6', () => {
    const text = `#<PID>          <type>          <reloads>       <uptime>        <version>
7804            master          1 [failed: 0]   0d00h10m10s     2.6.12-1+deb12u4
# workers
7905            worker          0               0d00h00m09s     2.6.12-1+deb12u4
# old workers
7805            worker          1               0d00h10m09s     2.6.12-1+deb12u4
# programs

`;
    assert.deepEqual(parseShowProc(text), { masterPid: 7804, failedReloads: 0, workers: [7905] });
  });

  it('parses show servers state', () => {
    const text = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 app_a 1 s1 127.0.0.1 0 0 1 1 619 8 2 0 6 0 0 0 - 18081 - 0 0 - - 0
3 app_a 2 s2 127.0.0.1 0 1 1 1 2 1 0 0 2 0 0 0 - 18082 - 0 0 - - 0
`;
    assert.deepEqual(parseServersState(text), [
      { backend: 'app_a', name: 's1', address: '127.0.0.1', port: 18081, maint: false },
      { backend: 'app_a', name: 's2', address: '127.0.0.1', port: 18082, maint: true },
    ]);
  });
});

describe('sleeping apps', () => {
  it("keeps the waker, every app's backup server, out of the runtime server changes", () => {
    const apps = groupRoutes([{ host: 'blog.petri.localhost', app: 'blog', servers: [] }], 'petri.localhost');
    const running = [
      { backend: apps[0]!.backend, name: 'petri_waker', address: '127.0.0.1', port: 7071, maint: false },
      { backend: apps[0]!.backend, name: 'blog-web.1', address: '10.0.0.2', port: 5000, maint: false },
    ];
    const commands = planServerChanges(apps, running).map((c) => c.command);
    assert.ok(
      commands.some((c) => c.includes('blog-web.1')),
      'the stopped instance goes',
    );
    assert.ok(!commands.some((c) => c.includes('petri_waker')), 'the waker stays');
  });

  it("reads each backend's seconds since its last request from show stat", () => {
    const csv = [
      '# pxname,svname,qcur,scur,lastsess,status',
      'http,FRONTEND,,0,,OPEN',
      'app_blog,blog-web.1,0,0,12,UP',
      'app_blog,BACKEND,0,0,12,UP',
      'app_shop,BACKEND,0,0,-1,UP',
      '',
    ].join('\n');
    assert.deepEqual(
      [...parseLastSessions(csv)],
      [
        ['app_blog', 12],
        ['app_shop', -1],
      ],
    );
  });
});

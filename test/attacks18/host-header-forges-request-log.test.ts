// Attack from any visitor, through the real HAProxy: the request log line is
// `petri1 %[var(txn.host)] %ST %Ta %B`, and txn.host is the Host header as sent (lower-cased,
// cut at ':'). HAProxy lets a Host value hold spaces and logs it as is, so
//   Host: victim.petri.localhost 503 60000 0
// makes the line `petri1 victim.petri.localhost 503 60000 0 404 0 84`, which the collector
// reads as a 503 of app victim that took 60 s. An outsider can inflate any app's 5xx share
// (the 5xx alert mails its owner), wreck its p99 and its Prometheus counters. And a Host of a
// made-up app (nobody1.petri.localhost ...) makes Prometheus series for apps that do not exist.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { until } from '../../src/lib/until.js';
import type { MetricsCollector } from '../../src/metrics/collector.js';
import { openStore, type Store } from '../../src/store/db.js';
import { testCollector } from '../metrics/test-collector.js';
import { type Backend, get, makeRouterWorld, type RouterWorld, startBackend } from '../router/helpers.js';

let dir: string;
let db: Store;
let collector: MetricsCollector;
let world: RouterWorld;
let victim: Backend;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack-hostlog-'));
  db = await openStore(path.join(dir, 'petri.db'));
  const ana = await createUser(db, 'ana@example.org', 'admin', { email: 'ana@example.org' });
  await createApp(db, ana, 'victim', { memoryMiB: 64, cpus: 1, pids: 32 });
  collector = testCollector(db);
  const requestLog = await collector.listen();
  world = await makeRouterWorld({ requestLog });
  victim = await startBackend('victim');
  await world.router.start();
  await world.router.apply([{ host: 'victim.petri.localhost', app: 'victim', servers: [victim.route] }]);
});
after(async () => {
  await world?.cleanup();
  await victim?.close();
  await collector?.stop();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test("a visitor's Host header cannot add 5xx (or 60 s latencies) to an app's metrics", async () => {
  const port = world.opts.httpPort;
  for (let i = 0; i < 20; i++) {
    const r = await get(port, 'victim.petri.localhost 503 60000 0');
    assert.notEqual(r.status, 503, 'the router itself did not answer 503');
  }
  // A real request after the forged ones: once it is counted, they all were.
  assert.equal((await get(port, 'victim.petri.localhost')).status, 200);
  const counters = await until(
    () => {
      const c = collector.live('victim')[0]?.counters;
      return c && c.s2xx >= 1 ? c : undefined;
    },
    { timeout: 10_000, message: "victim's real request in the collector" },
  );
  assert.equal(
    counters.s5xx,
    0,
    `20 requests with a forged Host header counted as ${counters.s5xx} 5xx of victim (the router answered them 404, no app saw them): log the host escaped or quoted (e.g. %{+Q}[var(txn.host)] or a map result), and refuse a Host that is not a hostname`,
  );
  assert.equal(counters.requests, 1, 'only the one real request counts for victim');
});

test('requests to made-up hosts through the router make no Prometheus series', async () => {
  const port = world.opts.httpPort;
  for (let i = 0; i < 50; i++) await get(port, `nobody${i}.petri.localhost`);
  await until(async () => (await collector.text()).includes('app="nobody49"'), {
    timeout: 3000,
    message: 'the last made-up host in /metrics',
  }).catch(() => undefined);
  const text = await collector.text();
  const apps = new Set([...text.matchAll(/app="(nobody\d+)"/g)].map((m) => m[1])).size;
  assert.equal(
    apps,
    0,
    `50 requests to hosts no app has made series for ${apps} made-up apps: an outsider's random Host headers grow /metrics and the control plane's memory for up to an hour (forgetGoneApps); count only hosts in the router's map`,
  );
});

// Changes of routes under traffic: server swaps and reloads drop no request, and a response
// in flight during a reload completes.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { until } from '../../src/lib/until.js';
import type { RouteSpec } from '../../src/router/router.js';
import { parseShowProc, sendCommand } from '../../src/router/runtime-api.js';
import { type Backend, get, makeRouterWorld, type RouterWorld, startBackend } from './helpers.js';

describe('HaproxyRouter under traffic', () => {
  let world: RouterWorld;
  const backends: Backend[] = [];
  const route = (app: string, ...servers: Backend[]): RouteSpec => ({
    host: `${app}.petri.localhost`,
    app,
    servers: servers.map((s) => s.route),
  });
  // An app the router answers for is a backend of its own in the config: adding one reloads
  // (other apps come and go through the host map with no reload).
  const moved: RouteSpec = {
    host: 'moved.petri.localhost',
    app: 'moved',
    servers: [],
    answer: { kind: 'redirect', location: 'https://example.org/' },
  };

  before(async () => {
    world = await makeRouterWorld();
    for (const name of ['s1', 's2', 's3', 'other']) backends.push(await startBackend(name));
    await world.router.start();
  });

  after(async () => {
    await world?.cleanup();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('drops no request during server swaps and a reload', async () => {
    const [s1, s2, s3, other] = backends as [Backend, Backend, Backend, Backend];
    await world.router.apply([route('web', s1)]);
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
    // Bounded: the clients stop once the changes are done and 300 requests have been sent,
    // and at 2000 whatever happens.
    const limit = 2000;
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const seen = new Set<string>();
    // Four clients over keep-alive, two opening a new connection per request.
    const client = async (agent: http.Agent | false) => {
      while (!stop && sent < limit) {
        sent++;
        try {
          const reply = await get(world.opts.httpPort, 'web.petri.localhost', '/', agent);
          if (reply.status !== 200) failures.push(`${reply.status} ${reply.body.slice(0, 80)}`);
          else seen.add(reply.body.split(' ')[0] ?? '');
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const traffic = Promise.all([
      ...Array.from({ length: 4 }, () => client(keepAlive)),
      client(false),
      client(false),
    ]);
    const progress = (n: number) =>
      until(() => sent >= n, { timeout: 10_000, message: `${n} requests sent` });
    await progress(30);
    await world.router.apply([route('web', s2)]);
    await progress(80);
    await world.router.apply([route('web', s2, s3)]);
    await progress(130);
    // A new app (the host map) and a moved one: a reload of HAProxy while traffic flows.
    await world.router.apply([route('web', s3), route('other', other), moved]);
    await progress(200);
    await world.router.apply([route('web', s1, s3), route('other', other), moved]);
    await progress(240);
    await world.router.apply([route('web', s1)]);
    // Never past the limit, where the clients stop whatever happens.
    await progress(Math.min(limit, Math.max(300, sent + 30)));
    stop = true;
    await traffic;
    keepAlive.destroy();
    assert.deepEqual(failures, []);
    assert.ok(seen.has('backend:s2') && seen.has('backend:s3'), `served by ${[...seen].join(', ')}`);
  });

  it('completes a response in flight during a reload and a server removal', async () => {
    const [s1, s2, , other] = backends as [Backend, Backend, Backend, Backend & { release(): void }];
    const slowBackend = s1 as Backend & { release(): void };
    await world.router.apply([route('web', s1)]);
    const workersBefore = parseShowProc(await sendCommand(`${world.dir}/master.sock`, 'show proc')).workers;
    const hitsBefore = s1.hits;
    const slow = get(world.opts.httpPort, 'web.petri.localhost', '/slow');
    await until(() => s1.hits > hitsBefore, { timeout: 5_000, message: 'the slow request to reach s1' });
    // s1 leaves the app (runtime API) and a moved app is added (reload) while the response streams.
    await world.router.apply([route('web', s2), route('other', other), moved]);
    const workersAfter = parseShowProc(await sendCommand(`${world.dir}/master.sock`, 'show proc')).workers;
    assert.notDeepEqual(workersAfter, workersBefore, 'a new worker serves');
    assert.match((await get(world.opts.httpPort, 'web.petri.localhost')).body, /^backend:s2 /);
    slowBackend.release();
    const reply = await slow;
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'first;last');
  });
});

// Apps come and go through the host map and the pool of spare backends (issue 16): 200 apps
// added under traffic fail no request and reload HAProxy only when the pool grows; removing
// apps reloads nothing. And the pool's assignment itself, pure.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { until } from '../../src/lib/until.js';
import { assignPool, POOL_SPARE, POOL_STEP } from '../../src/router/pool.js';
import type { RouteSpec } from '../../src/router/router.js';
import { groupRoutes } from '../../src/router/routes.js';
import { parseShowProc, sendCommand } from '../../src/router/runtime-api.js';
import { type Backend, get, makeRouterWorld, type RouterWorld, startBackend } from './helpers.js';

const apps = (names: string[]) =>
  groupRoutes(
    names.map((app) => ({ host: `${app}.petri.localhost`, app, servers: [] })),
    'petri.localhost',
  );

describe('assignPool', () => {
  it('keeps where apps are, fills the lowest free backends, and grows by a step when low', () => {
    const first = assignPool(apps(['a', 'b', 'c']), new Map(), 0);
    assert.equal(first.size, POOL_STEP);
    assert.deepEqual(
      [...first.slots],
      [
        ['a', 'pool_0001'],
        ['b', 'pool_0002'],
        ['c', 'pool_0003'],
      ],
    );
    // b leaves, d comes: a and c stay, d takes the free backend.
    const second = assignPool(apps(['a', 'c', 'd']), first.slots, first.size);
    assert.deepEqual([...second.slots].sort(), [
      ['a', 'pool_0001'],
      ['c', 'pool_0003'],
      ['d', 'pool_0002'],
    ]);
    const full = Array.from({ length: POOL_STEP - POOL_SPARE }, (_, i) => `x${i}`);
    assert.equal(assignPool(apps(full), new Map(), POOL_STEP).size, POOL_STEP);
    assert.equal(assignPool(apps([...full, 'one-more']), new Map(), POOL_STEP).size, 2 * POOL_STEP);
  });

  it('gives apps the router answers for no pool backend', () => {
    const routes = groupRoutes(
      [
        { host: 'a.petri.localhost', app: 'a', servers: [] },
        {
          host: 'b.petri.localhost',
          app: 'b',
          servers: [],
          answer: { kind: 'redirect', location: 'https://x.org/' },
        },
      ],
      'petri.localhost',
    );
    assert.deepEqual([...assignPool(routes, new Map(), 0).slots.keys()], ['a']);
  });
});

describe('HaproxyRouter: a pool backend that changes hands', () => {
  let world: RouterWorld;
  let backend: Backend;

  before(async () => {
    world = await makeRouterWorld();
    backend = await startBackend('b');
    await world.router.start();
  });

  after(async () => {
    await world?.cleanup();
    await backend?.close();
  });

  it("does not pass the old app's last request on to the new one (it would sleep at once)", async () => {
    const route = (app: string): RouteSpec => ({
      host: `${app}.petri.localhost`,
      app,
      servers: [{ id: `${app}-web.1`, address: '127.0.0.1', port: backend.route.port }],
    });
    await world.router.apply([route('old')]);
    assert.equal((await get(world.opts.httpPort, 'old.petri.localhost')).status, 200);
    await until(async () => ((await world.router.lastRequests()).get('old') ?? -1) >= 2, {
      timeout: 10_000,
      message: "the old app's last request to be 2 s old",
    });
    // The new app takes the backend the old one leaves.
    await world.router.apply([route('new')]);
    assert.equal((await world.router.lastRequests()).get('new'), -1);
    assert.equal((await get(world.opts.httpPort, 'new.petri.localhost')).status, 200);
    assert.equal((await get(world.opts.httpPort, 'old.petri.localhost')).status, 404);
    await until(async () => ((await world.router.lastRequests()).get('new') ?? -1) >= 0, {
      timeout: 5_000,
      message: "the new app's own request to count",
    });
  });
});

describe('HaproxyRouter: 200 apps added under traffic', () => {
  let world: RouterWorld;
  const backends: Backend[] = [];

  before(async () => {
    world = await makeRouterWorld();
    for (const name of ['web', 'b0', 'b1', 'b2']) backends.push(await startBackend(name));
    await world.router.start();
  });

  after(async () => {
    await world?.cleanup();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('fails no request, and reloads only when the pool grows', async (t) => {
    const [web, ...shared] = backends as [Backend, ...Backend[]];
    const webRoute: RouteSpec = { host: 'web.petri.localhost', app: 'web', servers: [web.route] };
    const appRoute = (i: number): RouteSpec => {
      const backend = shared[i % shared.length]!;
      return {
        host: `app${i}.petri.localhost`,
        app: `app${i}`,
        servers: [{ id: `app${i}-web.1`, address: '127.0.0.1', port: backend.route.port }],
      };
    };
    await world.router.apply([webRoute]);
    const workers = async () =>
      parseShowProc(await sendCommand(`${world.dir}/master.sock`, 'show proc')).workers.join(',');
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const client = async (agent: http.Agent | false) => {
      while (!stop && sent < 20_000) {
        sent++;
        try {
          const reply = await get(world.opts.httpPort, 'web.petri.localhost', '/', agent);
          if (reply.status !== 200) failures.push(`${reply.status} ${reply.body.slice(0, 80)}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const traffic = Promise.all([client(keepAlive), client(keepAlive), client(false), client(false)]);
    await until(() => sent >= 20, { timeout: 10_000, message: 'traffic to start' });

    const seenWorkers = new Set([await workers()]);
    const routes = [webRoute];
    for (let batch = 0; batch < 20; batch++) {
      for (let i = batch * 10; i < batch * 10 + 10; i++) routes.push(appRoute(i));
      await world.router.apply(routes);
      seenWorkers.add(await workers());
      // The apps of this batch serve at once.
      const last = batch * 10 + 9;
      const reply = await get(world.opts.httpPort, `app${last}.petri.localhost`, '/');
      assert.equal(reply.status, 200, `app${last}`);
    }
    const reloads = seenWorkers.size - 1;
    // Removing half of them reloads nothing.
    const before = await workers();
    await world.router.apply(routes.filter((_, i) => i % 2 === 0));
    assert.equal(await workers(), before, 'removing apps does not reload');
    stop = true;
    await traffic;
    keepAlive.destroy();

    t.diagnostic(
      `${sent} requests while adding 200 apps and removing 100: ${failures.length} failed, ${reloads} reloads`,
    );
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    // 200 apps in a pool that grows by 50 when fewer than 10 are free: at 41, 91, 141, 191.
    assert.ok(reloads <= 4, `${reloads} reloads for 200 apps`);
    for (let i = 0; i < 200; i++) {
      const reply = await get(world.opts.httpPort, `app${i}.petri.localhost`, '/');
      // routes[0] is web: app i is routes[i + 1], kept when i + 1 is even.
      assert.equal(reply.status, (i + 1) % 2 === 0 ? 200 : 404, `app${i}`);
      if (reply.status === 200) assert.match(reply.body, /^backend:b\d \/ /);
    }
  });
});

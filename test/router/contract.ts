// The contract every Router keeps, in what the reconciler and the idle sleeper rely on:
// routing by Host to the servers of the last apply() (404 for an unknown host, 503 for an
// app without servers), swaps that move new requests, drained() only once a server is
// unrouted and holds no request, lastRequests() keyed by app, and the well-known answers.
// The HAProxy router (haproxy-contract.test.ts, real haproxy) and the fake the unit tests use
// (fake-contract.test.ts) both run it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import type { Router, RouteSpec } from '../../src/router/router.js';
import { type Backend, type Reply, startBackend } from './helpers.js';

export interface RouterContractWorld {
  router: Router;
  /** A request through the router with this Host header. */
  request(host: string, path?: string): Promise<Reply>;
  cleanup(): Promise<void>;
}

export function routerContract(opts: { name: string; setUp(): Promise<RouterContractWorld> }): void {
  describe(`Router contract: ${opts.name}`, () => {
    let world: RouterContractWorld;
    type Slow = Backend & { release(): void };
    let a1: Slow;
    let a2: Slow;
    let b1: Slow;
    let q1: Slow;
    const host = (app: string) => `${app}.petri.localhost`;
    const routes = (a: Backend[]): RouteSpec[] => [
      { host: host('a'), app: 'a', servers: a.map((s) => s.route) },
      { host: host('b'), app: 'b', servers: [b1.route] },
      { host: host('down'), app: 'down', servers: [] },
      { host: host('quiet'), app: 'quiet', servers: [q1.route] },
    ];

    before(async () => {
      [a1, a2, b1, q1] = await Promise.all([
        startBackend('a1'),
        startBackend('a2'),
        startBackend('b1'),
        startBackend('q1'),
      ]);
      world = await opts.setUp();
      await world.router.start();
      await world.router.apply(routes([a1]));
    });
    after(async () => {
      await world?.cleanup();
      await Promise.all([a1, a2, b1, q1].map((b) => b?.close()));
    });

    test('routes by Host (its port and case ignored) to the servers of the last apply', async () => {
      const reply = await world.request('A.Petri.Localhost:8080', '/hello');
      assert.equal(reply.status, 200);
      assert.match(reply.body, /^backend:a1 \/hello/);
      assert.match((await world.request(host('b'))).body, /^backend:b1 /);
    });

    test('answers its well-known paths itself on every host, until deleted (issue 20)', async () => {
      const urlPath = '/.well-known/petri-domain/42';
      await world.router.setWellKnown(urlPath, 'token-42');
      for (const name of [host('a'), 'unknown.example.org']) {
        const reply = await world.request(name, urlPath);
        assert.equal(reply.status, 200, name);
        assert.equal(reply.body, 'token-42');
      }
      await world.router.deleteWellKnown(urlPath);
      assert.match((await world.request(host('a'), urlPath)).body, /^backend:a1 /);
    });

    test('an unknown host is a 404, an app without servers a 503', async () => {
      assert.equal((await world.request('nope.petri.localhost')).status, 404);
      assert.equal((await world.request(host('down'))).status, 503);
    });

    test('apply is idempotent, and a swap sends new requests to the new servers', async () => {
      await world.router.apply(routes([a1]));
      assert.match((await world.request(host('a'))).body, /^backend:a1 /);
      await world.router.apply(routes([a2]));
      await until(async () => /^backend:a2 /.test((await world.request(host('a'))).body), {
        timeout: 5000,
        message: 'the swap to take effect',
      });
      for (let i = 0; i < 5; i++) assert.match((await world.request(host('a'))).body, /^backend:a2 /);
    });

    test('a server is drained only once unrouted and without a request in flight', async () => {
      await world.router.apply(routes([a1]));
      assert.equal(await world.router.drained(a1.route.id), false, 'routed: not drained');
      // A slow request holds a1 while it is taken out of the routes.
      const hits = a1.hits;
      const slow = world.request(host('a'), '/slow');
      await until(() => a1.hits > hits, { timeout: 5000, message: 'the slow request to reach a1' });
      await world.router.apply(routes([a2]));
      assert.equal(await world.router.drained(a1.route.id), false, 'a request in flight: not drained');
      a1.release();
      const reply = await slow;
      assert.equal(reply.body, 'first;last', 'the request in flight finished');
      await until(() => world.router.drained(a1.route.id), { timeout: 5000, message: 'a1 to drain' });
      assert.equal(await world.router.drained('never-routed'), true);
    });

    test('lastRequests is keyed by app: recent for one that had a request, -1 or absent for none', async () => {
      await world.request(host('b'));
      const seconds = await world.router.lastRequests();
      const b = seconds.get('b');
      assert.ok(b !== undefined && b >= 0 && b <= 5, `b had a request just now, got ${b}`);
      assert.equal(seconds.get('quiet') ?? -1, -1, 'quiet never had one');
      assert.ok(![...seconds.keys()].some((k) => k.startsWith('app_')), 'no backend names');
    });
  });
}

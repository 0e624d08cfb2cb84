// The HAProxy router through the real haproxy: what a user of an app notices.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { until } from '../../src/lib/until.js';
import { HaproxyRouter } from '../../src/router/haproxy-router.js';
import type { RouteSpec } from '../../src/router/router.js';
import { parseShowProc, sendCommand } from '../../src/router/runtime-api.js';
import { type Backend, get, makeRouterWorld, type RouterWorld, startBackend } from './helpers.js';

/** The request log's tag, as the metrics collector makes one. */
const TAG = '0123456789abcdef';

describe('HaproxyRouter', () => {
  let world: RouterWorld;
  let a1: Backend;
  let x: Backend;
  let y: Backend;
  let port: number;
  let logSocket: dgram.Socket;
  const logLines: string[] = [];
  const masterSocket = () => `${world.dir}/master.sock`;
  const workers = async () => parseShowProc(await sendCommand(masterSocket(), 'show proc')).workers;

  const routes = (servers: Backend[]): RouteSpec[] => [
    { host: 'a.petri.localhost', app: 'a', servers: [a1.route] },
    { host: 'swap.petri.localhost', app: 'swap', servers: servers.map((s) => s.route) },
    { host: 'down.petri.localhost', app: 'down', servers: [] },
  ];

  before(async () => {
    // The request log's collector: a UDP socket, as the metrics part listens.
    logSocket = dgram.createSocket('udp4');
    logSocket.on('message', (msg) => logLines.push(msg.toString('utf8')));
    await new Promise<void>((resolve) => logSocket.bind(0, '127.0.0.1', resolve));
    const logPort = (logSocket.address() as AddressInfo).port;
    world = await makeRouterWorld({ requestLog: { address: '127.0.0.1', port: logPort, tag: TAG } });
    port = world.opts.httpPort;
    a1 = await startBackend('a1');
    x = await startBackend('x');
    y = await startBackend('y');
    await world.router.start();
    await world.router.apply(routes([x]));
  });

  after(async () => {
    await world?.cleanup();
    await Promise.all([a1, x, y].map((b) => b?.close()));
    logSocket?.close();
  });

  it('routes by Host, ignoring its port and case, with forwarding headers', async () => {
    const reply = await get(port, `A.Petri.Localhost:${port}`, '/hello');
    assert.equal(reply.status, 200);
    assert.match(reply.body, /^backend:a1 \/hello xff=127\.0\.0\.1$/);
    assert.equal(reply.headers['x-forwarded-proto-seen'], 'http');
  });

  it('logs every request to the request log: host, status, time and bytes', async () => {
    await get(port, `A.Petri.Localhost:${port}`, '/logged');
    await get(port, 'nope.petri.localhost', '/');
    await until(() => logLines.some((l) => / petri1 0123456789abcdef nope\.petri\.localhost 404 /.test(l)), {
      timeout: 5_000,
      message: 'the request log lines',
    });
    const line = logLines.find((l) => / petri1 0123456789abcdef a\.petri\.localhost /.test(l));
    assert.match(line ?? '', /^<\d+>.* petri1 0123456789abcdef a\.petri\.localhost 200 \d+ \d+\n?$/);
  });

  it('answers an unknown host with the Petri 404 page', async () => {
    const reply = await get(port, 'nope.petri.localhost');
    assert.equal(reply.status, 404);
    assert.match(String(reply.headers['content-type']), /text\/html/);
    assert.match(reply.body, /No app here/);
  });

  it('answers an app without servers with the 503 page', async () => {
    const reply = await get(port, 'down.petri.localhost');
    assert.equal(reply.status, 503);
    assert.equal(reply.headers['retry-after'], '5');
    assert.match(reply.body, /is not running/);
  });

  it('routes the API host to the control plane', async () => {
    const reply = await get(port, 'petri.localhost', '/v1/apps');
    assert.equal(reply.status, 200);
    assert.match(reply.body, /^backend:api \/v1\/apps/);
  });

  it('swaps servers through the runtime API, without a reload, and is idempotent', async () => {
    const workersBefore = await workers();
    await world.router.apply(routes([y]));
    // The new server gets the very next request: no health-check rise to wait for.
    for (let i = 0; i < 5; i++) assert.match((await get(port, 'swap.petri.localhost')).body, /^backend:y /);
    await world.router.apply(routes([x, y]));
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await get(port, 'swap.petri.localhost')).body.split(' ')[0] ?? '');
    assert.deepEqual([...seen].sort(), ['backend:x', 'backend:y'], 'round robin over both servers');
    await world.router.apply(routes([x, y]));
    assert.deepEqual(await workers(), workersBefore, 'no reload for server changes or repeated routes');
  });

  it('takes a server whose process died out of rotation', async () => {
    const z = await startBackend('z');
    await world.router.apply([...routes([y]), { host: 'z.petri.localhost', app: 'z', servers: [z.route] }]);
    assert.match((await get(port, 'z.petri.localhost')).body, /^backend:z /);
    await z.close();
    await until(async () => (await get(port, 'z.petri.localhost')).status === 503, {
      timeout: 5_000,
      message: 'the dead server to be marked down',
    });
  });

  it('adds and removes apps through the host map, with no reload', async () => {
    const workersBefore = await workers();
    const b = await startBackend('b1');
    try {
      await world.router.apply([...routes([y]), { host: 'b.petri.localhost', app: 'b', servers: [b.route] }]);
      assert.deepEqual(await workers(), workersBefore);
      assert.match((await get(port, 'b.petri.localhost')).body, /^backend:b1 /);
      assert.match((await get(port, 'a.petri.localhost')).body, /^backend:a1 /);
      const gone = await get(port, 'z.petri.localhost');
      assert.equal(gone.status, 404);
    } finally {
      await b.close();
    }
  });

  it('rejects routes that would inject config and leaves the running config serving', async () => {
    await assert.rejects(
      world.router.apply([{ host: 'evil.petri.localhost\n  server x 1.2.3.4:80', app: 'evil', servers: [] }]),
      /host of app 'evil' must be a lower-case host name/,
    );
    assert.match((await get(port, 'a.petri.localhost')).body, /^backend:a1 /);
  });

  it('adopts the running HAProxy from a second instance (a restarted control plane)', async () => {
    const pid = world.router.pid;
    assert.ok(pid);
    // The first instance is simply forgotten, as after a kill -9 of the control plane.
    const second = new HaproxyRouter(world.opts);
    await second.start();
    assert.equal(second.pid, pid);
    assert.match((await get(port, 'a.petri.localhost')).body, /^backend:a1 /);
    await second.apply(routes([x]));
    assert.match((await get(port, 'swap.petri.localhost')).body, /^backend:x /);
    world.router = second;
  });
});

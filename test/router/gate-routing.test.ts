// The router's part of the audience gate (issue 15) through the real HAProxy: /.petri/... on
// an app's host goes to the control plane (the gate's pages), everything else to the app, and
// no app ever sees an X-Petri-User or X-Petri-User-Name its client sent.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { get, makeRouterWorld, type RouterWorld } from './helpers.js';

interface Echo {
  server: http.Server;
  port: number;
}

/** Answers the URL and raw headers it saw as JSON. */
async function startEcho(): Promise<Echo> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ app: 'shop', url: req.url, raw: req.rawHeaders }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** One request as bytes (so any header name can be sent), answered status and body. */
function rawRequest(port: number, head: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      data += c;
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer in 10 s')));
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ?? 0);
      const at = data.indexOf('\r\n\r\n');
      const body = at < 0 ? '' : data.slice(at + 4);
      resolve({ status, body: /\{.*\}/s.exec(body)?.[0] ?? body });
    });
    socket.write(`${head}Connection: close\r\n\r\n`);
  });
}

describe('HAProxy: the gate under app hosts, and X-Petri-User from clients', () => {
  let world: RouterWorld;
  let echo: Echo;
  let port: number;

  before(async () => {
    world = await makeRouterWorld();
    port = world.opts.httpPort;
    echo = await startEcho();
    await world.router.start();
    const servers = [{ id: 'shop-web.1', address: '127.0.0.1', port: echo.port }];
    await world.router.apply([
      { host: 'shop.petri.localhost', app: 'shop', servers },
      { host: 'www.shop.example', app: 'shop', servers },
    ]);
  });

  after(async () => {
    await world?.cleanup();
    echo?.server.closeAllConnections();
    echo?.server.close();
  });

  it("sends /.petri/... on every host of an app to the control plane, with the app's Host", async () => {
    for (const host of ['shop.petri.localhost', `shop.petri.localhost:${port}`, 'www.shop.example']) {
      for (const path of [
        '/.petri/gate?next=/cart',
        '/.petri/consent',
        '/.petri/join/abc',
        '/.petri/leave',
      ]) {
        const reply = await get(port, host, path);
        assert.equal(reply.status, 200, `${host}${path}`);
        assert.equal(reply.body.split(' ').slice(0, 2).join(' '), `backend:api ${path}`, `${host}${path}`);
      }
    }
  });

  it("leaves every other path to the app, even ones that look like the gate's", async () => {
    for (const path of [
      '/',
      '/.petri',
      '/.petrix/gate',
      '/x/.petri/gate',
      '/%2Epetri/gate',
      '/.PETRI/gate',
      '/.petri/',
      '/.petri/gate/x',
      '/.petri/join/a/b',
      // Never an API route through an app's host.
      '/.petri/../v1/openapi.json',
      '/.petri/gate/../../v1/whoami',
      '/.petri/%2e%2e/v1/whoami',
    ]) {
      const reply = await get(port, 'shop.petri.localhost', path);
      assert.equal(reply.status, 200, path);
      assert.equal((JSON.parse(reply.body) as { app: string }).app, 'shop', `${path}: ${reply.body}`);
    }
  });

  it('answers an unknown host 404 for /.petri/ too (there is no app to gate)', async () => {
    const reply = await get(port, 'nope.petri.localhost', '/.petri/gate');
    assert.equal(reply.status, 404);
    assert.equal(world.api.hits > 0, true);
    const before = world.api.hits;
    await get(port, 'nope.petri.localhost', '/.petri/gate');
    assert.equal(world.api.hits, before, 'the control plane was not asked');
  });

  it('removes X-Petri-User and X-Petri-User-Name sent by a client, in any spelling', async () => {
    const forged = [
      'X-Petri-User: boss@example.org',
      'X-Petri-User-Name: The Boss',
      'x-petri-user: boss@example.org',
      'X-PETRI-USER: boss@example.org',
      'X_Petri_User: boss@example.org',
      'X-Petri-User_Name: The Boss',
      'X-Petri-Anything: boss@example.org',
    ];
    const reply = await rawRequest(
      port,
      `GET /me HTTP/1.1\r\nHost: shop.petri.localhost\r\n${forged.map((h) => `${h}\r\n`).join('')}`,
    );
    assert.equal(reply.status, 200, reply.body);
    const seen = JSON.parse(reply.body) as { app: string; raw: string[] };
    assert.equal(seen.app, 'shop');
    const names = seen.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.deepEqual(
      names.filter((n) => n.includes('petri')),
      [],
      `client-sent headers reached the app: ${JSON.stringify(seen.raw)}`,
    );
    assert.ok(!seen.raw.some((v) => /boss/i.test(v)), JSON.stringify(seen.raw));
  });

  it('says sign-in is briefly unavailable while the control plane is down; the app still serves', async () => {
    await world.api.close();
    const gate = await get(port, 'shop.petri.localhost', '/.petri/gate');
    assert.equal(gate.status, 503);
    assert.match(gate.body, /Sign-in is briefly unavailable/);
    assert.equal(gate.headers['cache-control'], 'no-store');
    const app = await get(port, 'shop.petri.localhost', '/');
    assert.equal(app.status, 200);
  });
});

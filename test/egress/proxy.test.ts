import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { EgressClient } from '../../src/egress/proxy.js';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import {
  type ProxyWorld,
  RawClient,
  rawExchange,
  startProxy,
  startUpstreams,
  type Upstreams,
  viaProxy,
} from './world.js';

let up: Upstreams;
const worlds: ProxyWorld[] = [];
before(async () => {
  up = await startUpstreams();
});
after(async () => {
  await Promise.all(worlds.map((w) => w.proxy.close()));
  await up.close();
});

/** A proxy for which 127.0.0.1 is the app `shop`, allowed the patterns given. */
async function proxyFor(
  allowed: string[],
  overrides: Parameters<typeof startProxy>[1] = {},
): Promise<ProxyWorld> {
  const clients: Record<string, EgressClient> = { '127.0.0.1': { app: 'shop', allowed } };
  const w = await startProxy(clients, overrides);
  worlds.push(w);
  return w;
}

const declareHint = (host: string) =>
  `petri egress: shop may not reach ${host}. Declare it in petri.toml:\n[network]\negress = ["${host}"]\nand deploy again.\n`;

describe('HTTP forwarding', () => {
  it('forwards an allowed GET to the address it resolved, without hop-by-hop headers', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`]);
    const res = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/hello?x=1`, {
      headers: {
        'proxy-authorization': 'Basic c2VjcmV0',
        'proxy-connection': 'keep-alive',
        connection: 'x-hop',
        'x-hop': 'drop me',
        'x-keep': 'kept',
      },
    });
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body.toString()) as {
      method: string;
      url: string;
      headers: Record<string, string>;
    };
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.headers.host, `upstream.test:${up.httpPort}`);
    assert.equal(seen.headers['x-keep'], 'kept');
    for (const h of ['proxy-authorization', 'proxy-connection', 'x-hop'])
      assert.equal(seen.headers[h], undefined, h);
    // ...and the same on the way back.
    assert.equal(res.headers['x-upstream'], 'yes');
    assert.equal(res.headers['x-drop-me'], undefined);
    assert.deepEqual(w.connects, [{ host: '127.0.0.1', port: up.httpPort }]);
    assert.equal(w.attempts.length, 1);
    assert.deepEqual(
      { ...w.attempts[0], time: undefined },
      {
        app: 'shop',
        host: 'upstream.test',
        port: up.httpPort,
        allowed: true,
        reason: undefined,
        time: undefined,
      },
    );
  });

  it('replaces a Host header that names another host with the target', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`]);
    const res = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`, {
      headers: { host: 'evil.test' },
    });
    assert.equal(
      (JSON.parse(res.body.toString()) as { headers: { host: string } }).headers.host,
      `upstream.test:${up.httpPort}`,
    );
  });

  it('streams large bodies both ways, chunked uploads included', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`]);
    const body = randomBytes(3 * 1024 * 1024 + 7);
    const res = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/upload`, {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body,
    });
    const seen = JSON.parse(res.body.toString()) as { bodyLength: number; bodySha: string };
    assert.equal(seen.bodyLength, body.length);
    assert.equal(seen.bodySha, createHash('sha256').update(body).digest('hex'));

    const down = await viaProxy(
      w.port,
      `http://upstream.test:${up.httpPort}/stream?bytes=${5 * 1024 * 1024}`,
    );
    assert.equal(down.status, 200);
    assert.equal(down.body.length, 5 * 1024 * 1024);
  });

  it('keeps the client connection alive across requests', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/one`, { agent });
      const second = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/two`, { agent });
      assert.equal(first.status, 200);
      assert.equal(second.status, 200);
      assert.equal(second.reusedSocket, true);
      // A refusal does not end the connection either.
      const refused = await viaProxy(w.port, 'http://evil.test/', { agent });
      assert.equal(refused.status, 403);
      const third = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/three`, { agent });
      assert.equal(third.reusedSocket, true);
    } finally {
      agent.destroy();
    }
  });

  it('answers a plain request to the proxy itself with a 400 that says it is a proxy', async () => {
    const w = await proxyFor([]);
    const c = await rawExchange(w.port, 'GET / HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
    assert.equal(c.status, 400);
    assert.match(c.body, /egress proxy, not a web server.*HTTP_PROXY/s);
  });

  it('refuses https:// in absolute form and points to CONNECT', async () => {
    const w = await proxyFor(['upstream.test']);
    const res = await viaProxy(w.port, 'https://upstream.test/');
    assert.equal(res.status, 400);
    assert.match(res.body.toString(), /CONNECT/);
  });
});

describe('CONNECT tunnels', () => {
  it('carries bytes both ways, including bytes sent with the CONNECT request', async () => {
    const w = await proxyFor([`upstream.test:${up.echoPort}`]);
    const c = await RawClient.open(w.port);
    try {
      c.write(
        `CONNECT upstream.test:${up.echoPort} HTTP/1.1\r\nHost: upstream.test:${up.echoPort}\r\n\r\nearly;`,
      );
      await c.waitFor('early;');
      assert.match(c.text, /^HTTP\/1\.1 200 Connection Established\r\n\r\n/);
      c.write('ping;');
      await c.waitFor('ping;');
      const big = 'z'.repeat(1024 * 1024);
      c.write(big);
      await until(() => c.body.length >= 'early;ping;'.length + big.length, { timeout: 5000, interval: 10 });
      assert.deepEqual(w.connects, [{ host: '127.0.0.1', port: up.echoPort }]);
      assert.equal(w.attempts[0]?.allowed, true);
    } finally {
      c.close();
    }
  });

  it('closes a silent tunnel after the idle timeout', async () => {
    const w = await proxyFor([`upstream.test:${up.echoPort}`], { idleTimeoutMs: 300 });
    const c = await RawClient.open(w.port);
    c.write(`CONNECT upstream.test:${up.echoPort} HTTP/1.1\r\n\r\n`);
    await c.waitFor('\r\n\r\n');
    assert.equal(c.status, 200);
    await until(() => up.echoOpen() > 0, { timeout: 5000, interval: 10, message: 'the tunnel to open' });
    await c.waitClosed(5000);
    await until(() => up.echoOpen() === 0, {
      timeout: 5000,
      interval: 10,
      message: 'the upstream side to close',
    });
  });

  it('keeps a tunnel with traffic open past the idle timeout', async () => {
    const w = await proxyFor([`upstream.test:${up.echoPort}`], { idleTimeoutMs: 400 });
    const c = await RawClient.open(w.port);
    try {
      c.write(`CONNECT upstream.test:${up.echoPort} HTTP/1.1\r\n\r\n`);
      await c.waitFor('\r\n\r\n');
      const started = Date.now();
      let n = 0;
      // Talk every ~100 ms for three idle periods; the tunnel must stay up throughout.
      await until(
        async () => {
          const word = `m${n++};`;
          c.write(word);
          await c.waitFor(word, 2000);
          return Date.now() - started > 1200;
        },
        { timeout: 10_000, interval: 100 },
      );
      assert.equal(c.closed, false);
    } finally {
      c.close();
    }
  });
});

describe('refusals', () => {
  it('refuses an undeclared host over HTTP with a 403 that says how to declare it', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`]);
    const res = await viaProxy(w.port, `http://evil.test:${up.httpPort}/`);
    assert.equal(res.status, 403);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.equal(res.body.toString(), declareHint(`evil.test:${up.httpPort}`));
    assert.deepEqual(w.connects, []);
    assert.deepEqual(w.lookups, [], 'an undeclared name is not even resolved');
    assert.equal(w.attempts[0]?.allowed, false);
    assert.equal(w.attempts[0]?.reason, 'not declared');
  });

  it('refuses an undeclared host over CONNECT with the 403 as the CONNECT response', async () => {
    const w = await proxyFor([`upstream.test:${up.echoPort}`]);
    const c = await rawExchange(w.port, 'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n');
    assert.equal(c.status, 403);
    assert.equal(c.body, declareHint('evil.test:443'));
    // The declared port does not open the others.
    const other = await rawExchange(w.port, `CONNECT upstream.test:${up.httpPort} HTTP/1.1\r\n\r\n`);
    assert.equal(other.status, 403);
    assert.deepEqual(w.connects, []);
  });

  it('matches wildcards: any subdomain, not the apex', async () => {
    const w = await proxyFor([`*.wild.test:${up.httpPort}`]);
    assert.equal((await viaProxy(w.port, `http://a.wild.test:${up.httpPort}/`)).status, 200);
    assert.equal((await viaProxy(w.port, `http://DEEP.a.wild.test:${up.httpPort}/`)).status, 200);
    const apex = await viaProxy(w.port, `http://wild.test:${up.httpPort}/`);
    assert.equal(apex.status, 403);
    assert.equal(apex.body.toString(), declareHint(`wild.test:${up.httpPort}`));
    assert.equal(w.connects.length, 2);
  });

  it('refuses an unknown client', async () => {
    const w = await startProxy({});
    worlds.push(w);
    const res = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`);
    assert.equal(res.status, 403);
    assert.match(res.body.toString(), /unknown client/);
    const c = await rawExchange(w.port, `CONNECT upstream.test:${up.echoPort} HTTP/1.1\r\n\r\n`);
    assert.equal(c.status, 403);
    assert.match(c.body, /unknown client/);
    assert.deepEqual(w.connects, []);
    assert.deepEqual(w.lookups, []);
  });

  const privateCases: [string, string, RegExp, string][] = [
    [
      'meta.test',
      '169.254.169.254',
      /meta\.test resolves to a link-local \(cloud metadata\) address \(169\.254\.169\.254\)/,
      'link-local (cloud metadata) address 169.254.169.254',
    ],
    [
      'ten.test',
      '10.0.0.5',
      /ten\.test resolves to a private address \(10\.0\.0\.5\), which apps may not reach/,
      'private address 10.0.0.5',
    ],
    [
      'evil.test',
      '127.0.0.1',
      /evil\.test resolves to a loopback address \(127\.0\.0\.1\)/,
      'loopback address 127.0.0.1',
    ],
    [
      'mixed.test',
      '10.0.0.6',
      /mixed\.test resolves to a private address \(10\.0\.0\.6\)/,
      'private address 10.0.0.6',
    ],
  ];
  for (const [name, ip, message, reason] of privateCases) {
    it(`refuses ${name} (${ip}) even though it is declared, before connecting`, async () => {
      const w = await proxyFor([`${name}:443`, `${name}:80`]);
      const res = await viaProxy(w.port, `http://${name}/latest/meta-data/`);
      assert.equal(res.status, 403);
      assert.match(res.body.toString(), message);
      assert.match(res.body.toString(), new RegExp(`^petri egress: shop may not reach ${name}:80: `));
      const c = await rawExchange(w.port, `CONNECT ${name}:443 HTTP/1.1\r\n\r\n`);
      assert.equal(c.status, 403);
      assert.match(c.body, message);
      assert.deepEqual(w.connects, [], 'no connection may be attempted');
      assert.deepEqual(
        w.attempts.map((a) => [a.allowed, a.reason]),
        [
          [false, reason],
          [false, reason],
        ],
      );
    });
  }

  it('refuses a declared loopback IP literal, and any spelling of one that is not declared', async () => {
    const w = await proxyFor([`127.0.0.1:${up.httpPort}`, `upstream.test:${up.httpPort}`]);
    const literal = await viaProxy(w.port, `http://127.0.0.1:${up.httpPort}/`);
    assert.equal(literal.status, 403);
    assert.match(literal.body.toString(), /127\.0\.0\.1 is a loopback address, which apps may not reach/);
    // Other spellings of 127.0.0.1 are normalised first, and a name pattern never admits an address.
    for (const spelling of ['2130706433', '0x7f.1', '127.1']) {
      const res = await viaProxy(w.port, `http://${spelling}:${up.httpPort}/`);
      assert.equal(res.status, 403, spelling);
    }
    const v6 = await rawExchange(w.port, `CONNECT [::ffff:127.0.0.1]:${up.echoPort} HTTP/1.1\r\n\r\n`);
    assert.equal(v6.status, 403);
    assert.deepEqual(w.connects, []);
  });

  it('refuses an address of this host even in a range apps may otherwise reach, in every IPv6 form', async () => {
    // 93.184.215.14 stands for a public address on the host's own interface; never dialled.
    const w = await proxyFor(
      ['public.test:80', '93.184.215.14:80', '[::ffff:93.184.215.14]:80', '[64:ff9b::5db8:d70e]:80'],
      {
        hostAddresses: () => ['127.0.0.1', '::1', '93.184.215.14', 'fe80::1'],
        resolve: async () => ['93.184.215.14'],
      },
    );
    const byName = await viaProxy(w.port, 'http://public.test/');
    assert.equal(byName.status, 403);
    assert.match(
      byName.body.toString(),
      /public\.test resolves to an address of this host \(93\.184\.215\.14\)/,
    );
    for (const spelling of ['93.184.215.14', '[::ffff:93.184.215.14]', '[64:ff9b::5db8:d70e]']) {
      const res = await viaProxy(w.port, `http://${spelling}/`);
      assert.equal(res.status, 403, spelling);
      assert.match(res.body.toString(), /is an address of this host, which apps may not reach/);
    }
    assert.deepEqual(w.connects, []);
  });

  it('lets the operator allow a private host by name', async () => {
    const w = await proxyFor([`evil.test:${up.httpPort}`], { allowPrivateHosts: ['EVIL.test'] });
    assert.equal((await viaProxy(w.port, `http://evil.test:${up.httpPort}/`)).status, 200);
  });

  it('answers 502 for a name that does not resolve, without connecting', async () => {
    const w = await proxyFor(['nowhere.test']);
    const res = await viaProxy(w.port, 'http://nowhere.test/');
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /cannot resolve nowhere\.test: getaddrinfo ENOTFOUND/);
    assert.deepEqual(w.connects, []);
    assert.deepEqual(
      w.attempts.map((a) => [a.allowed, a.reason]),
      [[true, 'unresolvable: ENOTFOUND']],
    );
  });

  it('answers 502 when the upstream refuses the connection', async () => {
    const closed = await freePort();
    const w = await proxyFor([`upstream.test:${closed}`]);
    const res = await viaProxy(w.port, `http://upstream.test:${closed}/`);
    assert.equal(res.status, 502);
    const c = await rawExchange(w.port, `CONNECT upstream.test:${closed} HTTP/1.1\r\n\r\n`);
    assert.equal(c.status, 502);
    assert.equal(w.attempts[0]?.reason, 'connect failed: ECONNREFUSED');
  });

  it('answers 504 when the upstream does not answer the connection in time', async () => {
    const dialled: net.Socket[] = [];
    // A socket that never connects stands in for a host that drops SYNs.
    const w = await proxyFor([`upstream.test:${up.httpPort}`], {
      connectTimeoutMs: 200,
      connect: () => {
        const s = new net.Socket();
        dialled.push(s);
        return s;
      },
    });
    const res = await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`);
    assert.equal(res.status, 504);
    assert.equal(w.attempts[0]?.reason, 'connect timeout');
    assert.ok(dialled.every((s) => s.destroyed));
  });
});

describe('malformed requests', () => {
  it('answers 400 to a huge header and keeps serving', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`]);
    const c = await rawExchange(
      w.port,
      `GET http://upstream.test:${up.httpPort}/ HTTP/1.1\r\nHost: upstream.test\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    assert.equal(c.status, 400);
    assert.match(c.body, /request headers are too large/);
    assert.equal((await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`)).status, 200);
  });

  it('survives a client that hangs up in the middle of a request body', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`]);
    const c = await RawClient.open(w.port);
    c.write(
      `POST http://upstream.test:${up.httpPort}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial`,
    );
    await until(() => w.connects.length === 1, {
      timeout: 5000,
      interval: 10,
      message: 'the upstream connection',
    });
    c.close();
    assert.equal((await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`)).status, 200);
  });

  const targets = [
    'GET http://[::1/ HTTP/1.1',
    'GET http://exa%00mple.test/ HTTP/1.1',
    'GET http://user:pw@upstream.test/ HTTP/1.1',
    'GET ftp://upstream.test/ HTTP/1.1',
    'GET http:///nohost HTTP/1.1',
    'GET http://upstream.test:99999/ HTTP/1.1',
    'GET http://a..b/ HTTP/1.1',
    'CONNECT upstream.test HTTP/1.1',
    'CONNECT upstream.test:0 HTTP/1.1',
    'CONNECT /path HTTP/1.1',
    'CONNECT http://upstream.test:443/ HTTP/1.1',
    'CONNECT upstream.test:443/x HTTP/1.1',
    'GET http://upstream.test/ HTTP/9.9',
    'NOT A REQUEST',
  ];
  for (const line of targets) {
    it(`answers 400 to ${JSON.stringify(line)} and keeps serving`, async () => {
      const w = await proxyFor([`upstream.test:${up.httpPort}`, 'upstream.test']);
      const c = await rawExchange(w.port, `${line}\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(c.status, 400, c.text);
      assert.match(c.body, /^petri egress: /);
      assert.deepEqual(w.connects, []);
      assert.equal((await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`)).status, 200);
    });
  }
});

describe('counting', () => {
  it('reports every attempt and aggregates counts and lastSeen per app and host', async () => {
    const w = await proxyFor([`upstream.test:${up.httpPort}`, `upstream.test:${up.echoPort}`, 'ten.test']);
    const started = Date.now();
    for (let i = 0; i < 3; i++) await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`);
    await viaProxy(w.port, 'http://evil.test/');
    await viaProxy(w.port, 'http://EVIL.test/');
    await viaProxy(w.port, 'http://ten.test/');
    const c = await RawClient.open(w.port);
    c.write(`CONNECT upstream.test:${up.echoPort} HTTP/1.1\r\n\r\n`);
    await c.waitFor('\r\n\r\n');
    c.close();

    const rows = w.counters.drain();
    const row = (host: string, port: number) => rows.find((r) => r.host === host && r.port === port);
    assert.equal(rows.length, 4);
    assert.equal(row('upstream.test', up.httpPort)?.count, 3);
    assert.equal(row('upstream.test', up.httpPort)?.allowed, true);
    assert.equal(row('upstream.test', up.echoPort)?.count, 1);
    assert.deepEqual(
      [row('evil.test', 80)?.count, row('evil.test', 80)?.allowed, row('evil.test', 80)?.lastReason],
      [2, false, 'not declared'],
    );
    assert.equal(row('ten.test', 80)?.lastReason, 'private address 10.0.0.5');
    for (const r of rows) {
      assert.equal(r.app, 'shop');
      assert.ok(r.lastSeen.getTime() >= started && r.lastSeen.getTime() <= Date.now());
    }
    assert.deepEqual(w.counters.drain(), []);
  });

  it('a failing onAttempt does not break traffic', async () => {
    const warnings: string[] = [];
    const w = await proxyFor([`upstream.test:${up.httpPort}`], {
      onAttempt: () => {
        throw new Error('store is down');
      },
      logger: { warn: (_o, m) => warnings.push(m ?? '') },
    });
    assert.equal((await viaProxy(w.port, `http://upstream.test:${up.httpPort}/`)).status, 200);
    assert.deepEqual(warnings, ['egress proxy: onAttempt failed']);
  });
});

// What an app learns about a request through the real HAProxy: which app a Host header
// reaches, and which forwarding headers the app receives. Clients are raw sockets, so the
// test can send what a browser never would (a comma in Host, two Hosts, an absolute URI),
// and the app is an echo backend answering the headers it saw as JSON.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RouteSpec } from '../../src/router/router.js';
import { makeRouterWorld, type RouterWorld } from './helpers.js';

interface Echo {
  server: http.Server;
  port: number;
}

/** Answers with the app's name, the URL and the headers it saw (raw, so duplicates show). */
async function startEcho(app: string): Promise<Echo> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ app, url: req.url, headers: req.headers, raw: req.rawHeaders }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

interface Seen {
  app: string;
  url: string;
  headers: Record<string, string | undefined>;
  raw: string[];
}

interface RawReply {
  status: number;
  body: string;
}

/** Sends one request as bytes (Connection: close) and reads the whole answer. */
function rawRequest(port: number, head: string): Promise<RawReply> {
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
      let body = at < 0 ? '' : data.slice(at + 4);
      // HAProxy relays the echo's chunked body as is: keep only the JSON.
      const json = /\{.*\}/s.exec(body);
      if (json) body = json[0];
      resolve({ status, body });
    });
    socket.write(`${head}Connection: close\r\n\r\n`);
  });
}

describe('HAProxy: Host routing and forwarding headers', () => {
  let world: RouterWorld;
  let port: number;
  const echoes: Echo[] = [];

  before(async () => {
    world = await makeRouterWorld();
    port = world.opts.httpPort;
    const a = await startEcho('a');
    const b = await startEcho('b');
    echoes.push(a, b);
    const routes: RouteSpec[] = [
      {
        host: 'a.petri.localhost',
        app: 'a',
        servers: [{ id: 'a-web.1', address: '127.0.0.1', port: a.port }],
      },
      {
        host: 'b.petri.localhost',
        app: 'b',
        servers: [{ id: 'b-web.1', address: '127.0.0.1', port: b.port }],
      },
    ];
    await world.router.start();
    await world.router.apply(routes);
  });

  after(async () => {
    await world?.cleanup();
    for (const e of echoes) {
      e.server.closeAllConnections();
      e.server.close();
    }
  });

  const seen = (reply: RawReply): Seen => {
    assert.equal(reply.status, 200, reply.body);
    return JSON.parse(reply.body) as Seen;
  };

  it('routes a plain request by Host', async () => {
    assert.equal(seen(await rawRequest(port, 'GET / HTTP/1.1\r\nHost: b.petri.localhost\r\n')).app, 'b');
  });

  it('refuses a Host with a comma (HAProxy would route it by its last element)', async () => {
    for (const host of [
      'a.petri.localhost, b.petri.localhost',
      'a.petri.localhost,b.petri.localhost',
      ', b.petri.localhost',
    ]) {
      const reply = await rawRequest(port, `GET / HTTP/1.1\r\nHost: ${host}\r\n`);
      assert.equal(reply.status, 400, `Host: ${host} answered ${reply.status} ${reply.body}`);
      assert.match(reply.body, /the Host header must name exactly one host/);
    }
  });

  it('refuses two different Host headers; identical ones reach the app as one', async () => {
    const two = await rawRequest(
      port,
      'GET / HTTP/1.1\r\nHost: a.petri.localhost\r\nHost: b.petri.localhost\r\n',
    );
    assert.equal(two.status, 400, two.body);
    // HAProxy's parser merges identical lines before any rule runs: no ambiguity is left.
    const same = seen(
      await rawRequest(port, 'GET / HTTP/1.1\r\nHost: b.petri.localhost\r\nHost: b.petri.localhost\r\n'),
    );
    assert.equal(same.app, 'b');
    assert.deepEqual(
      same.raw.filter((_, i) => same.raw[i - 1]?.toLowerCase() === 'host' && i % 2 === 1),
      ['b.petri.localhost'],
    );
  });

  it('refuses an absolute-form request whose authority is not its Host', async () => {
    const differ = await rawRequest(
      port,
      'GET http://b.petri.localhost/x HTTP/1.1\r\nHost: a.petri.localhost\r\n',
    );
    assert.equal(differ.status, 400, differ.body);
    const comma = await rawRequest(
      port,
      'GET http://a.petri.localhost,b.petri.localhost/ HTTP/1.1\r\nHost: a.petri.localhost\r\n',
    );
    assert.equal(comma.status, 400, comma.body);
    // When they agree, it is an ordinary request for that app.
    const agree = seen(
      await rawRequest(port, 'GET http://b.petri.localhost/x HTTP/1.1\r\nHost: b.petri.localhost\r\n'),
    );
    assert.deepEqual([agree.app, agree.headers.host], ['b', 'b.petri.localhost']);
  });

  it('HTTP/2 (cleartext, prior knowledge): :authority decides, and a comma in it is refused', async () => {
    const h2 = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<RawReply>((resolve, reject) => {
        const session = http2.connect(`http://127.0.0.1:${port}`);
        session.on('error', reject);
        const req = session.request({ ':path': '/', ...headers });
        let status = 0;
        let body = '';
        req.setEncoding('utf8');
        req.on('response', (h) => {
          status = Number(h[':status']);
        });
        req.on('data', (c: string) => {
          body += c;
        });
        req.on('end', () => {
          session.close();
          resolve({ status, body });
        });
        req.on('error', reject);
        req.end();
      });
    const split = seen(await h2({ ':authority': 'b.petri.localhost', host: 'a.petri.localhost' }));
    assert.deepEqual([split.app, split.headers.host], ['b', 'b.petri.localhost']);
    const comma = await h2({ ':authority': 'a.petri.localhost, b.petri.localhost' });
    assert.equal(comma.status, 400, comma.body);
  });

  it("overwrites or removes every forwarding header a client sends; the app sees the edge's own", async () => {
    const spoofed = [
      'X-Forwarded-For: 203.0.113.9',
      'X-Real-IP: 203.0.113.9',
      'Forwarded: for=203.0.113.9;proto=https;host=bank.example',
      'X-Forwarded-Host: bank.example',
      'X-Forwarded-Proto: https',
      'X-Forwarded-Port: 443',
      'X-Forwarded-Scheme: https',
      'X-Forwarded-Ssl: on',
      'X-Forwarded-Prefix: /admin',
      'X-Forwarded-Server: bank.example',
      'X-Original-Forwarded-For: 203.0.113.9',
      'True-Client-IP: 203.0.113.9',
      'X-Client-IP: 203.0.113.9',
      'Client-IP: 203.0.113.9',
      'X-Cluster-Client-IP: 203.0.113.9',
      'CF-Connecting-IP: 203.0.113.9',
      'Fastly-Client-IP: 203.0.113.9',
      'X-Original-URL: /admin',
      'X-Rewrite-URL: /admin',
      'X-Original-Host: bank.example',
      'X-Host: bank.example',
      // What request-ip (and libraries like it) fall back to: the prefix rule misses them.
      'X-Forwarded: for=203.0.113.9',
      'Forwarded-For: 203.0.113.9',
      'X-ProxyUser-Ip: 203.0.113.9',
      'X-AppEngine-User-IP: 203.0.113.9',
      'Cf-Pseudo-IPv4: 203.0.113.9',
      // Lower case is the same header; underscores become the same CGI/WSGI variable
      // (HTTP_X_REAL_IP) in gunicorn and other gateways, so they are forged headers too.
      'x-forwarded-ssl: on',
      'X_Real_IP: 203.0.113.9',
      'X_Forwarded_Host: bank.example',
      'x_forwarded_proto: https',
    ];
    const app = seen(
      await rawRequest(
        port,
        `GET /x HTTP/1.1\r\nHost: a.petri.localhost:${port}\r\n${spoofed.map((h) => `${h}\r\n`).join('')}`,
      ),
    );
    assert.equal(app.app, 'a');
    assert.deepEqual(
      {
        'x-forwarded-for': app.headers['x-forwarded-for'],
        'x-real-ip': app.headers['x-real-ip'],
        'x-forwarded-host': app.headers['x-forwarded-host'],
        'x-forwarded-proto': app.headers['x-forwarded-proto'],
        'x-forwarded-port': app.headers['x-forwarded-port'],
      },
      {
        'x-forwarded-for': '127.0.0.1',
        'x-real-ip': '127.0.0.1',
        'x-forwarded-host': `a.petri.localhost:${port}`,
        'x-forwarded-proto': 'http',
        'x-forwarded-port': String(port),
      },
    );
    const leaked = app.raw.filter(
      (_, i) => i % 2 === 1 && /203\.0\.113\.9|bank\.example|\/admin|https|^on$|^443$/.test(app.raw[i] ?? ''),
    );
    assert.deepEqual(leaked, [], `client values reached the app: ${JSON.stringify(app.raw)}`);
    assert.deepEqual(
      app.raw.filter((name, i) => i % 2 === 0 && name.includes('_')),
      [],
      'no header with an underscore in its name reaches the app',
    );
    for (const name of [
      'forwarded',
      'x-forwarded-scheme',
      'x-forwarded-ssl',
      'x-forwarded-prefix',
      'true-client-ip',
      'x-original-url',
    ]) {
      assert.equal(app.headers[name], undefined, name);
    }
  });
});

// The audience gate enforced by HAProxy itself (issue 15), through the real HAProxy: a gated
// app's requests pass only with the app's gate cookie (checked with jwt_verify against the
// key in the gate map), the app learns its visitor from X-Petri-User, and keys and audiences
// change through the runtime API with no reload. A public app is left exactly as it was.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { GATE_COOKIE, gateKey, signGateCookie } from '../../src/gate/cookie.js';
import { GATE_JWT_HEADER, GATE_COOKIE as ROUTER_GATE_COOKIE } from '../../src/router/gate-map.js';
import type { RouteSpec } from '../../src/router/router.js';
import { parseShowProc, sendCommand } from '../../src/router/runtime-api.js';
import { makeRouterWorld, type RouterWorld } from './helpers.js';

interface Echo {
  server: http.Server;
  port: number;
  hits: number;
  close(): void;
}

/** Answers with the raw headers it saw, as JSON, and a few headers of its own. */
async function startEcho(app: string): Promise<Echo> {
  const echo = { hits: 0 } as Echo;
  echo.server = http.createServer((req, res) => {
    echo.hits++;
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-app-header': 'kept as is',
      'set-cookie': 'app_session=1; Path=/',
    });
    res.end(JSON.stringify({ app, method: req.method, url: req.url, raw: req.rawHeaders }));
  });
  await new Promise<void>((resolve) => echo.server.listen(0, '127.0.0.1', resolve));
  echo.port = (echo.server.address() as net.AddressInfo).port;
  echo.close = () => {
    echo.server.closeAllConnections();
    echo.server.close();
  };
  return echo;
}

interface Raw {
  status: number;
  /** The response head as bytes on the wire, without the status line. */
  head: string;
  headers: Map<string, string>;
  body: string;
}

/** One request as bytes, so any header (and several X-Petri-User lines) can be sent. */
function send(
  port: number,
  method: string,
  host: string,
  path: string,
  headers: string[] = [],
): Promise<Raw> {
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
      const at = data.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = data.slice(0, at < 0 ? data.length : at).split('\r\n');
      const fields = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(':');
        fields.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
      }
      resolve({
        status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0),
        head: lines.join('\r\n'),
        headers: fields,
        body: Buffer.from(
          dechunk(at < 0 ? '' : data.slice(at + 4), fields.get('transfer-encoding') === 'chunked'),
          'latin1',
        ).toString('utf8'),
      });
    });
    const extra = headers.map((h) => `${h}\r\n`).join('');
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
  });
}

function dechunk(body: string, chunked: boolean): string {
  if (!chunked) return body;
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

const seen = (reply: Raw) =>
  JSON.parse(reply.body) as { app: string; method: string; url: string; raw: string[] };
const headerOf = (reply: Raw, name: string) => {
  const raw = seen(reply).raw;
  const values = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name.toLowerCase());
  return values;
};

describe('HAProxy: the audience gate at the edge', () => {
  const secret = randomBytes(32);
  const LAB_ID = 7;
  const OTHER_ID = 8;
  let kv = 1;
  const labKey = (version = kv) => gateKey(secret, 'cookie', LAB_ID, version);
  const visitor = { app: 'lab', sub: 'zoe@example.org', name: "Zoe O'Hara-Smith", nv: 1, kv: 1 };
  const cookie = (token: string) => `Cookie: theme=dark; ${GATE_COOKIE}=${token}; other=1`;

  let world: RouterWorld;
  let lab: Echo;
  let pub: Echo;
  let other: Echo;
  let port: number;
  let publicBefore: Raw;
  const workers = async () =>
    parseShowProc(await sendCommand(`${world.dir}/master.sock`, 'show proc')).workers;

  const routes = (gated: { lab?: string; pub?: string; other?: string }): RouteSpec[] => {
    const route = (app: string, echo: Echo, key?: string): RouteSpec => ({
      host: `${app}.petri.localhost`,
      app,
      servers: [{ id: `${app}-web.1`, address: '127.0.0.1', port: echo.port }],
      ...(key ? { gate: { key } } : {}),
    });
    return [
      route('lab', lab, gated.lab),
      { ...route('lab', lab, gated.lab), host: 'lab.example.org' },
      route('pub', pub, gated.pub),
      route('other', other, gated.other),
    ];
  };
  const allGated = () => routes({ lab: labKey(), other: gateKey(secret, 'cookie', OTHER_ID, 1) });

  before(async () => {
    world = await makeRouterWorld();
    port = world.opts.httpPort;
    [lab, pub, other] = await Promise.all([startEcho('lab'), startEcho('pub'), startEcho('other')]);
    await world.router.start();
    // Before any app is gated: what a public app answers, to compare with afterwards.
    await world.router.apply(routes({}));
    publicBefore = await send(port, 'GET', 'pub.petri.localhost', '/page?x=1', [cookie('not-a-jwt')]);
    await world.router.apply(allGated());
  });

  after(async () => {
    await world?.cleanup();
    for (const echo of [lab, pub, other]) echo?.close();
  });

  it('checks the cookie header HAProxy expects against the one the gate writes', () => {
    assert.equal(ROUTER_GATE_COOKIE, GATE_COOKIE);
    assert.equal(signGateCookie(labKey(), visitor).split('.')[0], GATE_JWT_HEADER);
  });

  it('sends an anonymous GET or HEAD to the gate with the path and query in next', async () => {
    const hits = lab.hits;
    for (const method of ['GET', 'HEAD']) {
      for (const host of ['lab.petri.localhost', 'lab.example.org', `LAB.petri.localhost:${port}`]) {
        const reply = await send(port, method, host, '/cart/items?a=1&b=%20x');
        assert.equal(reply.status, 302, `${method} ${host}`);
        assert.equal(reply.headers.get('location'), '/.petri/gate?next=%2Fcart%2Fitems%3Fa%3D1%26b%3D%2520x');
      }
    }
    assert.equal(lab.hits, hits, 'the app got no request');
  });

  it('answers other methods without a valid cookie 401, asking to reload', async () => {
    const hits = lab.hits;
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const reply = await send(port, method, 'lab.petri.localhost', '/api/save', ['Content-Length: 0']);
      assert.equal(reply.status, 401, method);
      assert.match(reply.body, /reload the page/i);
      assert.equal(reply.headers.get('cache-control'), 'no-store');
    }
    assert.equal(lab.hits, hits, 'the app got no request');
  });

  it("lets a valid cookie through, and tells the app who the visitor is (never the client's claim)", async () => {
    const token = signGateCookie(labKey(), visitor);
    for (const method of ['GET', 'POST']) {
      const reply = await send(port, method, 'lab.petri.localhost', '/me?x=1', [
        cookie(token),
        'X-Petri-User: boss@example.org',
        'X-Petri-User-Name: The Boss',
        'x-petri-user: boss2@example.org',
        'Content-Length: 0',
      ]);
      assert.equal(reply.status, 200, reply.body);
      assert.equal(seen(reply).app, 'lab');
      assert.equal(seen(reply).url, '/me?x=1');
      assert.deepEqual(headerOf(reply, 'X-Petri-User'), ['zoe@example.org']);
      assert.deepEqual(headerOf(reply, 'X-Petri-User-Name'), ["Zoe O'Hara-Smith"]);
    }
  });

  it("passes the gate's names in UTF-8 as the app reads them; quotes and backslashes never reach it", async () => {
    // HAProxy 2.6's json_query copies UTF-8 text as is, but decodes a \u escape above
    // \u00ff to nothing and leaves \\ and \" escaped: the gate signs names as UTF-8, and
    // keeps quotes and backslashes out of them.
    const token = signGateCookie(labKey(), { ...visitor, name: 'Zoë "Z" 山田 \\ de\\ta' });
    const reply = await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(token)]);
    assert.equal(reply.status, 200);
    // Node reads header values as latin1: these are the UTF-8 bytes HAProxy sent.
    const names = headerOf(reply, 'X-Petri-User-Name').map((v) => Buffer.from(v, 'latin1').toString('utf8'));
    assert.deepEqual(names, ['Zoë Z 山田 deta']);
  });

  it('refuses forged, alg none, expired, tampered, other-app and other-version cookies', async () => {
    const now = Date.now();
    const valid = signGateCookie(labKey(), visitor, now);
    const [h, p] = valid.split('.') as [string, string, string];
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    const refused: Record<string, string> = {
      'signed with another secret': signGateCookie(gateKey(randomBytes(32), 'cookie', LAB_ID, kv), visitor),
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
      'alg none with the signature kept': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.${valid.split('.')[2]}`,
      'HS512 header': `${b64({ alg: 'HS512', typ: 'JWT' })}.${p}.${valid.split('.')[2]}`,
      expired: signGateCookie(labKey(), visitor, now - 13 * 3600_000),
      'payload changed after signing': `${h}.${b64({ ...claims, sub: 'boss@example.org' })}.${valid.split('.')[2]}`,
      "another app's cookie": signGateCookie(gateKey(secret, 'cookie', OTHER_ID, 1), {
        ...visitor,
        app: 'other',
      }),
      "another app's key, this app's name": signGateCookie(gateKey(secret, 'cookie', OTHER_ID, 1), visitor),
      "this app's key, another app's name": signGateCookie(labKey(), { ...visitor, app: 'other' }),
      'an older key version': signGateCookie(labKey(kv - 1 === 0 ? 99 : kv - 1), visitor),
      'no signature': `${h}.${p}`,
      garbage: 'x.y.z',
      empty: '',
    };
    const hits = lab.hits;
    for (const [what, token] of Object.entries(refused)) {
      const reply = await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(token)]);
      assert.equal(reply.status, 302, what);
    }
    assert.equal(lab.hits, hits, 'the app got no request');
    // And the valid one still passes, so the refusals were the cookies'.
    assert.equal((await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(valid)])).status, 200);
  });

  it('leaves the gate pages open on a gated host (to the control plane, no cookie needed)', async () => {
    for (const path of [
      '/.petri/gate?next=%2F',
      '/.petri/sso?ticket=t&next=%2F',
      '/.petri/consent',
      '/.petri/leave',
      '/.petri/join/abc',
    ]) {
      const reply = await send(port, 'GET', 'lab.petri.localhost', path);
      assert.equal(reply.status, 200, path);
      assert.match(reply.body, /^backend:api /, path);
    }
  });

  it('rotates a key with no reload: the old cookie is refused on the very next request', async () => {
    const before = await workers();
    const old = signGateCookie(labKey(), visitor);
    assert.equal((await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(old)])).status, 200);
    kv++;
    await world.router.apply(allGated());
    assert.equal((await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(old)])).status, 302);
    const fresh = signGateCookie(labKey(), { ...visitor, kv });
    assert.equal((await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(fresh)])).status, 200);
    assert.equal((await send(port, 'GET', 'lab.example.org', '/', [cookie(fresh)])).status, 200);
    assert.deepEqual(await workers(), before, 'no reload');
  });

  it('makes an app public and gated again with no reload, each at once', async () => {
    const before = await workers();
    await world.router.apply(routes({ other: gateKey(secret, 'cookie', OTHER_ID, 1) }));
    const open = await send(port, 'GET', 'lab.petri.localhost', '/', ['X-Petri-User: boss@example.org']);
    assert.equal(open.status, 200);
    assert.deepEqual(headerOf(open, 'X-Petri-User'), [], 'a public app never gets X-Petri-User');
    await world.router.apply(allGated());
    assert.equal((await send(port, 'GET', 'lab.petri.localhost', '/')).status, 302);
    assert.deepEqual(await workers(), before, 'no reload');
  });

  it("leaves a public app's request and response exactly as they were before any gate", async () => {
    const after = await send(port, 'GET', 'pub.petri.localhost', '/page?x=1', [cookie('not-a-jwt')]);
    const withoutDate = (head: string) =>
      head
        .split('\r\n')
        .filter((l) => !/^date:/i.test(l))
        .join('\r\n');
    assert.equal(after.status, 200);
    assert.equal(withoutDate(after.head), withoutDate(publicBefore.head));
    assert.equal(after.body, publicBefore.body);
    assert.deepEqual(headerOf(after, 'cookie'), [`theme=dark; ${GATE_COOKIE}=not-a-jwt; other=1`]);
  });

  it('keeps the gate through a reload and a restart (the map file on disk)', async () => {
    const fresh = signGateCookie(labKey(), { ...visitor, kv });
    const old = signGateCookie(labKey(kv - 1), visitor);
    // A moved app changes the config: a reload, whose new worker loads the maps from disk.
    const before = await workers();
    await world.router.apply([
      ...allGated(),
      {
        host: 'new.petri.localhost',
        app: 'new',
        servers: [],
        answer: { kind: 'redirect', location: 'https://example.org/' },
      },
    ]);
    assert.notDeepEqual(await workers(), before);
    assert.equal((await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(old)])).status, 302);
    assert.equal((await send(port, 'GET', 'lab.petri.localhost', '/', [cookie(fresh)])).status, 200);
    assert.equal((await send(port, 'GET', 'pub.petri.localhost', '/')).status, 200);
  });

  it('lets a valid cookie reach the app while the control plane is down', async () => {
    await world.api.close();
    const fresh = signGateCookie(labKey(), { ...visitor, kv });
    const reply = await send(port, 'GET', 'lab.petri.localhost', '/still', [cookie(fresh)]);
    assert.equal(reply.status, 200);
    assert.deepEqual(headerOf(reply, 'X-Petri-User'), ['zoe@example.org']);
    const gate = await send(port, 'GET', 'lab.petri.localhost', '/.petri/gate?next=%2F');
    assert.equal(gate.status, 503);
    assert.match(gate.body, /Sign-in is briefly unavailable/);
  });
});

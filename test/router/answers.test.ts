// What the router answers itself for an app, through the real haproxy: 410 for an experiment
// that expired or was archived (naming it, its owner and how to renew), 403 while one awaits
// review, 308 to a graduated app's new home, with the app's servers getting no request.
// A redirect target is written into HAProxy's config: hostile ones must neither break the
// directive nor reach HAProxy's $ENV expansion or log-format.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { redirectLocation } from '../../src/lib/redirect-location.js';
import { renderHaproxyConfig } from '../../src/router/config.js';
import type { RouteSpec } from '../../src/router/router.js';
import { type Backend, get, makeRouterWorld, type RouterWorld, startBackend } from './helpers.js';

describe('redirectLocation', () => {
  it('keeps ordinary URLs and %-encodes what could break out of the config', () => {
    assert.equal(redirectLocation('https://tool.example.org/'), 'https://tool.example.org/');
    assert.equal(
      redirectLocation('https://tool.example.org/a?b=1&c=%41#x'),
      'https://tool.example.org/a?b=1&c=%41#x',
    );
    assert.equal(
      redirectLocation(`https://x.example/$HOME/'q'?a="b"\\c d`),
      'https://x.example/%24HOME/%27q%27?a=%22b%22%5Cc%20d',
    );
    assert.equal(
      redirectLocation('https://x.example/\n  http-request deny'),
      'https://x.example/%20%20http-request%20deny',
    );
    assert.equal(redirectLocation('https://bücher.example/ä'), 'https://xn--bcher-kva.example/%C3%A4');
  });

  it('refuses what is not an absolute http(s) URL without credentials', () => {
    for (const bad of [
      'javascript:alert(1)',
      'ftp://x.example/',
      '/relative',
      'https://u:p@x.example/',
      'nonsense',
    ]) {
      assert.equal(redirectLocation(bad), undefined, bad);
    }
  });

  it('is refused by the config renderer unless made safe', () => {
    const opts = {
      dir: '/tmp/x',
      httpPort: 8080,
      apiHost: 'petri.localhost',
      domain: 'petri.localhost',
      apiServer: { address: '127.0.0.1', port: 7070 },
    };
    const route = (location: string): RouteSpec[] => [
      { host: 'a.petri.localhost', app: 'a', servers: [], answer: { kind: 'redirect', location } },
    ];
    assert.throws(() => renderHaproxyConfig(opts, route('https://x.example/"\n  bind :1')), /URL-safe/);
    assert.throws(() => renderHaproxyConfig(opts, route('https://x.example/$HOME')), /URL-safe/);
    assert.throws(() => renderHaproxyConfig(opts, route('javascript:alert(1)')), /URL-safe/);
  });
});

describe('the answers of HAProxy for expired, archived, unreviewed and moved apps', () => {
  let world: RouterWorld;
  let backend: Backend;
  let port: number;
  const hostile = redirectLocation(`https://new.example.org/tool/$HOME/100%?q='"x"'&r=[1]#top`)!;

  before(async () => {
    world = await makeRouterWorld();
    port = world.opts.httpPort;
    backend = await startBackend('app');
    await world.router.start();
    const since = '2027-03-01T00:00:00.000Z';
    await world.router.apply([
      { host: 'live.petri.localhost', app: 'live', servers: [backend.route] },
      {
        host: 'ended.petri.localhost',
        app: 'ended',
        servers: [backend.route],
        answer: { kind: 'expired', owner: 'ana@example.org', since },
      },
      {
        host: 'shelved.petri.localhost',
        app: 'shelved',
        servers: [],
        answer: { kind: 'archived', owner: '<b>bob</b>', since },
      },
      {
        host: 'secret.petri.localhost',
        app: 'secret',
        servers: [backend.route],
        // Awaiting review is no answer of the router's any more: the app is gated, and the
        // gate lets only its team through.
        gate: { key: 'k'.repeat(43) },
      },
      {
        host: 'moved.petri.localhost',
        app: 'moved',
        servers: [],
        answer: { kind: 'redirect', location: hostile },
      },
    ]);
  });
  after(async () => {
    await world?.cleanup();
    await backend?.close();
  });

  it('serves an app with no answer', async () => {
    assert.equal((await get(port, 'live.petri.localhost')).status, 200);
  });

  it('answers 410 for an expired experiment, naming it, its owner and how to renew', async () => {
    const reply = await get(port, 'ended.petri.localhost', '/some/page');
    assert.equal(reply.status, 410);
    assert.match(String(reply.headers['content-type']), /text\/html/);
    assert.equal(reply.headers['cache-control'], 'no-store');
    assert.match(
      reply.body,
      /<strong>ended<\/strong>.*owned by <strong>ana@example\.org<\/strong>, expired on 2027-03-01 00:00 UTC/,
    );
    assert.match(reply.body, /<code>petri apps renew ended<\/code>/);
    assert.doesNotMatch(reply.body, /backend:app/, 'its servers get no request');
  });

  it('answers 410 for an archived one, its owner escaped', async () => {
    const reply = await get(port, 'shelved.petri.localhost');
    assert.equal(reply.status, 410);
    assert.match(reply.body, /was archived on 2027-03-01 00:00 UTC/);
    assert.match(reply.body, /&#60;b&#62;bob&#60;\/b&#62;/);
  });

  it('sends a visitor of an app awaiting review to the gate, not to the app', async () => {
    const hits = backend.hits;
    const reply = await get(port, 'secret.petri.localhost', '/data');
    assert.equal(reply.status, 302);
    assert.equal(reply.headers.location, '/.petri/gate?next=%2Fdata');
    assert.equal(backend.hits, hits, 'its servers get no request');
  });

  it('redirects a graduated app with 308 to exactly its new home', async () => {
    const reply = await get(port, 'moved.petri.localhost', '/old/path');
    assert.equal(reply.status, 308);
    assert.equal(reply.headers.location, hostile);
    assert.match(hostile, /%24HOME/, 'no $HOME expanded');
  });
});

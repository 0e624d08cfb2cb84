// Static sites end to end: `petri deploy` of a directory with only an index.html and its
// assets, built and served by Petri's static file server in the app's sandbox, checked
// through the real router: pages, content types, ETag and 304, gzip, the site's own 404.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri } from './petri.js';

const SITE = path.join(FIXTURES, 'static-site');

interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

describe('deploy a static site', () => {
  let petri: TestPetri;
  /** Through the router as the app's host, the body kept as bytes (it may be gzip). */
  const get = (urlPath: string, headers: Record<string, string> = {}): Promise<RawReply> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: petri.httpPort,
          path: urlPath,
          headers: { ...headers, host: 'site.petri.localhost', connection: 'close' },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error(`request to ${urlPath} timed out`)));
      req.on('error', reject);
      req.end();
    });

  before(async () => {
    petri = await TestPetri.start();
    const created = await petri.cli(['apps', 'create', 'site']);
    assert.equal(created.code, 0, created.stderr);
  });
  after(async () => {
    await petri?.destroy();
  });

  test('is detected, built and served at NAME.petri.localhost', async () => {
    const deploy = await petri.cli(['deploy', SITE, '--app', 'site']);
    assert.equal(deploy.code, 0, deploy.stderr);
    assert.match(deploy.stdout, /Static site app detected/);
    assert.match(deploy.stdout, /Installing the static file server/);
    assert.match(deploy.stdout, /Deployed site v1/);
    const home = await get('/');
    assert.equal(home.status, 200);
    assert.match(home.body.toString(), /static-site home/);
    assert.equal(home.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(home.headers['cache-control'], 'no-cache');
    const docs = await get('/docs/');
    assert.match(docs.body.toString(), /static-site docs/);
    const redirect = await get('/docs');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/docs/');
  });

  test('assets have their content type, an ETag that answers 304, and gzip', async () => {
    const css = await get('/style.css');
    assert.equal(css.status, 200);
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    assert.equal(css.headers['cache-control'], 'public, max-age=3600');
    assert.equal(css.body.toString(), readFileSync(path.join(SITE, 'style.css'), 'utf8'));
    const etag = css.headers.etag;
    assert.ok(etag, 'an ETag');
    const cached = await get('/style.css', { 'if-none-match': etag });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);

    const gz = await get('/style.css', { 'accept-encoding': 'gzip' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers.vary, 'Accept-Encoding');
    assert.equal(gunzipSync(gz.body).toString(), readFileSync(path.join(SITE, 'style.css'), 'utf8'));

    const js = await get('/app.js');
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  });

  test("a missing page is the site's 404.html; Petri's server itself is not served", async () => {
    const missing = await get('/no/such/page');
    assert.equal(missing.status, 404);
    assert.match(missing.body.toString(), /static-site: this page is not here/);
    const server = await get('/.petri/static-server.mjs');
    assert.equal(server.status, 404);
    assert.doesNotMatch(server.body.toString(), /createStaticServer/);
    assert.equal((await get('/%2e%2e/%2e%2e/etc/passwd')).status, 404);
  });

  test('requests show in petri logs, one line each', async () => {
    await until(
      async () => {
        const logs = await petri.cli(['logs', '--app', 'site', '-n', '200']);
        return /web\.1.*GET \/style\.css 304/.test(logs.stdout);
      },
      { timeout: 10_000, message: 'the request lines in petri logs' },
    );
  });
});

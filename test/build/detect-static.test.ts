// The static stack: detection (index.html, and only when no other stack claims the tree) and
// Petri's static file server, in-process and as the child the web process runs, against a
// temp site: content types, ETag/304, compression, 404 pages, methods, traversal attempts.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { planBuild } from '../../src/build/detect.js';
import { STATIC_SERVER_PATH, staticDetector, staticServerSource } from '../../src/build/detect-static.js';
import { createStaticServer } from '../../src/build/static-server/server.mjs';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';

const SERVER_FILE = path.resolve(import.meta.dirname, '../../src/build/static-server/server.mjs');

function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-static-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe('static site detection', () => {
  const dirs: string[] = [];
  const site = (files: Record<string, string>) => {
    const dir = tempDir(files);
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('an index.html at the root is a static site served by the server the build installs', async () => {
    const plan = await staticDetector.detect(site({ 'index.html': '<h1>hi</h1>' }));
    assert.ok(plan);
    assert.equal(plan.stack, 'static');
    assert.deepEqual(plan.processTypes, { web: 'node /app/.petri/static-server.mjs' });
    assert.deepEqual(plan.env, { PATH: '/usr/local/bin:/usr/bin:/bin' });
    assert.equal(plan.steps.length, 1);
    const step = plan.steps[0]!;
    assert.deepEqual(step.argv.slice(0, 2), ['/usr/bin/node', '-e']);
    assert.equal(step.env?.PETRI_STATIC_SERVER_SOURCE, readFileSync(SERVER_FILE, 'utf8'));
    assert.equal(STATIC_SERVER_PATH, '/app/.petri/static-server.mjs');
  });

  test('the install step writes the server where the web process looks for it', () => {
    const plan = staticDetector.detect(site({ 'index.html': 'x' }));
    return plan.then((p) => {
      // The step's script with /app swapped for a temp dir, run as the sandbox would run it.
      const dir = site({});
      const script = p!.steps[0]!.argv[2]!.replaceAll('/app/', `${dir}/`);
      return new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['-e', script], {
          env: { PETRI_STATIC_SERVER_SOURCE: staticServerSource() },
          stdio: 'inherit',
        });
        child.once('error', reject);
        child.once('exit', (code) => {
          try {
            assert.equal(code, 0);
            assert.equal(
              readFileSync(path.join(dir, '.petri/static-server.mjs'), 'utf8'),
              staticServerSource(),
            );
            resolve();
          } catch (err) {
            reject(err);
          }
        });
      });
    });
  });

  test('no index.html, or another stack beside it, is not a static site', async () => {
    assert.equal(await staticDetector.detect(site({ 'about.html': 'x' })), undefined);
    assert.equal(await staticDetector.detect(site({ 'docs/index.html': 'x' })), undefined);
    for (const other of ['package.json', 'requirements.txt', 'pyproject.toml']) {
      assert.equal(await staticDetector.detect(site({ 'index.html': 'x', [other]: '{}' })), undefined, other);
    }
  });

  test('planBuild: node comes first, static is the fallback, a Procfile web: line wins', async () => {
    const node = await planBuild(
      site({ 'index.html': 'x', 'package.json': '{"scripts":{"start":"node s.js"}}' }),
    );
    assert.equal(node.stack, 'node');
    const plain = await planBuild(site({ 'index.html': 'x' }));
    assert.equal(plain.stack, 'static');
    assert.equal(plain.processTypes.web, 'node /app/.petri/static-server.mjs');
    const procfile = await planBuild(site({ 'index.html': 'x', Procfile: 'web: python3 -m http.server\n' }));
    assert.equal(procfile.stack, 'static');
    assert.equal(procfile.processTypes.web, 'python3 -m http.server');
  });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A raw request: the path goes out as written (no client-side dot-segment removal). */
function request(
  port: number,
  urlPath: string,
  { method = 'GET', headers = {} }: { method?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: urlPath, method, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error(`request ${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const BIG_CSS = `/* big */\n${'.a { color: red; margin: 0 auto; }\n'.repeat(100)}`;

describe('the static file server', () => {
  let root: string;
  let outside: string;
  let server: http.Server;
  let port: number;
  const lines: string[] = [];
  const get = (urlPath: string, opts?: Parameters<typeof request>[2]) => request(port, urlPath, opts);

  before(async () => {
    outside = tempDir({ 'secret.txt': 'outside secret' });
    root = tempDir({
      'index.html': '<h1>home</h1>',
      'style.css': BIG_CSS,
      'small.css': '.a{}',
      'app.js': 'console.log(1)',
      'mod.mjs': 'export {}',
      'data.json': '{}',
      'logo.svg': '<svg/>',
      'pic.png': 'png',
      'pic.jpg': 'jpg',
      'anim.gif': 'gif',
      'pic.webp': 'webp',
      'favicon.ico': 'ico',
      'robots.txt': 'User-agent: *',
      'feed.xml': '<feed/>',
      'mod.wasm': 'wasm',
      'font.woff': 'woff',
      'font.woff2': 'woff2',
      'app.js.map': '{}',
      'doc.pdf': 'pdf',
      'blob.bin': 'bin',
      '404.html': '<h1>custom not found</h1>',
      'docs/index.html': '<h1>docs</h1>',
      'empty/.keep': '',
      '.env': 'SECRET=1',
      '.petri/static-server.mjs': 'server source',
      'petri.toml': 'name = "x"',
      Procfile: 'web: x',
    });
    symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'escape.txt'));
    symlinkSync(outside, path.join(root, 'escape-dir'));
    symlinkSync(path.join(root, '.env'), path.join(root, 'env-link.txt'));
    symlinkSync(path.join(root, 'robots.txt'), path.join(root, 'robots-link.txt'));
    server = createStaticServer({ root, log: (line: string) => lines.push(line) });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  test('serves index.html for / and for a directory, redirecting /docs to /docs/', async () => {
    const home = await get('/');
    assert.equal(home.status, 200);
    assert.equal(home.body.toString(), '<h1>home</h1>');
    assert.equal(home.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(home.headers['cache-control'], 'no-cache');
    assert.equal((await get('/docs/')).body.toString(), '<h1>docs</h1>');
    const redirect = await get('/docs?x=1');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/docs/?x=1');
    // Never a protocol-relative Location from a path starting with //.
    const slashes = await get('//docs');
    assert.equal(slashes.headers.location, '/docs/');
    assert.equal((await get('/empty/')).status, 404);
  });

  test('content types of common extensions', async () => {
    const expected: Record<string, string> = {
      '/style.css': 'text/css; charset=utf-8',
      '/app.js': 'text/javascript; charset=utf-8',
      '/mod.mjs': 'text/javascript; charset=utf-8',
      '/data.json': 'application/json',
      '/logo.svg': 'image/svg+xml',
      '/pic.png': 'image/png',
      '/pic.jpg': 'image/jpeg',
      '/anim.gif': 'image/gif',
      '/pic.webp': 'image/webp',
      '/favicon.ico': 'image/x-icon',
      '/robots.txt': 'text/plain; charset=utf-8',
      '/feed.xml': 'application/xml',
      '/mod.wasm': 'application/wasm',
      '/font.woff': 'font/woff',
      '/font.woff2': 'font/woff2',
      '/app.js.map': 'application/json',
      '/doc.pdf': 'application/pdf',
      '/blob.bin': 'application/octet-stream',
    };
    for (const [urlPath, type] of Object.entries(expected)) {
      const reply = await get(urlPath);
      assert.equal(reply.status, 200, urlPath);
      assert.equal(reply.headers['content-type'], type, urlPath);
      assert.equal(reply.headers['x-content-type-options'], 'nosniff');
    }
    assert.equal((await get('/pic.png')).headers['cache-control'], 'public, max-age=3600');
  });

  test('ETag and Last-Modified; 304 on If-None-Match and If-Modified-Since; a change shows', async () => {
    const first = await get('/app.js');
    const etag = first.headers.etag;
    assert.match(etag ?? '', /^W\/"[0-9a-f]+-[0-9a-f]+"$/);
    assert.ok(first.headers['last-modified']);
    const cached = await get('/app.js', { headers: { 'if-none-match': etag! } });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);
    assert.equal(cached.headers.etag, etag);
    assert.equal((await get('/app.js', { headers: { 'if-none-match': `"x", ${etag}` } })).status, 304);
    assert.equal((await get('/app.js', { headers: { 'if-none-match': '"other"' } })).status, 200);
    const since = await get('/app.js', { headers: { 'if-modified-since': first.headers['last-modified']! } });
    assert.equal(since.status, 304);
    // If-None-Match wins: a stale ETag with a fresh date is still a 200.
    const both = await get('/app.js', {
      headers: { 'if-none-match': '"stale"', 'if-modified-since': first.headers['last-modified']! },
    });
    assert.equal(both.status, 200);
    writeFileSync(path.join(root, 'app.js'), 'console.log(2)');
    utimesSync(path.join(root, 'app.js'), new Date(), new Date(Date.now() + 5000));
    const changed = await get('/app.js', { headers: { 'if-none-match': etag! } });
    assert.equal(changed.status, 200);
    assert.equal(changed.body.toString(), 'console.log(2)');
    assert.notEqual(changed.headers.etag, etag);
  });

  test('gzip and brotli above 1 KiB for compressible types, by Accept-Encoding, with Vary', async () => {
    const gz = await get('/style.css', { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers.vary, 'Accept-Encoding');
    assert.equal(gz.headers['content-length'], undefined);
    assert.ok(gz.body.length < BIG_CSS.length / 4);
    assert.equal(zlib.gunzipSync(gz.body).toString(), BIG_CSS);
    const br = await get('/style.css', { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(zlib.brotliDecompressSync(br.body).toString(), BIG_CSS);
    const noBr = await get('/style.css', { headers: { 'accept-encoding': 'br;q=0, gzip;q=0.5' } });
    assert.equal(noBr.headers['content-encoding'], 'gzip');
    const plain = await get('/style.css');
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.headers['content-length'], String(BIG_CSS.length));
    assert.equal(plain.body.toString(), BIG_CSS);
    const small = await get('/small.css', { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(small.headers['content-encoding'], undefined);
    const head = await get('/style.css', { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-encoding'], 'gzip');
    assert.equal(head.body.length, 0);
  });

  test("404 is the site's 404.html, else a small default page", async () => {
    const missing = await get('/nope.html');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.toString(), '<h1>custom not found</h1>');
    assert.equal(missing.headers['content-type'], 'text/html; charset=utf-8');
    const bare = tempDir({ 'index.html': 'x' });
    const other = createStaticServer({ root: bare, log: () => {} });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const reply = await request((other.address() as AddressInfo).port, '/nope');
      assert.equal(reply.status, 404);
      assert.match(reply.body.toString(), /404 Not Found/);
    } finally {
      await new Promise((resolve) => other.close(resolve));
      rmSync(bare, { recursive: true, force: true });
    }
  });

  test('GET and HEAD only', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const reply = await get('/', { method });
      assert.equal(reply.status, 405, method);
      assert.equal(reply.headers.allow, 'GET, HEAD');
    }
    const head = await get('/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], String('<h1>home</h1>'.length));
  });

  test('traversal, dotfiles, platform files and symlinks out of the root are refused', async () => {
    const refused = [
      '/../../etc/passwd',
      '/..%2f..%2fetc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/%2e%2e/',
      '/docs/../../etc/passwd',
      '/..\\..\\etc\\passwd',
      '/.env',
      '/.petri/static-server.mjs',
      '/%2epetri/static-server.mjs',
      '/docs/..%2f.env',
      '/petri.toml',
      '/Procfile',
      '/escape.txt',
      '/escape-dir/secret.txt',
      '/env-link.txt',
    ];
    for (const urlPath of refused) {
      const reply = await get(urlPath);
      assert.equal(reply.status, 404, urlPath);
      assert.doesNotMatch(reply.body.toString(), /root:|outside secret|SECRET|server source|name =/, urlPath);
    }
    for (const urlPath of ['/%00', '/index.html%00.png', '/%E0%A4%A', 'index.html']) {
      assert.equal((await get(urlPath)).status, 400, urlPath);
    }
    // A symlink that stays inside the root is followed.
    assert.equal((await get('/robots-link.txt')).body.toString(), 'User-agent: *');
  });

  test('one log line per request: method, path (no query), status, time', async () => {
    lines.length = 0;
    await get('/feed.xml?token=hunter2');
    // The line is written when the response closes, which may be just after the client has it.
    const line = await until(() => lines.find((l) => l.startsWith('GET /feed.xml ')), { timeout: 2000 });
    assert.match(line, /^GET \/feed\.xml 200 \d+\.\dms$/);
    assert.doesNotMatch(lines.join('\n'), /hunter2/);
  });
});

describe('the static file server as the web process runs it', () => {
  let child: ChildProcess | undefined;
  let root: string;
  after(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  test('node server.mjs ROOT listens on $PORT, logs requests and exits on SIGTERM', async () => {
    root = tempDir({ 'index.html': '<h1>child</h1>' });
    const port = await freePort();
    let output = '';
    const proc = spawn(process.execPath, [SERVER_FILE, root], {
      env: { PORT: String(port), PATH: '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout?.on('data', (d) => (output += d));
    proc.stderr?.on('data', (d) => (output += d));
    await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`server exited: ${output}`);
        return output.includes(`on 0.0.0.0:${port}`);
      },
      { timeout: 10_000, message: 'the static server to listen' },
    );
    const reply = await request(port, '/');
    assert.equal(reply.body.toString(), '<h1>child</h1>');
    await until(() => output.includes('GET / 200'), { timeout: 2000 });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  });

  test('without a valid PORT it says so and exits', async () => {
    const proc = spawn(process.execPath, [SERVER_FILE, root], { env: {}, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    proc.stderr?.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(err, /PORT must be a port number/);
  });
});

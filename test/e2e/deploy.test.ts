// The first deploy, end to end: `petri deploy` of real fixture apps through the real API,
// builder, bubblewrap sandbox and HAProxy router, with each outcome and message asserted.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri, writeApp } from './petri.js';

describe('deploy a Node.js app to a live URL', () => {
  let petri: TestPetri;
  before(async () => {
    petri = await TestPetri.start();
  });
  after(async () => {
    await petri?.destroy();
  });

  test('a zero-dependency app is built, sandboxed and served at NAME.petri.localhost', async () => {
    assert.equal((await petri.cli(['apps', 'create', 'zdep'])).code, 0);
    const started = Date.now();
    const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'zdep']);
    assert.equal(deploy.code, 0, deploy.stderr);
    assert.match(deploy.stdout, /Node\.js app detected/);
    assert.match(deploy.stdout, /Deployed zdep v1 in [0-9.]+ ?s/);
    assert.match(deploy.stdout, new RegExp(`http://zdep\\.petri\\.localhost:${petri.httpPort}`));
    assert.ok(Date.now() - started < 20_000);

    const res = await petri.app('zdep');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hello from zero-dep v1\n');

    // Its own user, not root.
    const who = JSON.parse((await petri.app('zdep', '/whoami')).body) as { uid: number };
    assert.ok(who.uid >= 200_000, `app runs as uid ${who.uid}`);

    const info = await petri.cli(['apps', 'info', 'zdep', '--json']);
    const app = JSON.parse(info.stdout) as {
      status: string;
      release: string;
      processes: { name: string; state: string }[];
    };
    assert.equal(app.status, 'running');
    assert.equal(app.release, 'v1');
    assert.deepEqual(
      app.processes.map((p) => [p.name, p.state]),
      [['web.1', 'up']],
    );
  });

  test('logs show build and app output with timestamps and sources', async () => {
    await until(
      async () => (await petri.cli(['logs', '--app', 'zdep', '-n', '200'])).stdout.includes('listening on'),
      { timeout: 5000, message: "the app's output in petri logs" },
    );
    const logs = await petri.cli(['logs', '--app', 'zdep', '-n', '200', '--json']);
    const lines = logs.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { time: string; source: string; text: string });
    assert.ok(lines.some((l) => l.source === 'build' && /Node\.js app detected/.test(l.text)));
    const listening = lines.find((l) => l.source === 'web.1' && /^listening on \d+$/.test(l.text));
    assert.ok(listening, 'web.1 line present');
    assert.ok(!Number.isNaN(Date.parse(listening.time)));
  });

  test('an app with npm dependencies and a build step', async () => {
    await petri.cli(['apps', 'create', 'built']);
    const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'npm-build'), '--app', 'built']);
    assert.equal(deploy.code, 0, deploy.stderr + deploy.stdout);
    assert.match(deploy.stdout, /npm ci/);
    assert.match(deploy.stdout, /build step wrote dist\/answer\.txt/);
    const res = await petri.app('built');
    assert.equal(res.body, 'built: isNumber(42) is true\n');
  });

  test('a redeploy with unchanged dependencies restores them from the build cache; --no-cache reinstalls', async () => {
    const cached = await petri.cli(['deploy', path.join(FIXTURES, 'npm-build'), '--app', 'built']);
    assert.equal(cached.code, 0, cached.stderr);
    assert.match(cached.stdout, /Dependencies unchanged: restored from the build cache/);
    assert.doesNotMatch(cached.stdout, /npm ci/);
    assert.match(cached.stdout, /build step wrote dist\/answer\.txt/);
    assert.equal((await petri.app('built')).body, 'built: isNumber(42) is true\n');
    const fresh = await petri.cli([
      'deploy',
      path.join(FIXTURES, 'npm-build'),
      '--app',
      'built',
      '--no-cache',
    ]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /Building without the cache/);
    assert.match(fresh.stdout, /Installing dependencies \(npm ci\)/);
  });

  test('an app that crashes at start fails the deploy with its output; the previous release serves on', async () => {
    const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'crash-at-start'), '--app', 'zdep']);
    assert.equal(deploy.code, 1);
    assert.match(deploy.stderr, /web\.1 exited during start \(exit code 3\)/);
    assert.match(deploy.stderr, /DATABASE_URL is not set/);
    assert.equal((await petri.app('zdep')).body, 'hello from zero-dep v1\n');
  });

  test('an app that never listens on PORT fails the deploy after the boot timeout', async () => {
    const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'never-listens'), '--app', 'zdep']);
    assert.equal(deploy.code, 1);
    assert.match(deploy.stderr, /web\.1 did not listen on PORT \(\d+\) within 5 s/);
    assert.equal((await petri.app('zdep')).body, 'hello from zero-dep v1\n');
    const info = JSON.parse((await petri.cli(['apps', 'info', 'zdep', '--json'])).stdout) as {
      release: string;
    };
    assert.equal(info.release, 'v1');
  });

  test('a crashed instance is restarted', async () => {
    const before = JSON.parse((await petri.app('zdep', '/whoami')).body) as { boot: string };
    await petri.app('zdep', '/crash').catch(() => undefined);
    await until(
      async () => {
        const res = await petri.app('zdep', '/whoami').catch(() => undefined);
        return res?.status === 200 && (JSON.parse(res.body) as { boot: string }).boot !== before.boot;
      },
      { timeout: 15_000, message: 'the app to come back after its crash' },
    );
    const logs = await petri.cli(['logs', '--app', 'zdep', '-n', '50']);
    assert.match(logs.stdout, /web\.1 exited \(exit code 1\); restarting in 1 s/);
  });

  test('unknown hosts get the Petri 404 page; an app that is not running gets a 503 page', async () => {
    const unknown = await petri.request('nope.petri.localhost');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body, /Petri/);
    await petri.cli(['apps', 'create', 'idle']);
    const down = await until(
      async () => {
        const res = await petri.app('idle');
        return res.status === 503 && res;
      },
      { timeout: 5000, message: 'the route of the new app' },
    );
    assert.match(down.body, /idle/);
  });

  test('the API is also served through the router at petri.localhost/v1', async () => {
    const res = await petri.request('petri.localhost', '/v1/openapi.json');
    assert.equal(res.status, 200);
    const doc = JSON.parse(res.body) as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/v1/apps/{name}/deploys']);
  });

  test('a redeploy switches to the new release with no failed request', async () => {
    let failures = 0;
    let requests = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        const res = await petri.app('zdep').catch(() => undefined);
        requests++;
        if (res?.status !== 200) failures++;
      }
    })();
    const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'zdep']);
    await until(async () => (await petri.app('zdep')).body.includes('v4'), { timeout: 5000 });
    running = false;
    await load;
    assert.equal(deploy.code, 0, deploy.stderr);
    assert.match(deploy.stdout, /Deployed zdep v4/);
    assert.ok(requests > 10, `${requests} requests`);
    assert.equal(failures, 0, `${failures} of ${requests} requests failed`);
  });

  test('petri builds lists builds with status and duration; petri builds logs shows one', async () => {
    const list = JSON.parse((await petri.cli(['builds', '--app', 'zdep', '--json'])).stdout) as {
      id: string;
      status: string;
      release: string | null;
      durationMs: number | null;
    }[];
    assert.deepEqual(
      list.map((b) => b.status),
      ['succeeded', 'failed', 'failed', 'succeeded'],
    );
    assert.ok(list.every((b) => typeof b.durationMs === 'number'));
    const failed = await petri.cli(['builds', 'logs', list[1]!.id, '--app', 'zdep']);
    assert.match(failed.stdout, /build {3}\| -----> Node\.js app detected/);
    assert.match(failed.stdout, /failed: web\.1 did not listen on PORT/);
    const people = await petri.cli(['builds', '--app', 'zdep']);
    assert.match(people.stdout, /^ID +STATUS +RELEASE +STARTED +DURATION$/m);
  });

  test('destroy needs --confirm NAME, then removes the app and its route', async () => {
    const refused = await petri.cli(['apps', 'destroy', 'built']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--confirm built/);
    assert.equal((await petri.app('built')).status, 200);
    assert.equal((await petri.cli(['apps', 'destroy', 'built', '--confirm', 'built'])).code, 0);
    await until(async () => (await petri.app('built')).status === 404, {
      timeout: 5000,
      message: 'route removed',
    });
    const list = JSON.parse((await petri.cli(['apps', '--json'])).stdout) as { name: string }[];
    assert.ok(!list.some((a) => a.name === 'built'));
  });
});

describe('hostile uploads through the router', () => {
  let petri: TestPetri;
  before(async () => {
    petri = await TestPetri.start({ maxUploadBytes: 1024 * 1024, maxUnpackedBytes: 1024 * 1024 });
    await petri.cli(['apps', 'create', 'target']);
  });
  after(async () => {
    await petri?.destroy();
  });

  // Through HAProxy, as `petri deploy` against http://petri.localhost:8080/v1 would send it.
  const upload = async (body: Buffer) => {
    const res = await petri.request('petri.localhost', '/v1/apps/target/deploys', 'POST', body, {
      authorization: `Bearer ${petri.token}`,
      'content-type': 'application/gzip',
    });
    return {
      status: res.status,
      json: () => JSON.parse(res.body) as { error: { code: string; message: string } },
    };
  };

  test('an archive escaping the app directory is refused with 400 naming the entry', async () => {
    const res = await upload(maliciousArchive('../../../../tmp/petri-pwned', 'owned'));
    assert.equal(res.status, 400);
    const body = res.json();
    assert.equal(body.error.code, 'invalid_archive');
    assert.match(body.error.message, /'\.\.\/\.\.\/\.\.\/\.\.\/tmp\/petri-pwned'/);
    assert.equal(existsSync('/tmp/petri-pwned'), false);
  });

  test('an upload over the size cap gets 413', async () => {
    const res = await upload(maliciousArchive('big.bin', 'x'.repeat(2 * 1024 * 1024)));
    assert.equal(res.status, 413);
    const body = res.json();
    assert.equal(body.error.code, 'payload_too_large');
  });
});

/** A tar.gz with one file entry of any name, as a hostile client would write it. */
function maliciousArchive(name: string, content: string): Buffer {
  const data = Buffer.from(content);
  const header = new Header({ path: name, mode: 0o644, size: data.length, type: 'File', mtime: new Date(0) });
  header.encode();
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return gzipSync(Buffer.concat([header.block!, data, pad, Buffer.alloc(1024)]));
}

describe('build limits', () => {
  let petri: TestPetri;
  before(async () => {
    petri = await TestPetri.start({ buildTimeoutMs: 3000 });
  });
  after(async () => {
    await petri?.destroy();
  });

  const buildingApp = (build: string) =>
    writeApp({
      'package.json': JSON.stringify({ name: 'limited', scripts: { build, start: 'node server.js' } }),
      'server.js': "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)",
    });

  test('a build over its time limit fails with that reason', async () => {
    await petri.cli(['apps', 'create', 'slowbuild']);
    const deploy = await petri.cli([
      'deploy',
      buildingApp('node -e "setTimeout(() => {}, 60000)"'),
      '--app',
      'slowbuild',
    ]);
    assert.equal(deploy.code, 1);
    assert.match(deploy.stderr, /build exceeded its time limit of 3 s/);
  });

  test("a build over the app's memory limit fails with that reason", async () => {
    await petri.cli(['apps', 'create', 'fatbuild']);
    await petri.cli(['apps', 'limits', 'fatbuild', '--memory', '64']);
    const hog = 'node -e "const a = []; for (;;) a.push(Buffer.alloc(8e6, 1))"';
    const deploy = await petri.cli(['deploy', buildingApp(hog), '--app', 'fatbuild']);
    assert.equal(deploy.code, 1);
    assert.match(deploy.stderr, /Building \(npm run build\) was killed: memory limit 64 MiB/);
  });
});

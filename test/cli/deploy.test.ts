// `petri deploy`: the upload, the build output as it arrives, and the exit code and last
// line that say whether the new release serves.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Deploy } from '../../src/client/index.js';
import { until } from '../../src/lib/until.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, Capture, envFor, run, tempDir } from './harness.js';

describe('petri deploy', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  let appDir: string;
  before(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
    env = envFor(fake.url, TOKEN, path.join(temp.dir, 'config'));
    appDir = path.join(temp.dir, 'app');
    await mkdir(appDir);
    await writeFile(
      path.join(appDir, 'package.json'),
      '{"name":"alpha","scripts":{"start":"node server.js"}}\n',
    );
    await writeFile(
      path.join(appDir, 'server.js'),
      'require("http").createServer().listen(process.env.PORT);\n',
    );
    await writeFile(
      path.join(appDir, 'petri.toml'),
      '# the app\nname = "alpha"\n\n[build]\nname = "not-this"\n',
    );
  });
  afterEach(() => {
    fake.deployError = undefined;
    fake.holdStream = undefined;
    fake.dropStream = undefined;
  });
  after(async () => {
    await fake.close();
    await temp.remove();
  });

  test('uploads, streams build lines live, prints the URL and exits 0', async () => {
    const stdout = new Capture();
    // The stream pauses after its first line until the CLI has printed it: proof it is live.
    fake.holdStream = () => until(() => stdout.text.includes('Detected a Node.js app'), { timeout: 5000 });
    const result = await run(['deploy', appDir, '--app', 'alpha'], { env, stdout });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    // The archive's size depends on the packer; the rest is golden.
    await assertGolden(
      'deploy.txt',
      result.stdout.replace(/\d+\.\d KiB/, 'N KiB').replaceAll(appDir, 'APP_DIR'),
    );
    const upload = fake.requests.find((r) => r.method === 'POST' && r.url === '/v1/apps/alpha/deploys');
    assert.equal(upload?.contentType, 'application/gzip');
  });

  test('the app name comes from petri.toml when --app is not given', async () => {
    const result = await run(['deploy'], { env, cwd: appDir });
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^Uploading \. \(3 files, /);
    assert.match(result.stdout, /Deployed alpha v4 in 1\.4s: http:\/\/alpha\.petri\.localhost:8080\n$/);
  });

  test('a failed deploy prints error: on stderr and exits 1', async () => {
    fake.deployError = 'build failed: npm run build exited with code 1; the previous release keeps serving';
    const result = await run(['deploy', appDir, '-a', 'alpha'], { env });
    assert.equal(result.code, 1);
    assert.match(result.stdout, /build {3}\| npm run build exited with code 1\n$/);
    assert.equal(
      result.stderr,
      'error: build failed: npm run build exited with code 1; the previous release keeps serving\n',
    );
  });

  test('--json prints only the final deploy', async () => {
    const result = await run(['deploy', appDir, '--json'], { env });
    assert.equal(result.code, 0);
    const deploy = JSON.parse(result.stdout) as Deploy;
    assert.equal(deploy.status, 'succeeded');
    assert.equal(deploy.release, 'v4');

    fake.deployError = 'release failed: web.1 did not answer on its port within 30s';
    const failed = await run(['deploy', appDir, '--json'], { env });
    assert.equal(failed.code, 1);
    assert.equal((JSON.parse(failed.stdout) as Deploy).status, 'failed');
    assert.equal(failed.stderr, 'error: release failed: web.1 did not answer on its port within 30s\n');
  });

  test('on a TTY, says when it waits for the release', async () => {
    const result = await run(['deploy', appDir], { env: { ...env, NO_COLOR: '1' }, tty: true });
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Building\.\.\.\n/);
    assert.match(result.stdout, /Waiting for the release to serve\.\.\.\nrelease \| starting web\.1/);
  });

  test('a dropped stream: the deploy is asked for, not taken as failed', async () => {
    fake.dropStream = 'finished';
    const done = await run(['deploy', appDir], { env });
    assert.equal(done.stderr, '');
    assert.equal(done.code, 0);
    assert.match(done.stdout, /Deployed alpha v5 in 2\.0s: http:\/\/alpha\.petri\.localhost:8080\n$/);

    fake.dropStream = 'building';
    const lost = await run(['deploy', appDir], { env });
    assert.equal(lost.code, 1);
    assert.match(
      lost.stderr,
      /^error: lost the connection while deploy d\d+ of alpha was building; it goes on on the server/,
    );
  });

  test('no app given and no petri.toml: a usage error naming both ways', async () => {
    const empty = path.join(temp.dir, 'noname');
    await mkdir(empty);
    await writeFile(path.join(empty, 'index.html'), '<h1>hi</h1>\n');
    const result = await run(['deploy'], { env, cwd: empty });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'error: no app given: pass --app NAME or put name = "NAME" in petri.toml\n');
  });

  test('a directory that does not exist', async () => {
    const result = await run(['deploy', 'nowhere', '-a', 'alpha'], { env, cwd: temp.dir });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'error: no such directory: nowhere\n');
  });

  test('deploying to an app that does not exist shows the server message', async () => {
    const result = await run(['deploy', appDir, '-a', 'ghost'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "error: app 'ghost' not found; list your apps with 'petri apps'\n");
  });
});

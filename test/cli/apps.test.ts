// `petri apps` and its subcommands against the fake API: what a user reads, what a script
// parses, and that a destroy without its confirmation never reaches the server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseDurationSeconds, parseMemory } from '../../src/cli/apps.js';
import { UsageError } from '../../src/cli/output.js';
import type { App } from '../../src/client/index.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri apps', () => {
  let fake: FakeApi;
  let config: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeApi();
    config = await tempDir();
    env = envFor(fake.url, TOKEN, config.dir);
  });
  after(async () => {
    await fake.close();
    await config.remove();
  });

  test('lists apps as an aligned table', async () => {
    const result = await run(['apps'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('apps.txt', result.stdout);
    assert.equal(fake.requests.at(-1)?.authorization, `Bearer ${TOKEN}`);
  });

  test('`apps list` is the same as `apps`', async () => {
    const a = await run(['apps'], { env });
    const b = await run(['apps', 'list'], { env });
    assert.equal(a.stdout, b.stdout);
  });

  test('--json prints the list for scripts', async () => {
    const result = await run(['apps', '--json'], { env });
    assert.equal(result.code, 0);
    const apps = JSON.parse(result.stdout) as App[];
    assert.deepEqual(
      apps.map((a) => a.name),
      ['alpha', 'beta-experiment'],
    );
  });

  test('colour only on a TTY, and never with NO_COLOR', async () => {
    const tty = await run(['apps'], { env, tty: true });
    assert.match(tty.stdout, /\u001b\[32mrunning/);
    const noColor = await run(['apps'], { env: { ...env, NO_COLOR: '1' }, tty: true });
    assert.doesNotMatch(noColor.stdout, /\u001b/);
    assert.equal(noColor.stdout, (await run(['apps'], { env })).stdout);
  });

  test('info shows key: value lines and the processes', async () => {
    const result = await run(['apps', 'info', 'alpha'], { env });
    assert.equal(result.code, 0);
    await assertGolden('apps-info.txt', result.stdout);
    const json = await run(['apps', 'info', 'alpha', '--json'], { env });
    assert.equal((JSON.parse(json.stdout) as App).release, 'v3');
  });

  test("the server's error message is shown as is, on one line of stderr", async () => {
    const result = await run(['apps', 'info', 'nope'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, "error: app 'nope' not found; list your apps with 'petri apps'\n");
  });

  test('create, then a conflict', async () => {
    const created = await run(['apps', 'create', 'gamma'], { env });
    assert.equal(created.code, 0);
    assert.equal(
      created.stdout,
      "Created gamma: http://gamma.petri.localhost:8080\nDeploy it with 'petri deploy --app gamma' from its directory\n",
    );
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), { name: 'gamma' });
    const again = await run(['apps', 'create', 'gamma'], { env });
    assert.equal(again.code, 1);
    assert.equal(again.stderr, "error: app 'gamma' already exists\n");
  });

  test('destroy without --confirm refuses with the exact command, and sends nothing', async () => {
    const before = fake.requests.length;
    const result = await run(['apps', 'destroy', 'alpha'], { env });
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      "error: destroying 'alpha' deletes it for good; to confirm, run: petri apps destroy alpha --confirm alpha\n",
    );
    const mismatch = await run(['apps', 'destroy', 'alpha', '--confirm', 'beta'], { env });
    assert.equal(mismatch.code, 2);
    assert.match(
      mismatch.stderr,
      /\(--confirm was 'beta'\); to confirm, run: petri apps destroy alpha --confirm alpha\n$/,
    );
    assert.equal(fake.requests.length, before, 'no request may reach the server');
    assert.ok(fake.apps.has('alpha'));
  });

  test('destroy with --confirm deletes', async () => {
    await run(['apps', 'create', 'doomed'], { env });
    const result = await run(['apps', 'destroy', 'doomed', '--confirm', 'doomed'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Destroyed doomed\n');
    const last = fake.requests.at(-1)!;
    assert.equal(last.method, 'DELETE');
    assert.equal(last.url, '/v1/apps/doomed?confirm=doomed');
    assert.ok(!fake.apps.has('doomed'));
  });

  test('limits shows the limits, and changes only what was given', async () => {
    const shown = await run(['apps', 'limits', 'beta-experiment'], { env });
    assert.equal(shown.stdout, 'memory: 512 MiB\ncpus:   1\npids:   256\ndisk:   1024 MiB\n');
    assert.equal(fake.requests.at(-1)!.method, 'GET');

    const changed = await run(
      ['apps', 'limits', 'beta-experiment', '--memory', '1G', '--pids', '64', '--json'],
      {
        env,
      },
    );
    assert.equal(changed.code, 0);
    assert.deepEqual(JSON.parse(changed.stdout), { memoryMiB: 1024, cpus: 1, pids: 64, diskMiB: 1024 });
    const patch = fake.requests.at(-1)!;
    assert.equal(patch.method, 'PATCH');
    assert.deepEqual(JSON.parse(patch.body.toString()), { limits: { memoryMiB: 1024, pids: 64 } });
  });

  test('a bad limit is a usage error that sends nothing', async () => {
    const before = fake.requests.length;
    const result = await run(['apps', 'limits', 'alpha', '--memory', 'lots'], { env });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, "error: --memory must be a size like 256, 256M or 1G, got 'lots'\n");
    assert.equal(fake.requests.length, before);
  });

  test('set changes settings and prints them; no pairs shows them', async () => {
    const shown = await run(['apps', 'set', 'alpha'], { env });
    assert.equal(shown.code, 0);
    assert.equal(shown.stdout, 'boot_timeout: 1m\n');
    assert.equal(fake.requests.at(-1)!.method, 'GET');

    const changed = await run(['apps', 'set', 'alpha', 'boot_timeout=90'], { env });
    assert.equal(changed.stderr, '');
    assert.equal(changed.code, 0);
    assert.equal(changed.stdout, 'boot_timeout: 1m30s\n');
    const patch = fake.requests.at(-1)!;
    assert.equal(patch.method, 'PATCH');
    assert.deepEqual(JSON.parse(patch.body.toString()), { settings: { bootTimeoutSeconds: 90 } });

    const json = await run(['apps', 'set', 'alpha', 'boot_timeout=2m', '--json'], { env });
    assert.deepEqual(JSON.parse(json.stdout), { bootTimeoutSeconds: 120 });
  });

  test('set refuses unknown keys and bad durations, naming what is allowed, and sends nothing', async () => {
    const before = fake.requests.length;
    const unknown = await run(['apps', 'set', 'alpha', 'idle=30m'], { env });
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, "error: unknown setting 'idle'; the settings are: boot_timeout\n");
    const bad = await run(['apps', 'set', 'alpha', 'boot_timeout=soon'], { env });
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      "error: boot_timeout must be a duration above 0 like 90, 90s or 2m, got 'soon'\n",
    );
    const noValue = await run(['apps', 'set', 'alpha', 'boot_timeout'], { env });
    assert.equal(noValue.code, 2);
    assert.equal(noValue.stderr, "error: expected KEY=VALUE, got 'boot_timeout'\n");
    assert.equal(fake.requests.length, before);
  });

  test('durations are read as seconds', () => {
    assert.equal(parseDurationSeconds('t', '90'), 90);
    assert.equal(parseDurationSeconds('t', '90s'), 90);
    assert.equal(parseDurationSeconds('t', '2m'), 120);
    assert.equal(parseDurationSeconds('t', '1m30s'), 90);
    assert.equal(parseDurationSeconds('t', '1h'), 3600);
    for (const bad of ['', '0', 's', '1.5m', '-3', '2d']) {
      assert.throws(() => parseDurationSeconds('t', bad), UsageError, bad);
    }
  });

  test('memory sizes are read as MiB', () => {
    assert.equal(parseMemory('256'), 256);
    assert.equal(parseMemory('256M'), 256);
    assert.equal(parseMemory('256MiB'), 256);
    assert.equal(parseMemory('1G'), 1024);
    assert.equal(parseMemory('1.5g'), 1536);
    assert.throws(() => parseMemory('0'), UsageError);
    assert.throws(() => parseMemory('12T'), UsageError);
    assert.throws(() => parseMemory('-1'), UsageError);
  });
});

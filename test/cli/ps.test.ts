// `petri ps`, `petri ps scale` and `petri restart`: the process table with human sizes
// and durations and a crashed process's last words, a sleeping app's nap, scale arguments
// checked before any request, and what a restart says.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { UsageError } from '../../src/cli/output.js';
import { formatBytes, formatSeconds, parseScale } from '../../src/cli/ps.js';
import type { ProcessList } from '../../src/client/index.js';
import { addApp, cannedProcesses, cannedSleepingApp, type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri ps', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
    env = envFor(fake.url, TOKEN, temp.dir);
  });
  after(async () => {
    await fake.close();
    await temp.remove();
  });

  test('a table of processes; a crashed one is followed by how it ended', async () => {
    const result = await run(['ps', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('ps.txt', result.stdout);
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/ps');
  });

  test('--json prints the formation and the processes', async () => {
    const result = await run(['ps', '-a', 'alpha', '--json'], { env });
    assert.equal(result.code, 0);
    const list = JSON.parse(result.stdout) as ProcessList;
    assert.deepEqual(list.formation, { web: 2, worker: 1 });
    assert.equal(list.processes[1]?.lastLines.length, 2);
  });

  test('an app with no processes', async () => {
    const result = await run(['ps', '-a', 'beta-experiment'], { env });
    assert.equal(
      result.stdout,
      "beta-experiment runs no processes; deploy with 'petri deploy -a beta-experiment'\n",
    );
  });

  test('a sleeping app: since when, how it wakes, and the formation it wakes to', async () => {
    const { app, processes } = cannedSleepingApp();
    addApp(fake, app, processes);
    const result = await run(['ps', '-a', 'blog'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('ps-sleeping.txt', result.stdout);
    const json = await run(['ps', '-a', 'blog', '--json'], { env });
    assert.equal((JSON.parse(json.stdout) as ProcessList).sleepingSince, '2025-01-05T06:07:08.000Z');
  });

  test('an app falling asleep: the line, then the processes still stopping', async () => {
    const stopping = cannedProcesses().processes[0]!;
    const { app } = cannedSleepingApp();
    addApp(fake, app, {
      formation: { web: 1 },
      processes: [{ ...stopping, state: 'stopping' }],
      sleepingSince: '2025-01-05T06:07:08.000Z',
    });
    const result = await run(['ps', '-a', 'blog'], { env });
    assert.equal(result.code, 0);
    const lines = result.stdout.split('\n');
    assert.equal(
      lines[0],
      'sleeping since 2025-01-05T06:07:08Z (the first request wakes it; petri apps wake blog)',
    );
    assert.equal(lines[1], '');
    assert.match(lines[2]!, /^NAME +STATE/);
    assert.match(lines[3]!, /^web\.1 +stopping /);
    assert.equal(lines.at(-2), 'formation: web=1');
  });

  test('scale sends the counts and prints the new formation', async () => {
    const result = await run(['ps', 'scale', 'web=3', 'worker=0', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Scaled to web=3, worker=0\n');
    const patch = fake.requests.at(-1)!;
    assert.equal(patch.method, 'PATCH');
    assert.equal(patch.url, '/v1/apps/alpha/formation');
    assert.deepEqual(JSON.parse(patch.body.toString()), { web: 3, worker: 0 });

    const json = await run(['ps', 'scale', 'worker=1', '-a', 'alpha', '--json'], { env });
    assert.deepEqual(JSON.parse(json.stdout), { web: 3, worker: 1 });
  });

  test('scale arguments are checked before anything is sent', async () => {
    const before = fake.requests.length;
    for (const arg of ['web', 'web=', '=2', 'web=-1', 'web=1.5', 'web=101', 'web=two']) {
      const result = await run(['ps', 'scale', arg, '-a', 'alpha'], { env });
      assert.equal(result.code, 2, arg);
      assert.equal(result.stderr, `error: expected TYPE=N with N from 0 to 100, like web=2, got '${arg}'\n`);
    }
    const twice = await run(['ps', 'scale', 'web=1', 'web=2', '-a', 'alpha'], { env });
    assert.equal(twice.code, 2);
    assert.equal(twice.stderr, 'error: web is given twice; give each type once\n');
    const none = await run(['ps', 'scale', '-a', 'alpha'], { env });
    assert.equal(none.code, 2);
    assert.equal(fake.requests.length, before, 'no request may reach the server');
  });

  test("an unknown process type is the server's message, naming the types there are", async () => {
    const result = await run(['ps', 'scale', 'wrker=1', '-a', 'alpha'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "error: unknown process type 'wrker': the release has web, worker\n");
  });

  test('restart, all processes or one type', async () => {
    const all = await run(['restart', '-a', 'alpha'], { env });
    assert.equal(all.code, 0);
    assert.equal(all.stdout, 'Restarting web.1, web.2, worker.1...\n');
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), {});
    const web = await run(['restart', 'web', '-a', 'alpha'], { env });
    assert.equal(web.stdout, 'Restarting web.1, web.2...\n');
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/restart');
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), { type: 'web' });
    const none = await run(['restart', '-a', 'beta-experiment'], { env });
    assert.equal(none.stdout, 'beta-experiment runs no processes: nothing to restart\n');
  });

  test('sizes and durations for people', () => {
    assert.equal(formatBytes(134_742_016), '128.5 MiB');
    assert.equal(formatBytes(1.5 * 1024 ** 3), '1.5 GiB');
    assert.equal(formatSeconds(0.45), '0.4s');
    assert.equal(formatSeconds(4), '4s');
    assert.equal(formatSeconds(45), '45s');
    assert.equal(formatSeconds(302), '5m 2s');
    assert.equal(formatSeconds(7384), '2h 3m');
    assert.equal(formatSeconds(3 * 86400 + 4 * 3600 + 5), '3d 4h');
  });

  test('parseScale', () => {
    assert.deepEqual(parseScale(['web=0', 'worker=100']), { web: 0, worker: 100 });
    assert.throws(() => parseScale(['web=100.0']), UsageError);
  });
});

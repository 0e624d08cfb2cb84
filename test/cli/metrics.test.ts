// `petri metrics` against the fake API: the table a person reads (golden file), with a row
// per process type for memory and for CPU, each against its limits and with a sparkline on
// the app's time axis; a type name with a terminal escape is shown, not obeyed; --json
// prints the process types as the API gave them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AppMetrics } from '../../src/client/index.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { cannedMetrics } from './fake-metrics.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri metrics', () => {
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

  test('a row per process type for memory and CPU, each against its limits, with a sparkline', async () => {
    const result = await run(['metrics', '--app', 'alpha'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    await assertGolden('metrics.txt', result.stdout);
    const row = (name: string) => result.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
    // alpha's limits: 256 MiB and 0.5 CPU per process; web runs 2, worker 1.
    assert.match(row('web mem'), /^web mem\s+42\/256 MiB \(highest of 2\)\s+[▁-█]{6}$/);
    assert.match(row('web CPU'), /^web CPU\s+6\.0 s, 2% of 0\.5 CPU × 2\s+▁▁▁▂▄█$/);
    assert.match(row('worker mem'), /^worker mem\s+102\/256 MiB\s+[▁-█]{6}$/);
    assert.match(row('worker CPU'), /^worker CPU\s+0\.1 s, <0\.1% of 0\.5 CPU\s+▁█████$/);
    // The per-app rows are still there.
    assert.match(row('memory (max)'), /220 MiB, all processes \(limit 256 MiB each\)/);
    assert.doesNotMatch(result.stdout, /\u001b/);
    assert.match(result.stdout, /^we\\u001b\[2Jb mem /m);
    assert.equal(new URL(fake.requests.at(-1)?.url ?? '', 'http://fake').searchParams.get('since'), '1h');
  });

  test('--json has the process types as the API gave them', async () => {
    const result = await run(['metrics', '--app', 'alpha', '--json'], { env });
    assert.equal(result.code, 0, result.stderr);
    const json = JSON.parse(result.stdout) as AppMetrics;
    const app = fake.apps.get('alpha');
    assert.ok(app);
    assert.deepEqual(json.processTypes, cannedMetrics(app).processTypes);
    assert.deepEqual(
      json.processTypes.map((t) => [t.type, t.instances, t.memoryLimitMiB]),
      [
        ['web', 2, 256],
        ['worker', 1, 256],
        ['we\u001b[2Jb', 1, 256],
      ],
    );
  });
});

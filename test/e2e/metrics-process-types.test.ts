// Memory and CPU per process type end to end (issue 18): an app whose Procfile has a web and
// a worker, scaled to two webs, runs in real sandboxes; the collector reads their cgroups
// each pass (1 s here) and `petri metrics` shows a row per type for memory and for CPU,
// each against the app's limits, and --json has both types with the instances seen.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AppMetrics } from '../../src/client/index.js';
import { until } from '../../src/lib/until.js';
import { TestPetri, writeApp } from './petri.js';

describe('metrics per process type', () => {
  let petri: TestPetri;
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };

  before(async () => {
    petri = await TestPetri.start({ metricsPassMs: 1000 });
    await ok(['apps', 'create', 'typed']);
    const app = writeApp({
      'package.json': JSON.stringify({ name: 'typed', scripts: { start: 'node server.js' } }),
      'server.js': "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)",
      // Some work every 50 ms, so its CPU time is more than nothing.
      'worker.js': 'setInterval(() => { let x = 0; for (let i = 0; i < 2e5; i++) x += i; }, 50)',
      Procfile: 'web: node server.js\nworker: node worker.js\n',
    });
    await ok(['deploy', app, '--app', 'typed']);
    await ok(['ps', 'scale', 'web=2', 'worker=1', '--app', 'typed']);
  });
  after(async () => petri?.destroy());

  test('petri metrics has a memory and a CPU row per process type, each against the limits', async () => {
    const limits = (
      JSON.parse((await ok(['apps', 'info', 'typed', '--json'])).stdout) as {
        limits: { memoryMiB: number; cpus: number };
      }
    ).limits;
    let m: AppMetrics | undefined;
    await until(
      async () => {
        m = JSON.parse((await ok(['metrics', '--app', 'typed', '--json'])).stdout) as AppMetrics;
        const web = m.processTypes.find((t) => t.type === 'web');
        const worker = m.processTypes.find((t) => t.type === 'worker');
        return web?.instances === 2 && (worker?.cpuMs ?? 0) > 0 && (worker?.cpuLimitMs ?? 0) > 0;
      },
      { timeout: 60_000, interval: 500, message: 'both process types measured, the worker using CPU' },
    );
    assert.ok(m);
    assert.deepEqual(
      m.processTypes.map((t) => t.type),
      ['web', 'worker'],
    );
    for (const t of m.processTypes) {
      assert.ok(t.memoryMaxBytes > 1048576, `${t.type} uses some memory: ${t.memoryMaxBytes}`);
      assert.ok(t.memoryMaxBytes < t.memoryLimitMiB * 1048576, `${t.type} below its limit`);
      assert.equal(t.memoryLimitMiB, limits.memoryMiB);
      assert.ok(t.cpuMs <= t.cpuLimitMs, `${t.type}: ${t.cpuMs} ms of the ${t.cpuLimitMs} ms allowed`);
      assert.ok(t.points.length > 0);
    }
    // The app's own memory is all its processes together: at least the three processes'.
    assert.ok(m.totals.memoryMaxBytes >= Math.max(...m.processTypes.map((t) => t.memoryMaxBytes)));

    const text = (await ok(['metrics', '--app', 'typed'])).stdout;
    assert.match(
      text,
      new RegExp(`^web mem\\s+\\d+/${limits.memoryMiB} MiB \\(highest of 2\\)\\s+[▁-█]+$`, 'm'),
    );
    assert.match(text, new RegExp(`^web CPU\\s+[0-9.]+ s.* of ${limits.cpus} CPU × 2`, 'm'));
    assert.match(text, new RegExp(`^worker mem\\s+\\d+/${limits.memoryMiB} MiB\\s+[▁-█]+$`, 'm'));
    assert.match(
      text,
      new RegExp(`^worker CPU\\s+[0-9.]+ s, [<0-9.]+% of ${limits.cpus} CPU\\s+[▁-█]+$`, 'm'),
    );
  });
});

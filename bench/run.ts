// `npm run bench`: figures, never asserts. Starts its own Petri (as the e2e tests do).
//   deploy: `petri deploy` of the zero-dependency fixture to the first 200 of the new
//           release through the router; p50 of 5 first deploys and of 5 redeploys.
import path from 'node:path';
import { until } from '../src/lib/until.js';
import { FIXTURES, TestPetri } from '../test/e2e/petri.js';

const RUNS = 5;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function timeToServe(petri: TestPetri, app: string, release: string): Promise<number> {
  const started = performance.now();
  const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', app, '--json']);
  if (deploy.code !== 0) throw new Error(`deploy failed: ${deploy.stderr}`);
  await until(
    async () => {
      const res = await petri.app(app).catch(() => undefined);
      return res?.status === 200 && res.body.includes(release);
    },
    { timeout: 30_000, interval: 5 },
  );
  return performance.now() - started;
}

function report(name: string, ms: number[], targetMs: number): void {
  const p50 = percentile(ms, 50);
  const all = ms.map((m) => m.toFixed(0)).join(', ');
  console.log(
    `${name}: p50 ${(p50 / 1000).toFixed(2)} s (runs: ${all} ms; target < ${targetMs / 1000} s: ${p50 < targetMs ? 'met' : 'missed'})`,
  );
}

async function main(): Promise<void> {
  const petri = await TestPetri.start({ logLevel: 'error' });
  try {
    const first: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await petri.cli(['apps', 'create', `bench-${i}`]);
      first.push(await timeToServe(petri, `bench-${i}`, 'v1'));
    }
    report('first deploy to first 200', first, 2000);
    const again: number[] = [];
    for (let i = 0; i < RUNS; i++) again.push(await timeToServe(petri, 'bench-0', `v${i + 2}`));
    report('redeploy to first 200 of the new release', again, 2000);
  } finally {
    await petri.destroy();
  }
}

await main();

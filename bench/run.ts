// `npm run bench`: figures, never asserts. Starts its own Petri (as the e2e tests do).
//   deploy:   `petri deploy` of the zero-dependency fixture to the first 200 of the new
//             release through the router; p50 of 5 first deploys and of 5 redeploys.
//   rollback: `petri rollback` to the first answer of the rolled-back release; p50 of 5.
//   switch:   request latency p99 during redeploys against p99 at rest (a ratio; same
//             router, same app, same load, measured in the same run).
//   network:  the router's throughput (wrk) to an app in its own network namespace against
//             the same app on the host network (a second Petri with namespaces off), and
//             the time from start to listening of an instance with and without them.
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { until } from '../src/lib/until.js';
import { FIXTURES, TestPetri } from '../test/e2e/petri.js';

const RUNS = 5;
const execFileAsync = promisify(execFile);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function servesRelease(petri: TestPetri, app: string, release: string): Promise<void> {
  await until(
    async () => {
      const res = await petri.app(app).catch(() => undefined);
      return res?.status === 200 && new RegExp(`\\b${release}\\b`).test(res.body);
    },
    { timeout: 30_000, interval: 5 },
  );
}

async function timeDeploy(petri: TestPetri, app: string, fixture: string, release: string): Promise<number> {
  const started = performance.now();
  const deploy = await petri.cli(['deploy', path.join(FIXTURES, fixture), '--app', app, '--json']);
  if (deploy.code !== 0) throw new Error(`deploy failed: ${deploy.stderr}`);
  await servesRelease(petri, app, release);
  return performance.now() - started;
}

function report(name: string, ms: number[], targetMs: number): void {
  const p50 = percentile(ms, 50);
  const all = ms.map((m) => m.toFixed(0)).join(', ');
  const verdict = p50 < targetMs ? 'met' : 'missed';
  console.log(
    `${name}: p50 ${(p50 / 1000).toFixed(2)} s (runs: ${all} ms; target < ${targetMs / 1000} s: ${verdict})`,
  );
}

/** Sequential keep-alive requests for `ms`, or until `done` resolves; their latencies. */
async function latencies(
  petri: TestPetri,
  host: string,
  until: Promise<unknown> | number,
): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out: number[] = [];
  let finished = false;
  const stop = typeof until === 'number' ? new Promise((r) => setTimeout(r, until)) : until;
  void stop.then(() => (finished = true));
  while (!finished) {
    const t = performance.now();
    await new Promise<void>((resolve) => {
      http
        .get({ host: '127.0.0.1', port: petri.httpPort, path: '/', headers: { host }, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        })
        .on('error', () => resolve());
    });
    out.push(performance.now() - t);
  }
  agent.destroy();
  return out;
}

async function main(): Promise<void> {
  const petri = await TestPetri.start({ logLevel: 'error' });
  try {
    const first: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await petri.cli(['apps', 'create', `bench-${i}`]);
      first.push(await timeDeploy(petri, `bench-${i}`, 'zero-dep', 'v1'));
    }
    report('first deploy to first 200', first, 2000);
    const again: number[] = [];
    for (let i = 0; i < RUNS; i++) again.push(await timeDeploy(petri, 'bench-0', 'zero-dep', `v${i + 2}`));
    report('redeploy to first 200 of the new release', again, 2000);

    await petri.cli(['apps', 'create', 'steady']);
    for (let v = 1; v <= 2; v++) await timeDeploy(petri, 'steady', 'steady', `v${v}`);
    const rollbacks: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      const r = await petri.cli(['rollback', '--app', 'steady', '--json']);
      if (r.code !== 0) throw new Error(`rollback failed: ${r.stderr}`);
      await servesRelease(petri, 'steady', (JSON.parse(r.stdout) as { version: string }).version);
      rollbacks.push(performance.now() - started);
    }
    report('rollback to the old release serving', rollbacks, 1000);

    const host = 'steady.petri.localhost';
    const rest = await latencies(petri, host, 3000);
    const redeploys = (async () => {
      for (let i = 0; i < RUNS; i++)
        await petri.cli(['deploy', path.join(FIXTURES, 'steady'), '--app', 'steady']);
    })();
    const during = await latencies(petri, host, redeploys);
    const [p99Rest, p99During] = [percentile(rest, 99), percentile(during, 99)];
    console.log(
      `latency during a switch: p99 ${p99During.toFixed(2)} ms during ${RUNS} redeploys (${during.length} requests) ` +
        `vs ${p99Rest.toFixed(2)} ms at rest (${rest.length} requests): ratio ${(p99During / p99Rest).toFixed(2)}`,
    );
  } finally {
    await petri.destroy();
  }
}

/** Requests per second through the router to one app, by wrk (keep-alive, 16 connections). */
async function throughput(petri: TestPetri, host: string): Promise<number> {
  const { stdout } = await execFileAsync('wrk', [
    '-t2',
    '-c16',
    '-d5s',
    '-H',
    `Host: ${host}`,
    `http://127.0.0.1:${petri.httpPort}/`,
  ]);
  return Number(/Requests\/sec:\s+([0-9.]+)/.exec(stdout)?.[1] ?? 0);
}

async function isolation(): Promise<void> {
  const measure = async (network: boolean) => {
    const petri = await TestPetri.start({
      logLevel: 'error',
      ...(network ? {} : { network: { enabled: false } }),
    });
    try {
      await petri.cli(['apps', 'create', 'tput']);
      await timeDeploy(petri, 'tput', 'zero-dep', 'v1');
      // A restart starts a new instance and routes it once up: its start, measured by ps.
      const starts: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const since = Date.now();
        const started = performance.now();
        await petri.cli(['restart', '--app', 'tput']);
        await until(
          async () => {
            const ps = JSON.parse((await petri.cli(['ps', '--app', 'tput', '--json'])).stdout) as {
              processes: { state: string; startedAt: string }[];
            };
            const [only] = ps.processes;
            return ps.processes.length === 1 && only?.state === 'up' && Date.parse(only.startedAt) >= since;
          },
          { timeout: 20_000, interval: 5 },
        );
        starts.push(performance.now() - started);
      }
      await throughput(petri, 'tput.petri.localhost'); // warm-up
      return { rps: await throughput(petri, 'tput.petri.localhost'), start: percentile(starts, 50) };
    } finally {
      await petri.destroy();
    }
  };
  const isolated = await measure(true);
  const host = await measure(false);
  console.log(
    `router throughput: ${isolated.rps.toFixed(0)} req/s to an app in its network namespace vs ${host.rps.toFixed(0)} req/s on the host network: ratio ${(isolated.rps / host.rps).toFixed(2)} (target > 0.9)`,
  );
  console.log(
    `restart to up (p50 of ${RUNS}): ${isolated.start.toFixed(0)} ms with its network namespace vs ${host.start.toFixed(0)} ms without`,
  );
}

/** Issue 5: a Flask deploy, and a redeploy with unchanged requirements (the build cache). */
async function python(): Promise<void> {
  const petri = await TestPetri.start({ logLevel: 'error', bootTimeoutMs: 30_000 });
  try {
    const first: number[] = [];
    const cached: number[] = [];
    for (let i = 0; i < 3; i++) {
      await petri.cli(['apps', 'create', `flask-${i}`]);
      first.push(await timeFlask(petri, `flask-${i}`));
      cached.push(await timeFlask(petri, `flask-${i}`));
    }
    const [p50First, p50Cached] = [percentile(first, 50), percentile(cached, 50)];
    console.log(
      `flask deploy to serving: p50 ${(p50First / 1000).toFixed(2)} s first build, ${(p50Cached / 1000).toFixed(2)} s ` +
        `redeploy with unchanged requirements: ratio ${(p50Cached / p50First).toFixed(2)} (target < 0.30)`,
    );
  } finally {
    await petri.destroy();
  }
}

async function timeFlask(petri: TestPetri, app: string): Promise<number> {
  const started = performance.now();
  const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'python-flask'), '--app', app, '--json']);
  if (deploy.code !== 0) throw new Error(`flask deploy failed: ${deploy.stderr}`);
  await until(async () => (await petri.app(app).catch(() => undefined))?.status === 200, {
    timeout: 60_000,
    interval: 5,
  });
  return performance.now() - started;
}

// BENCH=deploy,network,python runs only those sections (all by default).
const only = process.env.BENCH?.split(',');
const wanted = (name: string) => !only || only.includes(name);
if (wanted('deploy')) await main();
if (wanted('network')) await isolation();
if (wanted('python')) await python();

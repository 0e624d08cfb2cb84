// `npm run bench`: figures, never asserts. Starts its own Petri (as the e2e tests do).
//   deploy:   `petri deploy` of the zero-dependency fixture to the first 200 of the new
//             release through the router; p50 of 5 first deploys and of 5 redeploys.
//   rollback: `petri rollback` to the first answer of the rolled-back release; p50 of 5.
//   switch:   request latency p99 during redeploys against p99 at rest (a ratio; same
//             router, same app, same load, measured in the same run).
//   network:  the router's throughput (wrk) to an app in its own network namespace against
//             the same app on the host network (a second Petri with namespaces off), and
//             the time from start to listening of an instance with and without them.
//   python:   Flask deploy, first build against a redeploy with the venv cached.
//   addons:   managed PostgreSQL, MariaDB and Redis: time to provision, and the servers'
//             memory with 1 and with 50 databases each.
//   wake:     first request to first byte of a sleeping app (Node and Flask), 20 wakes.
//   density:  500 apps with 20 awake: memory of the control plane and HAProxy, listing
//             latency, deploy of app 501, throughput against a single-app Petri's.
//   redis:    what a Redis add-on costs: a login on the shared server against a server of
//             its own, 100 of each: memory, and CPU at rest (bench/redis-memory.ts).
//   auth:     the cost of authorization: GET /v1/apps/NAME as a team member against the
//             admin (a ratio), and the listing for a member of 10 teams of 1,000 apps
//             (bench/auth.ts; the API alone on a real port).
//   inventory: `petri inventory --json` with 1,000 apps (target p50 < 300 ms), and GET
//             /v1/inventory as JSON, CSV and for a member (bench/inventory.ts; the API alone).
//   gate:     requests/s through HAProxy to an app gated, with a valid cookie, against the
//             same app public (a ratio; target >= 0.9), and HAProxy's CPU per request
//             (bench/gate-rps.ts; the router alone).
//   gate-return: a returning visitor with an expired gate cookie and a live web session,
//             from the first request to the app's answer through the router (target p50
//             < 150 ms; bench/gate-return.ts).
//   metrics:  the cost of metrics collection with 500 apps, 50 awake (1 and 3 process types
//             each): CPU per minute and the store's growth per day (bench/metrics.ts).
//   mail:     messages/s one app gets accepted through the mail relay against sending
//             straight to the smarthost (Postfix on loopback; a ratio), delivered/s, and
//             acceptance to the smarthost's receipt, p50 and p99 (bench/mail.ts).
//   tls:      new TLS handshakes/s and kept-alive HTTPS requests/s through the router against
//             nginx with the same certificate and app (ratios; bench/tls.ts; the router alone).
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { until } from '../src/lib/until.js';
import { FIXTURES, TestPetri } from '../test/e2e/petri.js';
import { authBench } from './auth.js';
import { percentile } from './common.js';
import { gateReturn } from './gate-return.js';
import { gateRps } from './gate-rps.js';
import { inventoryBench } from './inventory.js';
import { mailBench } from './mail.js';
import { metricsReport } from './metrics.js';
import { redisMemory } from './redis-memory.js';
import { tlsBench } from './tls.js';

const RUNS = 5;
const execFileAsync = promisify(execFile);

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

/** Managed add-on servers: time to provision each engine (`petri addons create` to the
 * answer; the app has no release yet, so no rollout is in it), and the servers' memory
 * (proportional set size of all their processes) empty and with 50 databases each. */
async function addons(): Promise<void> {
  const petri = await TestPetri.start({
    logLevel: 'error',
    addons: { postgres: { mode: 'managed' }, mysql: { mode: 'managed' }, redis: { mode: 'managed' } },
  });
  const engines = ['postgres', 'mysql', 'redis'] as const;
  const PER_ENGINE = 50;
  try {
    await petri.cli(['apps', 'create', 'bench']);
    const started = performance.now();
    for (const type of engines) {
      const r = await petri.cli(['addons', 'create', type, '--app', 'bench', '--as', `${type}0`]);
      if (r.code !== 0) throw new Error(`addons create ${type}: ${r.stderr}`);
    }
    console.log(
      `managed servers: first start to three add-ons provisioned in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const empty = Object.fromEntries(engines.map((t) => [t, managedMemory(petri, t)]));
    for (const type of engines) {
      const times: number[] = [];
      for (let i = 1; i < PER_ENGINE; i++) {
        const t = performance.now();
        const r = await petri.cli(['addons', 'create', type, '--app', 'bench', '--as', `${type}${i}`]);
        if (r.code !== 0) throw new Error(`addons create ${type}: ${r.stderr}`);
        times.push(performance.now() - t);
      }
      const full = managedMemory(petri, type);
      console.log(
        `${type} (managed): provision p50 ${percentile(times, 50).toFixed(0)} ms, p99 ${percentile(times, 99).toFixed(0)} ms; ` +
          `server memory ${mib(empty[type] ?? 0)} with 1 database, ${mib(full)} with ${PER_ENGINE}`,
      );
    }
  } finally {
    await petri.destroy();
  }
}

/** PSS of a managed server's processes (its main pid and every descendant), bytes. */
function managedMemory(petri: TestPetri, type: 'postgres' | 'mysql' | 'redis'): number {
  const pidFiles = {
    postgres: 'addons/postgres/data/postmaster.pid',
    mysql: 'addons/mysql/run/mariadbd.pid',
    redis: 'addons/redis/run/redis.pid',
  };
  const main = Number(readFileSync(path.join(petri.dataDir, pidFiles[type]), 'utf8').split('\n')[0]);
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Set([main]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (tree.has(ppid) && !tree.has(pid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  let total = 0;
  for (const pid of tree) {
    try {
      const kb = /^Pss:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1];
      total += Number(kb ?? 0) * 1024;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Issue 7: from the first request to a sleeping app to the first byte of its answer. */
async function wake(): Promise<void> {
  const petri = await TestPetri.start({ logLevel: 'error', bootTimeoutMs: 30_000, idleCheckMs: 1000 });
  const WAKES = 20;
  try {
    for (const [app, fixture] of [
      ['node', 'zero-dep'],
      ['flask', 'python-flask'],
    ] as const) {
      await petri.cli(['apps', 'create', app]);
      const deploy = await petri.cli(['deploy', path.join(FIXTURES, fixture), '--app', app]);
      if (deploy.code !== 0) throw new Error(`deploy ${app}: ${deploy.stderr}`);
      await petri.cli(['apps', 'set', app, 'idle=never']);
      const ms: number[] = [];
      for (let i = 0; i < WAKES; i++) {
        await petri.cli(['apps', 'sleep', app]);
        await until(async () => (await processCount(petri, app)) === 0, { timeout: 30_000, interval: 20 });
        ms.push(await firstByte(petri, `${app}.petri.localhost`));
      }
      console.log(
        `wake (${fixture}), first request to first byte over ${WAKES} wakes: p50 ${percentile(ms, 50).toFixed(0)} ms, p99 ${percentile(ms, 99).toFixed(0)} ms` +
          (app === 'node' ? ` (target p50 < 300 ms: ${percentile(ms, 50) < 300 ? 'met' : 'missed'})` : ''),
      );
    }
  } finally {
    await petri.destroy();
  }
}

async function processCount(petri: TestPetri, app: string): Promise<number> {
  const ps = JSON.parse((await petri.cli(['ps', '--app', app, '--json'])).stdout) as { processes: unknown[] };
  return ps.processes.length;
}

/** Milliseconds from sending a request to the first byte of the answer's headers. */
function firstByte(petri: TestPetri, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get(
      { host: '127.0.0.1', port: petri.httpPort, path: '/', headers: { host }, agent: false },
      (res) => {
        const ms = performance.now() - started;
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve(ms) : reject(new Error(`wake answered ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
  });
}

/** Issue 7: 500 deployed apps of which 20 awake: what the control plane and HAProxy cost,
 * how fast `petri apps --json` lists them, app 501's deploy, and the router's throughput to
 * one awake app against the same with a single app deployed. */
async function density(): Promise<void> {
  const APPS = Number(process.env.DENSITY_APPS ?? 500);
  const AWAKE = 20;
  const petri = await TestPetri.start({ logLevel: 'error', bootTimeoutMs: 30_000 });
  try {
    await petri.cli(['apps', 'create', 'app-0']);
    await timeDeploy(petri, 'app-0', 'zero-dep', 'v1');
    await throughput(petri, 'app-0.petri.localhost'); // warm-up
    const alone = await throughput(petri, 'app-0.petri.localhost');
    const started = performance.now();
    for (let i = 1; i < APPS; i++) {
      const app = `app-${i}`;
      await petri.cli(['apps', 'create', app]);
      const r = await petri.cli(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', app]);
      if (r.code !== 0) throw new Error(`deploy ${app}: ${r.stderr}`);
      // The first AWAKE stay up; the rest sleep as idle apps would.
      if (i >= AWAKE) await petri.cli(['apps', 'sleep', app]);
      if (i % 100 === 0)
        console.log(`  ${i} apps deployed in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
    await until(async () => (await sandboxes(petri)) <= AWAKE, { timeout: 120_000, interval: 500 });
    const list: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      const r = await petri.cli(['apps', '--json']);
      if (r.code !== 0) throw new Error(r.stderr);
      list.push(performance.now() - t);
    }
    await petri.cli(['apps', 'create', `app-${APPS}`]);
    const deploy501 = await timeDeploy(petri, `app-${APPS}`, 'zero-dep', 'v1');
    await throughput(petri, 'app-0.petri.localhost'); // warm-up
    const crowded = await throughput(petri, 'app-0.petri.localhost');
    const cp = rssOf(petri.proc?.pid ?? 0);
    const haproxy = haproxyPids(petri).reduce((sum, pid) => sum + rssOf(pid), 0);
    console.log(
      `density: ${APPS} apps, ${AWAKE} awake (${await sandboxes(petri)} sandboxes running): control plane ${mib(cp)} (target < 200 MiB), HAProxy ${mib(haproxy)}; ` +
        `petri apps --json p50 ${percentile(list, 50).toFixed(0)} ms (target < 100 ms); deploy of app ${APPS + 1}: ${(deploy501 / 1000).toFixed(2)} s; ` +
        `throughput to one awake app ${crowded.toFixed(0)} vs ${alone.toFixed(0)} req/s with one app deployed: ratio ${(crowded / alone).toFixed(2)} (target > 0.9)`,
    );
  } finally {
    await petri.destroy();
  }
}

async function sandboxes(petri: TestPetri): Promise<number> {
  try {
    return readdirSync(`/sys/fs/cgroup/pids/${petri.config.cgroupParent}`, { withFileTypes: true }).filter(
      (d) => d.isDirectory(),
    ).length;
  } catch {
    return 0;
  }
}

/** Resident memory of one process (VmRSS), bytes. */
function rssOf(pid: number): number {
  try {
    const kb = /^VmRSS:\s+([0-9]+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** HAProxy's master and workers for this Petri (their command line names its router dir). */
function haproxyPids(petri: TestPetri): number[] {
  const dir = path.join(petri.dataDir, 'router');
  return readdirSync('/proc')
    .filter((e) => /^[0-9]+$/.test(e))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    });
}

/** Issue 11: the npm-build fixture (npm ci and a build step), first deploy against a redeploy
 * with its dependencies restored from the build cache: what the builds' own disks cost. */
async function npmBuild(): Promise<void> {
  const petri = await TestPetri.start({ logLevel: 'error' });
  try {
    const first: number[] = [];
    const cached: number[] = [];
    for (let i = 0; i < 3; i++) {
      await petri.cli(['apps', 'create', `npm-${i}`]);
      first.push(await timeBuiltDeploy(petri, `npm-${i}`));
      cached.push(await timeBuiltDeploy(petri, `npm-${i}`));
    }
    report('npm-build first deploy to first 200', first, 10_000);
    report('npm-build redeploy with its dependencies cached', cached, 5000);
  } finally {
    await petri.destroy();
  }
}

/** `petri deploy` returns once the new release serves; the body says the build step ran. */
async function timeBuiltDeploy(petri: TestPetri, app: string): Promise<number> {
  const started = performance.now();
  const deploy = await petri.cli(['deploy', path.join(FIXTURES, 'npm-build'), '--app', app, '--json']);
  if (deploy.code !== 0) throw new Error(`npm-build deploy failed: ${deploy.stderr}`);
  const res = await petri.app(app);
  if (res.status !== 200 || !res.body.startsWith('built:'))
    throw new Error(`npm-build answered ${res.status}`);
  return performance.now() - started;
}

// BENCH=deploy,network,python,addons,wake,density,build,auth,redis,inventory,gate,gate-return,mail,metrics,tls runs only those sections (all by default).
const only = process.env.BENCH?.split(',');
const wanted = (name: string) => !only || only.includes(name);
if (wanted('deploy')) await main();
if (wanted('network')) await isolation();
if (wanted('python')) await python();
if (wanted('addons')) await addons();
if (wanted('wake')) await wake();
if (wanted('density')) await density();
if (wanted('build')) await npmBuild();
if (wanted('auth')) await authBench();
if (wanted('inventory')) await inventoryBench();
if (wanted('redis')) await redisMemory();
if (wanted('gate')) await gateRps();
if (wanted('gate-return')) await gateReturn();
if (wanted('mail')) await mailBench();
if (wanted('tls')) await tlsBench();
if (wanted('metrics')) await metricsReport();

// `node --import tsx bench/wake.ts`: from the first request to a sleeping app to the first
// byte of its answer, for the Node.js (zero-dep) and Flask fixtures, and where the time goes.
// Starts its own Petri (as the e2e tests do) with info logs, whose 'instance started' and
// 'instance answers' lines carry the wake path's timings:
//   scheduled   request sent -> the reconciler calls the driver (waker, wake write, pass)
//   disk        app disk cloned from its template  } made side by side: the slowest of the
//   cgroup      cgroup created with its limits     } three is what `prepare` costs
//   namespace   network namespace and veth         }
//   prepare     the three above, side by side
//   spawn       launcher (sh, bwrap) until the sandbox is in its cgroup
//   start       the driver's whole start, with the controller's store writes
//   interpreter sandbox started -> the app answers its first probe (runtime, framework,
//               gunicorn master and worker; the probe runs every 10 ms)
//   route       the app answers -> first byte at the client (the pass that routes it, the
//               waker's hand-over, the proxying)
// Also how many wakes found their disk made ahead, and the host's load average over the run
// (the machine may be shared: compare runs made at a like load).
// WAKES=N sets the number of wakes per fixture (20 by default), WAKE_ROWS=1 prints each
// wake's parts. Figures only, never asserts.
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { until } from '../src/lib/until.js';
import { FIXTURES, TestPetri } from '../test/e2e/petri.js';
import { percentile } from './common.js';

const WAKES = Number(process.env.WAKES ?? 20);
const FIXTURE_APPS = [
  ['node', 'zero-dep', 150],
  ['flask', 'python-flask', 300],
] as const;

interface LogLine {
  time: number;
  msg: string;
  app?: string;
  /** How the instance got its /app: 'spare' when made ahead. */
  appDir?: string;
  timings?: Record<string, number>;
}

async function main(): Promise<void> {
  const petri = await TestPetri.start({ logLevel: 'info', bootTimeoutMs: 30_000, idleCheckMs: 1000 });
  try {
    for (const [app, fixture, targetMs] of FIXTURE_APPS) {
      await petri.cli(['apps', 'create', app]);
      const deploy = await petri.cli(['deploy', path.join(FIXTURES, fixture), '--app', app]);
      if (deploy.code !== 0) throw new Error(`deploy ${app}: ${deploy.stderr}`);
      await petri.cli(['apps', 'set', app, 'idle=never']);
      const rows: Record<string, number>[] = [];
      const loadBefore = os.loadavg()[0]!;
      let disksAhead = 0;
      for (let i = 0; i < WAKES; i++) {
        await petri.cli(['apps', 'sleep', app]);
        await until(async () => (await processCount(petri, app)) === 0, { timeout: 30_000, interval: 20 });
        const from = petri.output.length;
        const sent = Date.now();
        const firstByteMs = await firstByte(petri, `${app}.petri.localhost`);
        // The log lines of this wake (written before the answer left, but read as they come).
        const lines = await until(
          () => {
            const ls = logLines(petri.output.slice(from)).filter((l) => l.app === app);
            return ls.some((l) => l.msg === 'instance answers') && ls;
          },
          { timeout: 5000, message: 'the wake to be logged' },
        );
        const started = lines.find((l) => l.msg === 'instance started' && l.timings);
        const answers = lines.find((l) => l.msg === 'instance answers' && l.timings);
        if (!started?.timings || !answers?.timings) throw new Error('wake timings missing in the log');
        if (started.appDir === 'spare') disksAhead++;
        const s = started.timings;
        const a = answers.timings;
        const driverStartAt = started.time - (s.totalMs ?? 0);
        const answeredAt = answers.time;
        rows.push({
          scheduled: driverStartAt - sent,
          disk: s.appDirMs ?? 0,
          cgroup: s.cgroupMs ?? 0,
          namespace: s.networkMs ?? 0,
          prepare: s.prepareMs ?? 0,
          spawn: s.spawnMs ?? 0,
          start: a.startMs ?? 0,
          interpreter: a.readyMs ?? 0,
          route: sent + firstByteMs - answeredAt,
          total: firstByteMs,
        });
      }
      const p50 = percentile(
        rows.map((r) => r.total ?? 0),
        50,
      );
      console.log(
        `wake (${fixture}) over ${WAKES} wakes: first byte p50 ${p50.toFixed(0)} ms, p99 ${percentile(
          rows.map((r) => r.total ?? 0),
          99,
        ).toFixed(0)} ms (target p50 < ${targetMs} ms: ${p50 < targetMs ? 'met' : 'missed'})`,
      );
      console.log(
        `  disk made ahead in ${disksAhead} of ${WAKES} wakes; load average ${loadBefore.toFixed(1)} -> ${os.loadavg()[0]!.toFixed(1)}`,
      );
      if (process.env.WAKE_ROWS) for (const r of rows) console.log(`  ${JSON.stringify(r)}`);
      console.log('  p50 by part (ms):');
      for (const part of Object.keys(rows[0] ?? {})) {
        console.log(
          `    ${part.padEnd(12)} ${percentile(
            rows.map((r) => r[part] ?? 0),
            50,
          ).toFixed(0)}`,
        );
      }
    }
  } finally {
    await petri.destroy();
  }
}

function logLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // a line cut in two by a read: its rest comes with the next check
    }
  }
  return out;
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

await main();

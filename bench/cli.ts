// `node --import tsx bench/cli.ts`: how long the compiled CLI takes as a process, as a user's
// shell runs it (issue 16: `petri apps --json` under 100 ms p50, `petri --help` under 150 ms),
// against references run in the same rounds on the same Node.js: `node -e 0` (Node's own
// start) and a script that GETs /v1/apps with node:http and prints it (the least a CLI in
// Node.js can do), plus the same with fetch. The commands take turns, ROUNDS times (30), so
// a busy machine slows them all alike: the ratios hold where the times do not. CPU is each
// process's user+system time (from this process's children's times in /proc), the figure a
// loaded machine disturbs least. The server is a test Petri with 10 apps, or APPS (issue 16
// asks about 1,000: the ones past 10 are written to its store, as new apps).
// DIST=DIR runs another compiled tree; BEFORE=DIR adds an older commit's compiled tree to the
// same rounds, for a before/after; REBUILD=1 compiles again. Figures only, never asserts.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createApp } from '../src/domain/apps.js';
import { DataPaths } from '../src/lib/paths.js';
import { openStore } from '../src/store/db.js';
import { TestPetri } from '../test/e2e/petri.js';
import { percentile } from './common.js';

const ROUNDS = Number(process.env.ROUNDS ?? 30);
const APPS = Number(process.env.APPS ?? 10);
const ROOT = path.resolve(import.meta.dirname, '..');
const DIST = process.env.DIST ? path.resolve(process.env.DIST) : path.join(ROOT, 'bench/tmp/cli-dist');
const execFileAsync = promisify(execFile);

// What a CLI must do at the least: one GET, its body on stdout.
const BARE_HTTP = `require('node:http').get(process.env.PETRI_URL + '/v1/apps', { headers: { authorization: 'Bearer ' + process.env.PETRI_TOKEN } }, (res) => res.pipe(process.stdout));`;
const BARE_FETCH = `fetch(process.env.PETRI_URL + '/v1/apps', { headers: { authorization: 'Bearer ' + process.env.PETRI_TOKEN } }).then((res) => res.text()).then((text) => process.stdout.write(text));`;

interface Timed {
  label: string;
  argv: string[];
  wall: number[];
  cpu: number[];
}

async function main(): Promise<void> {
  if (!existsSync(path.join(DIST, 'main.js')) || process.env.REBUILD) {
    console.log(`compiling into ${path.relative(ROOT, DIST)} ...`);
    await execFileAsync('npx', ['tsc', '-p', 'tsconfig.json', '--outDir', DIST], { cwd: ROOT }).catch(
      () => undefined, // type errors elsewhere in a shared tree still emit
    );
  }
  const scratch = mkdtempSync(path.join(tmpdir(), 'petri-bench-cli-'));
  const petri = await TestPetri.start({ ceilings: { appsPerOwner: 100_000, instancesPerOwner: 100_000 } });
  try {
    for (let i = 1; i <= Math.min(APPS, 10); i++) {
      const made = await petri.cli(['apps', 'create', `app-${i}`]);
      if (made.code !== 0) throw new Error(`apps create app-${i}: ${made.stderr}`);
    }
    if (APPS > 10) await storedApps(petri, 11, APPS);
    // CommonJS scripts (.cjs): the checkout's package.json makes .js an ES module.
    writeFileSync(path.join(scratch, 'http.cjs'), BARE_HTTP);
    writeFileSync(path.join(scratch, 'fetch.cjs'), BARE_FETCH);
    const env = {
      ...process.env,
      PETRI_URL: petri.apiUrl,
      PETRI_TOKEN: petri.token,
      PETRI_CONFIG_DIR: path.join(scratch, 'config'),
    };
    const main = path.join(DIST, 'main.js');
    const runs: Timed[] = [
      { label: 'node -e 0', argv: ['-e', '0'], wall: [], cpu: [] },
      { label: 'GET with node:http', argv: [path.join(scratch, 'http.cjs')], wall: [], cpu: [] },
      { label: 'GET with fetch', argv: [path.join(scratch, 'fetch.cjs')], wall: [], cpu: [] },
      { label: 'petri apps --json', argv: [main, 'apps', '--json'], wall: [], cpu: [] },
      { label: 'petri --help', argv: [main, '--help'], wall: [], cpu: [] },
    ];
    if (process.env.BEFORE) {
      const before = path.join(path.resolve(process.env.BEFORE), 'main.js');
      runs.push(
        { label: 'before: apps --json', argv: [before, 'apps', '--json'], wall: [], cpu: [] },
        { label: 'before: --help', argv: [before, '--help'], wall: [], cpu: [] },
      );
    }
    // Two rounds first, not counted: they fill the compile cache and the page cache.
    for (let round = -2; round < ROUNDS; round++) {
      for (const run of runs) {
        const { wall, cpu } = await timedProcess(run.argv, env, scratch);
        if (round < 0) continue;
        run.wall.push(wall);
        run.cpu.push(cpu);
      }
    }
    const [node, http] = runs as [Timed, Timed];
    const nodeWall = percentile(node.wall, 50);
    const nodeCpu = mean(node.cpu);
    for (const run of runs) {
      const wall = percentile(run.wall, 50);
      const cpu = mean(run.cpu);
      console.log(
        `  ${run.label.padEnd(20)} p50 ${wall.toFixed(0).padStart(4)} ms (${(wall / nodeWall).toFixed(2)}x node -e 0), ` +
          `CPU ${cpu.toFixed(0).padStart(4)} ms (${(cpu / nodeCpu).toFixed(2)}x)`,
      );
    }
    const apps = runs[3] as Timed;
    const help = runs[4] as Timed;
    console.log(
      `cli: petri apps --json p50 ${percentile(apps.wall, 50).toFixed(0)} ms (target < 100 ms), ` +
        `${(percentile(apps.wall, 50) / nodeWall).toFixed(2)}x node -e 0 (${nodeWall.toFixed(0)} ms) and ` +
        `${(percentile(apps.wall, 50) / percentile(http.wall, 50)).toFixed(2)}x a bare node:http GET; ` +
        `petri --help p50 ${percentile(help.wall, 50).toFixed(0)} ms (target < 150 ms), ` +
        `${(percentile(help.wall, 50) / nodeWall).toFixed(2)}x node -e 0; CPU ${mean(apps.cpu).toFixed(0)} and ` +
        `${mean(help.cpu).toFixed(0)} ms against ${nodeCpu.toFixed(0)}; ${APPS} apps, ${ROUNDS} rounds, load ${loadAverage()}`,
    );
  } finally {
    await petri.destroy();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Apps first to last, written to the store as the API's create does, the team's quota raised. */
async function storedApps(petri: TestPetri, first: number, last: number): Promise<void> {
  const db = await openStore(new DataPaths(petri.dataDir).store);
  try {
    await db.updateTable('teams').set({ quota_apps: 100_000, quota_memory_mib: 100_000_000 }).execute();
    const admin = await db
      .selectFrom('users')
      .selectAll()
      .where('role', '=', 'admin')
      .executeTakeFirstOrThrow();
    for (let i = first; i <= last; i++) {
      for (let attempt = 0; ; attempt++) {
        try {
          await createApp(db, admin, `app-${i}`, { memoryMiB: 64, cpus: 1, pids: 64 });
          break;
        } catch (err) {
          // The server writes too: a transaction that must wait for it is tried again.
          if (!(err as { code?: string }).code?.startsWith('SQLITE_BUSY') || attempt > 50) throw err;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }
  } finally {
    await db.destroy();
  }
}

/** Wall time and CPU time (user + system) of one process, in ms; its output is dropped. */
async function timedProcess(
  argv: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<{ wall: number; cpu: number }> {
  const cpuBefore = childrenCpu();
  const started = performance.now();
  const child = spawn(process.execPath, argv, { env, cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const wall = performance.now() - started;
  if (code !== 0) throw new Error(`node ${argv.join(' ')} exited with ${code}: ${stderr}`);
  return { wall, cpu: childrenCpu() - cpuBefore };
}

/** CPU time of this process's children that have ended, in ms (/proc/self/stat's cutime and
 * cstime, in clock ticks of 10 ms: summed over many runs, their mean is exact enough). */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // The fields after the command's name (which may hold spaces), starting with the state (3).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

await main();

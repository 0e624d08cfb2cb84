// Issue 16: what a Redis add-on costs in memory, both ways an add-on can be confined.
//   shared: one managed server, each add-on an ACL login fenced to its key prefix (what
//           Petri does): the server's growth per add-on, with N logins and then with one
//           idle connection and one key per add-on.
//   own:    one managed server per add-on (what RQ and BullMQ's default prefix would need):
//           N servers, their proportional set size each, the host memory they take
//           (MemAvailable, noisy: other work on the machine moves it too) and their CPU at rest.
// Figures only, never asserts. Runs as root (the servers run as petri-addons, as in Petri).
// `REDIS_ADDONS=N` changes N (100).
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ManagedRedis } from '../src/addons/redis/managed.js';
import { createRedisProvider } from '../src/addons/redis/provider.js';

const SERVER_USER = 'petri-addons';
const CPU_WINDOW_MS = 10_000;

export async function redisMemory(): Promise<void> {
  const n = Number(process.env.REDIS_ADDONS ?? 100);
  const root = await mkdtemp(path.join(tmpdir(), 'petri-bench-redis-'));
  await chmod(root, 0o711); // the servers' user passes through to its own directories
  try {
    await shared(root, n);
    await own(root, n);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function shared(root: string, n: number): Promise<void> {
  const server = new ManagedRedis({ dir: path.join(root, 'shared'), user: SERVER_USER });
  const url = await server.start();
  const provider = createRedisProvider(url);
  const apps: Redis[] = [];
  try {
    const empty = await pss(await server.pids());
    const endpoint = await server.endpoint();
    const logins = [];
    for (let i = 0; i < n; i++) logins.push(await provider.provision(`bench_${i}`));
    const withLogins = await pss(await server.pids());
    for (const creds of logins) {
      const app = new Redis(provider.url(creds, endpoint));
      app.on('error', () => {});
      await app.set(`${creds.database}k`, 'v');
      apps.push(app);
    }
    const withClients = await pss(await server.pids());
    console.log(
      `redis shared server: ${mib(empty)} empty; ${kib((withLogins - empty) / n)} per add-on login ` +
        `(${mib(withLogins)} with ${n}); ${kib((withClients - empty) / n)} per add-on with an idle ` +
        `connection and a key (${mib(withClients)} with ${n})`,
    );
  } finally {
    for (const app of apps) app.disconnect();
    await provider.close();
    await server.stop();
  }
}

async function own(root: string, n: number): Promise<void> {
  const servers: ManagedRedis[] = [];
  const before = await memAvailable();
  try {
    for (let i = 0; i < n; i++) {
      const server = new ManagedRedis({ dir: path.join(root, `own_${i}`), user: SERVER_USER });
      servers.push(server);
      await server.start();
    }
    const pids = (await Promise.all(servers.map((s) => s.pids()))).flat();
    const total = await pss(pids);
    const taken = before - (await memAvailable());
    const ticks0 = await cpuTicks(pids);
    await new Promise((resolve) => setTimeout(resolve, CPU_WINDOW_MS));
    const busy = ((await cpuTicks(pids)) - ticks0) * 10; // 100 ticks a second: ms of CPU
    console.log(
      `redis, a server per add-on: ${mib(total / n)} PSS per server (${mib(total)} for ${n}); ` +
        `host memory taken ${mib(taken / n)} per server (${mib(taken)}); ` +
        `at rest ${((busy / CPU_WINDOW_MS / n) * 100).toFixed(3)}% of a core per server ` +
        `(${((busy / CPU_WINDOW_MS) * 100).toFixed(1)}% for ${n})`,
    );
  } finally {
    await Promise.all(servers.map((s) => s.stop().catch(() => {})));
  }
}

/** Proportional set size of these processes, bytes. */
async function pss(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
    total += Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0) * 1024;
  }
  return total;
}

async function memAvailable(): Promise<number> {
  const text = await readFile('/proc/meminfo', 'utf8');
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(text)?.[1] ?? 0) * 1024;
}

/** User and system clock ticks of these processes so far. */
async function cpuTicks(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return total;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

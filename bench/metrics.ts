// The cost of metrics collection (issue 18): 500 apps, 50 awake with one web instance each
// (or one instance of each of N process types: web, worker1 ...; every type is a row per
// minute), each awake app getting REQUESTS_PER_MINUTE requests a minute through the router's log.
// A day is simulated minute by minute on a temp store: each minute the router's log lines
// are fed to the collector (as its UDP socket would), then one pass runs (store write,
// probes of the 50 awake apps through a stand-in router on loopback, cgroup reads through a
// stand-in driver, alerts, gauges). Figures: control-plane CPU per minute spent collecting
// (the passes and the ingest of log lines), as a share of one core (target < 1%), and the
// store's growth per day (target < 20 MiB), steady state with retention.
// Also: the heap the Prometheus series of 1,000 apps take, and the time to render /metrics.
// Run alone: node --expose-gc --import tsx bench/metrics.ts [minutes] [process types per app],
// or BENCH=metrics npm run bench (a day, with 1 and with 3 process types per awake app).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { createApp } from '../src/domain/apps.js';
import { createUser } from '../src/domain/auth.js';
import { MetricsCollector } from '../src/metrics/collector.js';
import { openStore } from '../src/store/db.js';

const APPS = 500;
const AWAKE = 50;
const REQUESTS_PER_MINUTE = 60;
const LIMITS = { memoryMiB: 512, cpus: 1, pids: 256, diskMiB: 1024 };
const silent = { error: () => undefined, info: () => undefined, warn: () => undefined };

export interface MetricsBench {
  minutes: number;
  cpuMsPerMinute: number;
  cpuShareOfOneCore: number;
  ingestCpuMsPerMinute: number;
  passCpuMsPerMinute: number;
  storeMiBPerDay: number;
  /** The store file at the end (500 apps and everything else included). */
  fileMiB: number;
}

export async function metricsBench(minutes = 1440, types = 1): Promise<MetricsBench> {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-bench-metrics-'));
  const file = path.join(dir, 'petri.db');
  const db = await openStore(file);
  // A router stand-in: answers every probe at once (the probe's cost is Petri's side).
  const router = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => router.listen(0, '127.0.0.1', resolve));
  const routerPort = (router.address() as { port: number }).port;
  try {
    const owner = await createUser(db, 'owner', 'admin');
    const apps = [];
    const quotas = { apps: APPS, memoryMiB: APPS * LIMITS.memoryMiB, addons: 0 };
    for (let i = 0; i < APPS; i++)
      apps.push(await createApp(db, owner, `app-${i}`, LIMITS, undefined, undefined, undefined, { quotas }));
    const now0 = Date.parse('2026-01-01T00:00:00Z');
    for (const [i, app] of apps.slice(0, AWAKE).entries()) {
      const release = await db
        .insertInto('releases')
        .values({
          app_id: app.id,
          version: 1,
          deploy_id: null,
          slug_dir: '/nonexistent',
          process_types: JSON.stringify(
            Object.fromEntries(typeNames(types).map((t) => [t, 'node server.js'])),
          ),
          runtime_env: '{}',
          description: 'bench',
          created_by: owner.id,
          created_at: new Date(now0).toISOString(),
          error: null,
          release_command: null,
          health_path: '/health',
          phase_instance: null,
          phase_started_at: null,
          node_version: null,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      for (const type of typeNames(types)) {
        await db
          .insertInto('instances')
          .values({
            id: `app-${i}-${type}-1`,
            app_id: app.id,
            release_id: release.id,
            type,
            idx: 1,
            port: type === 'web' ? 10_000 + i : null,
            state: 'up',
            started_at: new Date(now0).toISOString(),
            ready_at: new Date(now0).toISOString(),
            restarts: 0,
            exit_code: null,
            exit_reason: null,
            next_start_at: null,
            stop_deadline: null,
            signalled_at: null,
          })
          .execute();
      }
    }
    let now = now0;
    let cpuSeconds = 0;
    const collector = new MetricsCollector({
      db,
      // What the local driver reads from the cgroup files: memory.current and cpu usage.
      driver: {
        status: async (id) => {
          cpuSeconds += 0.01;
          return { id, running: true, memoryBytes: 50 * 1048576, cpuSeconds };
        },
      },
      routerAddress: '127.0.0.1',
      routerPort,
      domain: 'petri.localhost',
      apiHost: 'petri.localhost',
      wakeTimeoutMs: 30_000,
      passMs: 3_600_000, // passes are run by hand below, one per simulated minute
      logger: silent,
      now: () => now,
    });
    // The router's lines carry the tag listen() makes; lines without it are not counted.
    const { tag } = await collector.listen();
    const lines: string[] = [];
    for (let i = 0; i < AWAKE; i++) {
      for (let r = 0; r < REQUESTS_PER_MINUTE; r++) {
        const status = r % 20 === 0 ? 404 : 200;
        lines.push(
          `<134>Jan  1 00:00:00 haproxy[1]: petri1 ${tag} app-${i}.petri.localhost ${status} ${r % 97} 1234`,
        );
      }
    }
    // Pages in use after a checkpoint: what the rows and their indexes take, free pages not counted.
    const size = async () => {
      await sql`pragma wal_checkpoint(TRUNCATE)`.execute(db);
      const pages = await sql<{ page_count: number }>`pragma page_count`.execute(db);
      const free = await sql<{ freelist_count: number }>`pragma freelist_count`.execute(db);
      const pageSize = await sql<{ page_size: number }>`pragma page_size`.execute(db);
      return (
        ((pages.rows[0]?.page_count ?? 0) - (free.rows[0]?.freelist_count ?? 0)) *
        (pageSize.rows[0]?.page_size ?? 0)
      );
    };
    const sizeBefore = await size();
    let ingestUs = 0;
    let passUs = 0;
    for (let m = 0; m < minutes; m++) {
      now = now0 + m * 60_000 + 30_000;
      let t = process.cpuUsage();
      for (const line of lines) collector.ingest(line);
      let d = process.cpuUsage(t);
      ingestUs += d.user + d.system;
      now = now0 + (m + 1) * 60_000 + 1000;
      t = process.cpuUsage();
      await collector.runNow();
      d = process.cpuUsage(t);
      passUs += d.user + d.system;
    }
    await collector.stop();
    const grown = (await size()) - sizeBefore;
    const fileMiB = statSync(file).size / 1048576;
    await db.destroy();
    const perMinuteMs = (ingestUs + passUs) / 1000 / minutes;
    return {
      minutes,
      cpuMsPerMinute: perMinuteMs,
      cpuShareOfOneCore: perMinuteMs / 60_000,
      ingestCpuMsPerMinute: ingestUs / 1000 / minutes,
      passCpuMsPerMinute: passUs / 1000 / minutes,
      storeMiBPerDay: (grown / 1048576) * (1440 / minutes),
      fileMiB,
    };
  } finally {
    router.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** web, then worker1, worker2 ...: `n` process type names. */
function typeNames(n: number): string[] {
  return ['web', ...Array.from({ length: n - 1 }, (_, i) => `worker${i + 1}`)];
}

/** What the collector's series take with 1,000 apps that each answered 2xx, 3xx, 4xx and
 * 5xx (the most series an app has), and how long one /metrics text takes to make. */
export async function metricsSeriesBench(
  apps = 1000,
): Promise<{ heapMiB: number; textMiB: number; textMs: number }> {
  // Only apps that exist get series, and only lines with the collector's tag count: a store.
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-bench-series-'));
  const db = await openStore(path.join(dir, 'petri.db'));
  try {
    const owner = await createUser(db, 'owner', 'admin');
    const quotas = { apps, memoryMiB: apps * LIMITS.memoryMiB, addons: 0 };
    for (let i = 0; i < apps; i++)
      await createApp(db, owner, `app-${i}`, LIMITS, undefined, undefined, undefined, { quotas });
    const collector = new MetricsCollector({
      db,
      driver: { status: async (id) => ({ id, running: true }) },
      routerAddress: '127.0.0.1',
      routerPort: 1,
      domain: 'petri.localhost',
      apiHost: 'petri.localhost',
      passMs: 60_000,
      wakeTimeoutMs: 30_000,
      logger: silent,
    });
    const { tag } = await collector.listen();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < apps; i++)
      for (const status of [200, 302, 404, 500])
        collector.ingest(`petri1 ${tag} app-${i}.petri.localhost ${status} ${i % 300} 100`);
    gc?.();
    const heapMiB = (process.memoryUsage().heapUsed - before) / 1048576;
    await collector.text(); // warm
    const t = performance.now();
    const text = await collector.text();
    const textMs = performance.now() - t;
    await collector.stop();
    return { heapMiB, textMiB: text.length / 1048576, textMs };
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prints the figures: the Prometheus series, then a day (or `minutes`) of collection with
 * each number of process types per awake app in `typeCounts`. */
export async function metricsReport(minutes = 1440, typeCounts: readonly number[] = [1, 3]): Promise<void> {
  const series = await metricsSeriesBench();
  console.log(
    `prometheus series of 1,000 apps: ${series.heapMiB.toFixed(1)} MiB of heap${(globalThis as { gc?: unknown }).gc ? '' : ' (run with --expose-gc for an exact figure)'}; /metrics ${series.textMiB.toFixed(2)} MiB of text in ${series.textMs.toFixed(0)} ms`,
  );
  for (const types of typeCounts) {
    const r = await metricsBench(minutes, types);
    console.log(
      [
        `metrics collection, ${APPS} apps, ${AWAKE} awake with ${types} process type${types === 1 ? '' : 's'} each, ${REQUESTS_PER_MINUTE} requests/min each, ${r.minutes} simulated minutes:`,
        `  CPU per minute collecting: ${r.cpuMsPerMinute.toFixed(1)} ms (${(r.cpuShareOfOneCore * 100).toFixed(3)}% of one core; target < 1%)`,
        `    of which the log lines: ${r.ingestCpuMsPerMinute.toFixed(1)} ms, the pass: ${r.passCpuMsPerMinute.toFixed(1)} ms`,
        `  store growth: ${r.storeMiBPerDay.toFixed(2)} MiB per day (target < 20 MiB); store file at the end ${r.fileMiB.toFixed(1)} MiB`,
      ].join('\n'),
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const types = process.argv[3] === undefined ? undefined : [Number(process.argv[3])];
  await metricsReport(Number(process.argv[2] ?? 1440), types);
}

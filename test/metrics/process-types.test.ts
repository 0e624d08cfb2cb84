// Memory and CPU per process type (issue 18), on a temp store: a type counts under its own
// name, at most 10 per app and hour, the rest (and names no Procfile has) under '(other)';
// per type, CPU time and the CPU time the limit allowed add up across minutes into hours and
// memory is the highest; retention drops old rows; the collector reads two process types of
// an app and shows each against its limits in the store, in Prometheus and through the API;
// an app with 50 process types stays at 11 rows per minute and hour, a restart of the
// control plane within the hour included.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { AppMetrics } from '../../src/contract/index.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import {
  addTypeCounters,
  appSeries,
  appTypeSeries,
  emptyTypeCounters,
  MAX_NAMED_TYPES,
  OTHER_TYPE,
  pruneMetrics,
  recordMinutes,
  rollUpTypes,
  type TypeCounters,
  typeRowName,
} from '../../src/domain/metrics.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';
import { buildTestApi } from '../api/test-api.js';
import { testCollector } from './test-collector.js';

const LIMITS = { memoryMiB: 256, cpus: 0.5, pids: 256, diskMiB: 1024 };
const MIN = 60_000;
const HOUR = 60 * MIN;
const MiB = 1048576;

const counters = (c: Partial<TypeCounters>): TypeCounters => ({ ...emptyTypeCounters(), ...c });

describe('process types: naming and rollup', () => {
  test('a type counts under its name up to 10 per app; beyond, and names no Procfile has, under (other)', () => {
    const named = new Set<string>();
    const names = Array.from({ length: 12 }, (_, i) => `t${i}`).map((t) => typeRowName(named, t));
    assert.deepEqual(names.slice(0, MAX_NAMED_TYPES), [
      't0',
      't1',
      't2',
      't3',
      't4',
      't5',
      't6',
      't7',
      't8',
      't9',
    ]);
    assert.deepEqual(names.slice(MAX_NAMED_TYPES), [OTHER_TYPE, OTHER_TYPE]);
    assert.equal(typeRowName(named, 't3'), 't3', 'a name it has keeps its row');
    for (const odd of ['Web', 'we b', 'web\u001b[2J', 'x"}', '', 'a'.repeat(31), OTHER_TYPE])
      assert.equal(typeRowName(new Set(), odd), OTHER_TYPE, JSON.stringify(odd));
  });

  test('rollup: CPU time and its allowance add up, instances, memory and its limit are the highest; web first, (other) last', () => {
    const a = counters({
      instances: 1,
      memory_max: 100,
      memory_limit_mib: 256,
      cpu_ms: 10,
      cpu_limit_ms: 30_000,
    });
    addTypeCounters(
      a,
      counters({ instances: 2, memory_max: 50, memory_limit_mib: 512, cpu_ms: 5, cpu_limit_ms: 60_000 }),
    );
    assert.deepEqual(a, {
      instances: 2,
      memory_max: 100,
      memory_limit_mib: 512,
      cpu_ms: 15,
      cpu_limit_ms: 90_000,
    });

    const rolled = rollUpTypes([
      { at: 2, type: OTHER_TYPE, counters: counters({ cpu_ms: 1 }) },
      { at: 1, type: 'worker', counters: counters({ memory_max: 7, cpu_ms: 3, cpu_limit_ms: 30 }) },
      { at: 2, type: 'worker', counters: counters({ memory_max: 9, cpu_ms: 4, cpu_limit_ms: 30 }) },
      { at: 2, type: 'web', counters: counters({ memory_max: 5, cpu_ms: 2, cpu_limit_ms: 30 }) },
      // The collector's unwritten minute of a time the store has: one point.
      { at: 2, type: 'web', counters: counters({ memory_max: 6, cpu_ms: 1, cpu_limit_ms: 30 }) },
      { at: 1, type: 'clock', counters: counters({ cpu_ms: 1 }) },
    ]);
    assert.deepEqual(
      rolled.map((t) => t.type),
      ['web', 'clock', 'worker', OTHER_TYPE],
    );
    const web = rolled[0]!;
    assert.deepEqual(
      web.points.map((p) => [p.at, p.counters.memory_max, p.counters.cpu_ms, p.counters.cpu_limit_ms]),
      [[2, 6, 3, 60]],
    );
    const worker = rolled[2]!;
    assert.deepEqual(
      [worker.totals.memory_max, worker.totals.cpu_ms, worker.totals.cpu_limit_ms],
      [9, 7, 60],
    );
    assert.deepEqual(
      worker.points.map((p) => p.at),
      [1, 2],
    );
  });
});

describe('process types in the store and the collector', () => {
  let dir: string;
  let db: Store;
  let owner: User;
  let app: App;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-metrics-types-'));
    db = await openStore(path.join(dir, 'petri.db'));
    owner = await createUser(db, 'owner', 'member');
    app = await createApp(db, owner, 'typed', LIMITS);
  });
  after(async () => {
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A release of the app and its instances (id, type), all up. */
  const runInstances = async (target: App, instances: [string, string][]) => {
    const release = await db
      .insertInto('releases')
      .values({
        app_id: target.id,
        version: 1,
        deploy_id: null,
        slug_dir: '/nonexistent',
        process_types: '{}',
        runtime_env: '{}',
        description: 'test',
        created_by: owner.id,
        created_at: new Date().toISOString(),
        error: null,
        release_command: null,
        health_path: null,
        phase_instance: null,
        phase_started_at: null,
        node_version: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (const [idx, [id, type]] of instances.entries()) {
      await db
        .insertInto('instances')
        .values({
          id,
          app_id: target.id,
          release_id: release.id,
          type,
          idx: idx + 1,
          port: null,
          state: 'up',
          started_at: new Date().toISOString(),
          ready_at: new Date().toISOString(),
          restarts: 0,
          exit_code: null,
          exit_reason: null,
          next_start_at: null,
          stop_deadline: null,
          signalled_at: null,
        })
        .execute();
    }
  };

  test('type minutes add up into their hour (a second write adds to its minute); retention drops them at 48 hours and 90 days', async () => {
    const base = Math.floor(Date.parse('2026-03-01T10:58:00Z') / MIN);
    const web = (memory: number, cpu: number) =>
      counters({
        instances: 1,
        memory_max: memory,
        memory_limit_mib: 256,
        cpu_ms: cpu,
        cpu_limit_ms: 30_000,
      });
    await recordMinutes(
      db,
      [],
      [
        { appId: app.id, minute: base, type: 'web', counters: web(100, 10) },
        { appId: app.id, minute: base + 1, type: 'web', counters: web(300, 20) },
        { appId: app.id, minute: base + 1, type: 'worker', counters: web(50, 1) },
        { appId: app.id, minute: base + 2, type: 'web', counters: web(200, 40) }, // 11:00, the next hour
      ],
    );
    await recordMinutes(db, [], [{ appId: app.id, minute: base + 1, type: 'web', counters: web(250, 5) }]);
    const minutes = await appTypeSeries(db, app.id, base * MIN, 'minute');
    assert.deepEqual(
      minutes.map((p) => [
        p.at - base,
        p.type,
        p.counters.memory_max,
        p.counters.cpu_ms,
        p.counters.cpu_limit_ms,
      ]),
      [
        [0, 'web', 100, 10, 30_000],
        [1, 'web', 300, 25, 60_000],
        [1, 'worker', 50, 1, 30_000],
        [2, 'web', 200, 40, 30_000],
      ],
    );
    const hours = await appTypeSeries(db, app.id, base * MIN, 'hour');
    assert.deepEqual(
      hours.map((p) => [
        p.at * 60 - base,
        p.type,
        p.counters.memory_max,
        p.counters.cpu_ms,
        p.counters.cpu_limit_ms,
      ]),
      [
        [-58, 'web', 300, 35, 90_000],
        [-58, 'worker', 50, 1, 30_000],
        [2, 'web', 200, 40, 30_000],
      ],
    );
    // Type rows alone leave the app's own rows as they were.
    assert.deepEqual(await appSeries(db, app.id, base * MIN, 'minute'), []);

    const now = (base + 2) * MIN + 48 * HOUR;
    await pruneMetrics(db, now);
    assert.deepEqual(
      (await appTypeSeries(db, app.id, 0, 'minute')).map((p) => p.at - base),
      [2],
      'minutes past 48 hours dropped',
    );
    await pruneMetrics(db, (base + 2) * MIN + 90 * 24 * HOUR);
    assert.deepEqual(
      (await appTypeSeries(db, app.id, 0, 'hour')).map((p) => p.at * 60 - base),
      [2],
      'hours past 90 days dropped',
    );
    // Retention goes through the primary key, app by app, not through the whole table.
    const plan = await sql<{ detail: string }>`explain query plan delete from metric_type_minutes
      where app_id in (select id from apps) and minute < 0`.execute(db);
    assert.match(
      plan.rows.map((r) => r.detail).join('\n'),
      /SEARCH metric_type_minutes USING PRIMARY KEY \(app_id=\? AND minute<\?\)/,
    );
  });

  test('two process types: each with its memory against the memory limit and its CPU against the time the CPU limit allowed', async (t) => {
    const two = await createApp(db, owner, 'two-types', LIMITS);
    await runInstances(two, [
      ['two-types-web-1', 'web'],
      ['two-types-web-2', 'web'],
      ['two-types-worker-1', 'worker'],
    ]);
    // Each instance's cgroup: memory, and CPU seconds rising at its own pace per pass.
    const memory: Record<string, number> = {
      'two-types-web-1': 40 * MiB,
      'two-types-web-2': 42 * MiB,
      'two-types-worker-1': 100 * MiB,
    };
    const cpuPerPass: Record<string, number> = {
      'two-types-web-1': 1.5,
      'two-types-web-2': 0.5,
      'two-types-worker-1': 3,
    };
    const cpu = new Map<string, number>();
    let now = Math.floor(Date.now() / MIN) * MIN - 3 * MIN + 1000;
    const collector = testCollector(db, {
      now: () => now,
      driver: {
        status: async (id) => {
          if (!(id in memory)) return { id, running: true };
          cpu.set(id, (cpu.get(id) ?? 0) + (cpuPerPass[id] ?? 0));
          return { id, running: true, memoryBytes: memory[id], cpuSeconds: cpu.get(id) };
        },
      },
    });
    t.after(() => collector.stop());
    const firstMinute = Math.floor(now / MIN);
    await collector.runNow(); // the first reading: memory, and CPU to start from
    now += MIN;
    await collector.runNow(); // a minute later: CPU used in it
    now += MIN;
    await collector.runNow(); // writes the two minutes; this one stays live

    const rows = await appTypeSeries(db, two.id, firstMinute * MIN, 'minute');
    const figures = (p: { at: number; type: string; counters: TypeCounters }) => [
      p.at - firstMinute,
      p.type,
      p.counters.instances,
      p.counters.memory_max / MiB,
      p.counters.memory_limit_mib,
      p.counters.cpu_ms,
      p.counters.cpu_limit_ms,
    ];
    assert.deepEqual(rows.map(figures), [
      [0, 'web', 2, 42, 256, 0, 0],
      [0, 'worker', 1, 100, 256, 0, 0],
      // web: 1.5 + 0.5 s of the 2 × 0.5 CPU × 60 s its limit allowed; worker: 3 s of 30 s.
      [1, 'web', 2, 42, 256, 2000, 60_000],
      [1, 'worker', 1, 100, 256, 3000, 30_000],
    ]);
    assert.deepEqual(
      collector.liveTypes('two-types').map((l) => [l.minute - firstMinute, l.type, l.counters.cpu_ms]),
      [
        [2, 'web', 2000],
        [2, 'worker', 3000],
      ],
    );
    // The app's own figures are as before: all its processes together.
    const appRows = await appSeries(db, two.id, firstMinute * MIN, 'minute');
    assert.deepEqual(
      appRows.map((p) => [p.counters.memory_max / MiB, p.counters.cpu_ms]),
      [
        [182, 0],
        [182, 5000],
      ],
    );
    const text = await collector.text();
    assert.match(text, /petri_app_memory_bytes\{app="two-types"\} 190840832/);
    assert.match(text, /petri_app_process_memory_bytes\{app="two-types",type="web"\} 85983232/);
    assert.match(text, /petri_app_process_memory_bytes\{app="two-types",type="worker"\} 104857600/);
    assert.match(text, /petri_app_process_cpu_seconds_total\{app="two-types",type="web"\} 4/);
    assert.match(text, /petri_app_process_cpu_seconds_total\{app="two-types",type="worker"\} 6/);
    assert.match(text, /petri_app_cpu_seconds_total\{app="two-types"\} 10/);

    // Through the API: both types, with their limits, the live minute included.
    const apiDir = mkdtempSync(path.join(tmpdir(), 'petri-metrics-types-api-'));
    const token = await issueToken(db, (await createUser(db, 'admin', 'admin')).id, 'test');
    const api: FastifyInstance = await buildTestApi(apiDir, db, {}, { metrics: collector });
    t.after(async () => {
      await api.close();
      rmSync(apiDir, { recursive: true, force: true });
    });
    const res = await api.inject({
      method: 'GET',
      url: '/v1/apps/two-types/metrics?since=1h',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as AppMetrics;
    assert.deepEqual(
      body.processTypes.map((p) => [
        p.type,
        p.instances,
        p.memoryMaxBytes / MiB,
        p.memoryLimitMiB,
        p.cpuMs,
        p.cpuLimitMs,
      ]),
      [
        ['web', 2, 42, 256, 4000, 120_000],
        ['worker', 1, 100, 256, 6000, 60_000],
      ],
    );
    assert.equal(body.processTypes[0]!.points.length, 3);
    assert.deepEqual(body.limits, { memoryMiB: 256, cpus: 0.5 });
    assert.equal(body.totals.cpuMs, 10_000, 'the app total is unchanged: every type together');
  });

  test('an app with 50 process types (and names no Procfile has) stays at 11 rows per minute and hour, and 11 series', async (t) => {
    const many = await createApp(db, owner, 'many-types', LIMITS);
    const types = [
      ...Array.from({ length: 50 }, (_, i) => `p${String(i).padStart(2, '0')}`),
      'Web',
      'we b',
      'web\u001b[2J',
      'x"} 1\npetri_forged 1',
    ];
    await runInstances(
      many,
      types.map((type, i) => [`many-${i}`, type]),
    );
    let cpuSeconds = 0;
    let now = Date.parse('2026-09-01T10:58:30Z');
    const collector = testCollector(db, {
      now: () => now,
      driver: {
        status: async (id) => {
          cpuSeconds += 0.01;
          return { id, running: true, memoryBytes: MiB, cpuSeconds };
        },
      },
    });
    t.after(() => collector.stop());
    const start = Math.floor(now / MIN);
    // Four minutes across an hour's end; the second hour has a new Procfile with other names.
    for (let m = 0; m < 4; m++) {
      if (m === 2)
        await db
          .updateTable('instances')
          .set({ type: 'q' })
          .where('app_id', '=', many.id)
          .where('idx', '<=', 5)
          .execute();
      await collector.runNow();
      now += MIN;
    }
    await collector.flush(Math.floor(now / MIN));
    const rows = await appTypeSeries(db, many.id, start * MIN, 'minute');
    const perMinute = new Map<number, string[]>();
    for (const r of rows) perMinute.set(r.at, [...(perMinute.get(r.at) ?? []), r.type]);
    assert.equal(perMinute.size, 4);
    for (const [minute, names] of perMinute) {
      assert.equal(names.length, MAX_NAMED_TYPES + 1, `minute ${minute - start}: ${names.join(' ')}`);
      assert.ok(names.includes(OTHER_TYPE));
    }
    const hours = await appTypeSeries(db, many.id, start * MIN, 'hour');
    const perHour = new Map<number, number>();
    for (const r of hours) perHour.set(r.at, (perHour.get(r.at) ?? 0) + 1);
    assert.deepEqual([...perHour.values()], [11, 11], 'at most 11 rows per app and hour');
    // Nothing is lost: the (other) row sums the instances past the tenth type.
    const first = rows.filter((r) => r.at === start);
    assert.equal(
      first.reduce((s, r) => s + r.counters.instances, 0),
      types.length,
    );
    const text = await collector.text();
    const series = text
      .split('\n')
      .filter((l) => l.startsWith('petri_app_process_memory_bytes{app="many-types"'));
    assert.equal(series.length, MAX_NAMED_TYPES + 1);
    assert.ok(series.some((l) => l.includes('type="(other)"')));
    assert.doesNotMatch(text, /petri_forged|we b|\u001b|type="Web"/);

    // A restart of the control plane within the hour, and a Procfile with ten more names: the
    // new collector starts the hour from the names its rows have, so the hour stays at 11.
    await collector.stop();
    await db
      .updateTable('instances')
      .set({ type: sql<string>`'r' || idx` })
      .where('app_id', '=', many.id)
      .where('idx', '>', 5)
      .where('idx', '<=', 15)
      .execute();
    const restarted = testCollector(db, {
      now: () => now,
      driver: { status: async (id) => ({ id, running: true, memoryBytes: MiB }) },
    });
    t.after(() => restarted.stop());
    await restarted.runNow();
    now += MIN;
    await restarted.flush(Math.floor(now / MIN));
    const lastHour = (await appTypeSeries(db, many.id, start * MIN, 'hour')).filter(
      (r) => r.at === Math.floor((now - MIN) / HOUR),
    );
    assert.equal(lastHour.length, MAX_NAMED_TYPES + 1, lastHour.map((r) => r.type).join(' '));
    assert.ok(!lastHour.some((r) => r.type.startsWith('r')), 'the new names are (other) this hour');
  });
});

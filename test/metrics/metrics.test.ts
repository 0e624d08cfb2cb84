// The metrics' arithmetic and store (issue 18), on a temp store: requests become status
// classes and latency buckets, percentiles come from the buckets, minutes add up into hours
// (latency histograms too, memory as a maximum), retention drops old rows, requestsSince
// counts whole hours and the partial first one, availability merges overlapping incidents,
// and the collector counts the router's log lines per app, leaves other hosts out, writes
// finished minutes once and records a restart as an incident.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import {
  addCounters,
  addRequest,
  appSeries,
  availability,
  emptyCounters,
  getMetricState,
  incidentsSince,
  latencyBucket,
  latencyQuantile,
  pruneMetrics,
  recordMinutes,
  requestsSince,
  setMetricState,
} from '../../src/domain/metrics.js';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { MetricsCollector } from '../../src/metrics/collector.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App } from '../../src/store/schema.js';
import { testCollector } from './test-collector.js';

const LIMITS = { memoryMiB: 512, cpus: 1, pids: 256, diskMiB: 1024 };
const MIN = 60_000;
const HOUR = 60 * MIN;
const silent = { error: () => undefined, info: () => undefined, warn: () => undefined };

describe('metrics arithmetic', () => {
  test('a request counts in its status class and latency bucket', () => {
    const c = emptyCounters();
    addRequest(c, 200, 3, 100);
    addRequest(c, 503, 7000, 0);
    addRequest(c, 404, -1, 10);
    assert.equal(c.requests, 3);
    assert.deepEqual([c.s2xx, c.s4xx, c.s5xx], [1, 1, 1]);
    assert.equal(c.bytes, 110);
    assert.equal(c.l0, 2, '3 ms and a request with no time: the first bucket');
    assert.equal(c.l10, 1, '7 s: the ≤10 s bucket');
    assert.equal(latencyBucket(60_000), 11, 'slower than the last bound');
  });

  test('percentiles are the upper bound of the bucket that holds them', () => {
    const c = emptyCounters();
    for (let i = 0; i < 90; i++) addRequest(c, 200, 20, 0); // ≤25 ms
    for (let i = 0; i < 9; i++) addRequest(c, 200, 400, 0); // ≤500 ms
    addRequest(c, 200, 30_000, 0); // beyond the last bound
    assert.equal(latencyQuantile(c, 0.5), 25);
    assert.equal(latencyQuantile(c, 0.95), 500);
    assert.equal(latencyQuantile(c, 0.99), 500);
    assert.equal(latencyQuantile(c, 1), Number.POSITIVE_INFINITY);
    assert.equal(latencyQuantile(emptyCounters(), 0.5), null);
  });

  test('counters add up, memory is the higher of the two', () => {
    const a = emptyCounters();
    const b = emptyCounters();
    a.requests = 2;
    a.memory_max = 300;
    b.requests = 3;
    b.memory_max = 200;
    addCounters(a, b);
    assert.equal(a.requests, 5);
    assert.equal(a.memory_max, 300);
  });

  test('availability: overlapping incidents count once, open ones last until now, outside ones not at all', () => {
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const at = (m: number) => new Date(t0 + m * MIN).toISOString();
    const window = [t0, t0 + 100 * MIN] as const;
    assert.equal(availability([], ...window), 1);
    assert.equal(availability([{ startedAt: at(10), endedAt: at(20) }], ...window), 0.9);
    assert.equal(
      availability(
        [
          { startedAt: at(10), endedAt: at(20) },
          { startedAt: at(15), endedAt: at(30) },
          { startedAt: at(-50), endedAt: at(-10) },
        ],
        ...window,
      ),
      0.8,
    );
    assert.equal(availability([{ startedAt: at(90), endedAt: null }], ...window), 0.9);
    assert.equal(availability([{ startedAt: at(-10), endedAt: at(5) }], ...window), 0.95);
  });
});

describe('metrics in the store', () => {
  let dir: string;
  let db: Store;
  let app: App;
  let other: App;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-metrics-'));
    db = await openStore(path.join(dir, 'petri.db'));
    const owner = await createUser(db, 'owner', 'member');
    app = await createApp(db, owner, 'measured', LIMITS);
    other = await createApp(db, owner, 'other', LIMITS);
  });
  after(async () => {
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('minutes add up into their hour, histograms and maxima included; a second write of a minute adds to it', async () => {
    const base = Math.floor(Date.parse('2026-03-01T10:00:00Z') / MIN);
    const minute = (requests: number, ms: number, memory: number) => {
      const c = emptyCounters();
      for (let i = 0; i < requests; i++) addRequest(c, 200, ms, 1);
      c.memory_max = memory;
      return c;
    };
    await recordMinutes(db, [
      { appId: app.id, minute: base, counters: minute(10, 20, 100) },
      { appId: app.id, minute: base + 1, counters: minute(5, 400, 300) },
      { appId: other.id, minute: base, counters: minute(1, 1, 0) },
    ]);
    await recordMinutes(db, [{ appId: app.id, minute: base + 1, counters: minute(5, 400, 200) }]);
    const minutes = await appSeries(db, app.id, base * MIN, 'minute');
    assert.deepEqual(
      minutes.map((p) => [p.at - base, p.counters.requests, p.counters.memory_max]),
      [
        [0, 10, 100],
        [1, 10, 300],
      ],
    );
    const hours = await appSeries(db, app.id, base * MIN, 'hour');
    assert.equal(hours.length, 1);
    const hour = hours[0]!.counters;
    assert.equal(hour.requests, 20);
    assert.equal(hour.l2, 10, '10 requests ≤25 ms');
    assert.equal(hour.l6, 10, '10 requests ≤500 ms');
    assert.equal(hour.memory_max, 300);
    assert.equal(latencyQuantile(hour, 0.95), 500);
  });

  test('requestsSince: whole hours from the hour rows, the partial first hour from the minutes', async () => {
    const start = Math.floor(Date.parse('2026-04-01T08:00:00Z') / MIN);
    const rows = [];
    // 3 hours and a half, one request a minute.
    for (let m = 0; m < 210; m++) {
      const c = emptyCounters();
      addRequest(c, 200, 1, 0);
      rows.push({ appId: other.id, minute: start + m, counters: c });
    }
    await recordMinutes(db, rows);
    const since = new Date((start + 30) * MIN).toISOString(); // 08:30: half an hour in
    const counts = await requestsSince(db, [other.id, 999_999], since);
    assert.equal(counts.get(other.id), 180);
    assert.equal(counts.get(999_999), 0);
  });

  test('retention: minutes past 48 hours and hours past 90 days are dropped', async () => {
    const now = Date.parse('2026-06-01T00:00:00Z');
    const nowMinute = Math.floor(now / MIN);
    const c = emptyCounters();
    c.requests = 1;
    await recordMinutes(db, [
      { appId: app.id, minute: nowMinute - 49 * 60, counters: c },
      { appId: app.id, minute: nowMinute - 47 * 60, counters: c },
      { appId: app.id, minute: nowMinute - 91 * 24 * 60, counters: c },
    ]);
    await pruneMetrics(db, now);
    const minutes = await appSeries(db, app.id, now - 50 * HOUR, 'minute');
    assert.deepEqual(
      minutes.map((p) => nowMinute - p.at),
      [47 * 60],
    );
    const old = await appSeries(db, app.id, now - 92 * 24 * HOUR, 'hour');
    assert.ok(old.every((p) => p.at >= Math.floor(now / HOUR) - 90 * 24));
    assert.ok(old.some((p) => p.at === Math.floor(now / HOUR) - 49));
  });

  test("the collector counts the router's log lines per app, leaves other hosts out and writes finished minutes once", async (t) => {
    let now = Date.parse('2026-07-01T12:00:10Z');
    const collector = testCollector(db, {
      passMs: 60_000,
      now: () => now,
    });
    // The tag the router's lines carry (listen makes it); a line without it is not the router's.
    const { tag } = await collector.listen();
    t.after(() => collector.stop());
    const syslog = (line: string) =>
      `<134>Jul  1 12:00:10 haproxy[42]: ${line.replace('petri1 ', `petri1 ${tag} `)}`;
    collector.ingest(`<134>Jul  1 12:00:10 x[1]: petri1 measured.petri.localhost 503 1 1`); // no tag: not counted
    collector.ingest(syslog('petri1 measured.petri.localhost 200 12 345'));
    collector.ingest(syslog('petri1 measured.petri.localhost 502 3001 0'));
    collector.ingest(syslog('petri1 petri.localhost 200 1 1')); // the API: not an app
    collector.ingest(syslog('petri1 elsewhere.example 200 1 1')); // not ours
    collector.ingest(syslog('petri1 Evil.petri.localhost 200 1 1')); // not a name an app can have
    collector.ingest('garbage');
    collector.ingest(syslog('petri1 measured.petri.localhost nan 1 1'));
    const live = collector.live('measured');
    assert.equal(live.length, 1);
    assert.equal(live[0]!.counters.requests, 2);
    assert.equal(live[0]!.counters.s5xx, 1);
    const text = await collector.text();
    assert.match(text, /petri_app_requests_total\{app="measured",class="2xx"\} 1/);
    assert.match(text, /petri_app_requests_total\{app="measured",class="5xx"\} 1/);
    assert.doesNotMatch(text, /app="evil|app="petri"/i);

    const minute = Math.floor(now / MIN);
    await collector.flush(minute); // the current minute is not finished: nothing written
    assert.equal((await appSeries(db, app.id, minute * MIN, 'minute')).length, 0);
    now += MIN;
    await collector.flush(Math.floor(now / MIN));
    await collector.flush(Math.floor(now / MIN)); // nothing twice
    const written = await appSeries(db, app.id, minute * MIN, 'minute');
    assert.deepEqual(
      written.map((p) => [p.at, p.counters.requests, p.counters.s2xx, p.counters.s5xx, p.counters.bytes]),
      [[minute, 2, 1, 1, 345]],
    );
    assert.deepEqual(collector.live('measured'), []);
  });

  test('a start after a stop records the control plane as an incident from the last heartbeat', async () => {
    let now = Date.parse('2026-08-01T00:00:00Z');
    const make = () =>
      testCollector(db, {
        now: () => now,
      });
    const first = make();
    const { port } = await first.listen();
    await first.stop();
    now += 95_000;
    const second = make();
    const again = await second.listen();
    assert.equal(again.port, port, 'the same UDP port as before: an adopted router needs no reload');
    await second.stop();
    const incidents = await incidentsSince(db, '2026-07-31T00:00:00Z');
    const restart = incidents.find((i) => i.kind === 'control-plane' && i.startedAt.startsWith('2026-08-01'));
    assert.ok(restart);
    assert.equal(Date.parse(restart.endedAt!) - Date.parse(restart.startedAt), 95_000);
  });
  test('after a crash, the incident starts at the last heartbeat, which the heartbeat file keeps without a store write', async () => {
    const T = Date.parse('2026-08-02T00:00:00Z');
    let now = T;
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-heartbeat-'));
    const heartbeatFile = path.join(dir, 'heartbeat');
    const make = () => testCollector(db, { now: () => now, heartbeatFile, heartbeatMs: 20 });
    const first = make();
    const second = make();
    try {
      await first.listen();
      now = T + 60_000;
      first.start(); // its first pass writes the store's heartbeat at T + 60 s
      await until(
        async () => (await getMetricState(db, 'heartbeat')) === new Date(T + 60_000).toISOString(),
        {
          timeout: 5000,
          message: "the first pass's heartbeat in the store",
        },
      );
      now = T + 80_000;
      // The beats: the file says T + 80 s; the store still says T + 60 s at most.
      await until(() => statSync(heartbeatFile, { throwIfNoEntry: false })?.mtimeMs === T + 80_000, {
        timeout: 5000,
        message: 'the heartbeat file to say T + 80 s',
      });
      // A crash: no stop. The next start, at T + 95 s.
      now = T + 95_000;
      await second.listen();
      const incidents = await incidentsSince(db, '2026-08-01T12:00:00Z');
      const restart = incidents.find(
        (i) => i.kind === 'control-plane' && i.startedAt.startsWith('2026-08-02'),
      );
      assert.ok(restart);
      assert.equal(restart.startedAt, new Date(T + 80_000).toISOString());
      assert.equal(Date.parse(restart.endedAt!) - Date.parse(restart.startedAt), 15_000);
    } finally {
      await first.stop();
      await second.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('a pass counts each wake once with its duration, and a wake that never got ready as failed', async () => {
    const owner = await createUser(db, 'sleeper-owner', 'member');
    const woken = await createApp(db, owner, 'woken', LIMITS);
    const stuck = await createApp(db, owner, 'stuck', LIMITS);
    const t = Date.parse('2026-09-01T10:00:00Z');
    const iso = (ms: number) => new Date(ms).toISOString();
    await db
      .updateTable('apps')
      .set({ woke_at: iso(t) })
      .where('id', 'in', [woken.id, stuck.id])
      .execute();
    const release = await db
      .insertInto('releases')
      .values({
        app_id: woken.id,
        version: 1,
        deploy_id: null,
        slug_dir: '/nonexistent',
        process_types: '{}',
        runtime_env: '{}',
        description: 'test',
        created_by: owner.id,
        created_at: iso(t),
        error: null,
        release_command: null,
        health_path: null,
        phase_instance: null,
        phase_started_at: null,
        node_version: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('instances')
      .values({
        id: 'woken-web-1',
        app_id: woken.id,
        release_id: release.id,
        type: 'web',
        idx: 1,
        port: null,
        state: 'starting',
        started_at: iso(t + 100),
        ready_at: iso(t + 1500),
        restarts: 0,
        exit_code: null,
        exit_reason: null,
        next_start_at: null,
        stop_deadline: null,
        signalled_at: null,
      })
      .execute();
    let now = t + 60_000;
    const collector = testCollector(db, {
      now: () => now,
    });
    await collector.runNow();
    now += 60_000;
    await collector.runNow();
    const minute = Math.floor((t + 60_000) / MIN);
    const [woke] = await appSeries(db, woken.id, minute * MIN, 'minute');
    assert.equal(woke?.counters.wakes, 1);
    assert.equal(woke?.counters.wake_ms, 1500);
    const failed = await appSeries(db, stuck.id, minute * MIN, 'minute');
    assert.deepEqual(
      failed.map((p) => [p.counters.wakes, p.counters.probes_failed]),
      [[1, 1]],
    );
    assert.match(await collector.text(), /petri_app_wakes_total\{app="woken"\} 1/);
  });
  test('a router that does not answer and an add-on server down are incidents until they answer again', async () => {
    const t = Date.parse('2026-10-01T10:00:00Z');
    let now = t;
    const listener = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const open = (listener.address() as net.AddressInfo).port;
    const closed = await freePort();
    let addonPort = closed;
    let routerPort = closed;
    const router = http.createServer((_req, res) => res.end());
    // A postgres add-on in use: its server must answer (an unused engine's is not checked).
    await db
      .insertInto('addons')
      .values({
        app_id: app.id,
        app_name: app.name,
        name: 'db',
        type: 'postgres',
        env_var: 'DATABASE_URL',
        mode: 'managed',
        resource: 'db_measured',
        status: 'ready',
        retiring_slot: null,
        retire_after_release_id: null,
        created_by: app.owner_id,
        created_at: new Date(t).toISOString(),
        destroyed_at: null,
        error: null,
      })
      .execute();
    const collector = new MetricsCollector({
      db,
      driver: { status: async () => ({ id: 'x', running: true }) },
      routerAddress: '127.0.0.1',
      get routerPort() {
        return routerPort;
      },
      domain: 'petri.localhost',
      apiHost: 'petri.localhost',
      passMs: 3_600_000,
      wakeTimeoutMs: 30_000,
      addonServers: () => [
        { name: 'postgres', host: '127.0.0.1', port: addonPort },
        { name: 'redis', host: '127.0.0.1', port: closed },
      ],
      logger: silent,
      now: () => now,
    });
    try {
      now += 2 * MIN; // past the start's grace for add-on servers
      await collector.runNow();
      const during = await incidentsSince(db, new Date(t).toISOString());
      const ongoing = (kind: string) => during.find((i) => i.kind === kind && i.endedAt === null);
      assert.ok(ongoing('router'));
      assert.equal(ongoing('addon-server')?.subject, 'postgres');
      assert.equal(during.filter((i) => i.kind === 'addon-server').length, 1, 'redis: no add-on uses it');
      await new Promise<void>((resolve) => router.listen(0, '127.0.0.1', resolve));
      routerPort = (router.address() as net.AddressInfo).port;
      addonPort = open;
      now += 3 * MIN;
      await collector.runNow();
      const afterwards = await incidentsSince(db, new Date(t).toISOString());
      // (The router's incident may have begun in an earlier test of this store: one is open at a time.)
      for (const kind of ['router', 'addon-server']) {
        const ended = afterwards.filter(
          (x) => x.kind === kind && x.endedAt === new Date(t + 5 * MIN).toISOString(),
        );
        assert.equal(ended.length, 1, kind);
        assert.ok(!afterwards.some((x) => x.kind === kind && x.endedAt === null), `${kind} still open`);
      }
      assert.match(await collector.text(), /petri_addon_server_up\{addon="postgres"\} 1/);
    } finally {
      listener.close();
      router.close();
    }
  });
  test('mail an app handed to the relay is counted once, refused messages not', async () => {
    const t = Date.parse('2026-11-01T10:00:00Z');
    let now = t;
    const collector = testCollector(db, {
      now: () => now,
    });
    const message = (id: string, at: number, status: 'sent' | 'refused' | 'captured') => ({
      id,
      app_id: app.id,
      created_at: new Date(at).toISOString(),
      status,
      recipients: '["a@example.com"]',
      subject: 'hello',
      size: 100,
      reason: null,
      raw: null,
    });
    await db
      .insertInto('mail_messages')
      .values([
        message('m1', t + 1000, 'sent'),
        message('m2', t + 2000, 'captured'),
        message('m3', t + 3000, 'refused'),
      ])
      .execute();
    now = t + MIN;
    await collector.runNow();
    await db
      .insertInto('mail_messages')
      .values(message('m4', t + MIN + 1000, 'sent'))
      .execute();
    now = t + 2 * MIN;
    await collector.runNow();
    assert.match(await collector.text(), /petri_app_mail_sent_total\{app="measured"\} 3/);
  });
  test('an app answering 5xx to over 20% for 10 minutes is alerted once per episode, with an audit event', async () => {
    const owner = await createUser(db, 'alert-owner', 'member');
    const shaky = await createApp(db, owner, 'shaky', LIMITS);
    const t = Date.parse('2026-12-01T10:00:00Z');
    let now = t;
    const tMinute = Math.floor(t / MIN);
    const rows = [];
    for (let m = tMinute - 11; m < tMinute; m++) {
      const c = emptyCounters();
      for (let i = 0; i < 10; i++) addRequest(c, i < 3 ? 502 : 200, 5, 0);
      rows.push({ appId: shaky.id, minute: m, counters: c });
    }
    await recordMinutes(db, rows);
    const collector = testCollector(db, {
      now: () => now,
    });
    const alerts = () => db.selectFrom('app_alerts').selectAll().where('app_id', '=', shaky.id).execute();
    const events = () =>
      db
        .selectFrom('audit_events')
        .selectAll()
        .where('action', '=', 'app.alert')
        .where('target', '=', 'shaky')
        .execute();
    await collector.runNow();
    now += MIN;
    await collector.runNow(); // still over: the same episode, not told again
    const during = await alerts();
    assert.equal(during.length, 1);
    assert.equal(during[0]?.kind, '5xx');
    assert.equal(during[0]?.ended_at, null);
    assert.match(during[0]!.message, /more than 20% of its requests answered 5xx for 10 minutes/);
    assert.equal((await events()).length, 1);
    now += 12 * MIN; // no more errors: the episode ends
    await collector.runNow();
    const after = await alerts();
    assert.equal(after.length, 1);
    assert.equal(after[0]?.ended_at, new Date(now).toISOString());
  });
  test('a start on another boot of the host records a host reboot from the last heartbeat', async () => {
    const now = Date.parse('2027-01-01T00:00:00Z');
    await setMetricState(db, 'heartbeat', new Date(now - 300_000).toISOString());
    await setMetricState(db, 'boot_id', 'a-boot-before-this-one');
    const collector = testCollector(db, {
      now: () => now,
    });
    await collector.listen();
    await collector.stop();
    const reboot = (await incidentsSince(db, new Date(now - 600_000).toISOString())).find(
      (i) => i.kind === 'host-reboot',
    );
    assert.equal(reboot?.startedAt, new Date(now - 300_000).toISOString());
    assert.equal(reboot?.endedAt, new Date(now).toISOString());
  });
  test('restarts are counted from the store, a crash loop and repeated memory kills are alerts', async () => {
    const owner = await createUser(db, 'crash-owner', 'member');
    const crashy = await createApp(db, owner, 'crashy', LIMITS);
    const t = Date.parse('2027-02-01T10:00:00Z');
    let now = t;
    const iso = (ms: number) => new Date(ms).toISOString();
    const release = await db
      .insertInto('releases')
      .values({
        app_id: crashy.id,
        version: 1,
        deploy_id: null,
        slug_dir: '/nonexistent',
        process_types: '{}',
        runtime_env: '{}',
        description: 'test',
        created_by: owner.id,
        created_at: iso(t),
        error: null,
        release_command: null,
        health_path: null,
        phase_instance: null,
        phase_started_at: null,
        node_version: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('instances')
      .values({
        id: 'crashy-web-1',
        app_id: crashy.id,
        release_id: release.id,
        type: 'web',
        idx: 1,
        port: null,
        state: 'crashed',
        started_at: iso(t),
        ready_at: null,
        restarts: 1,
        exit_code: 137,
        exit_reason: 'killed: memory limit 512 MiB',
        next_start_at: null,
        stop_deadline: null,
        signalled_at: null,
      })
      .execute();
    const collector = testCollector(db, {
      now: () => now,
    });
    const told: string[] = [];
    collector.onAlert = async (appId, message) => {
      told.push(`${appId} ${message.split(':')[0]}`);
    };
    await collector.runNow(); // the count as it was: no crash seen yet
    for (const restarts of [2, 3, 4]) {
      await db.updateTable('instances').set({ restarts }).where('id', '=', 'crashy-web-1').execute();
      now += 30_000;
      await collector.runNow();
    }
    now += MIN;
    await collector.runNow();
    const [hour] = await appSeries(db, crashy.id, t, 'hour');
    assert.equal(hour?.counters.restarts, 3);
    assert.equal(hour?.counters.oom_kills, 3);
    const kinds = (await db.selectFrom('app_alerts').select('kind').where('app_id', '=', crashy.id).execute())
      .map((r) => r.kind)
      .sort();
    assert.deepEqual(kinds, ['crash-loop', 'memory']);
    // The owner is told (by mail) once per episode, however many passes see it.
    await collector.runNow();
    assert.deepEqual(told.sort(), [
      `${crashy.id} its processes restarted 3 times in 10 minutes`,
      `${crashy.id} the memory limit killed its processes 3 times today`,
    ]);
    assert.match(await collector.text(), /petri_app_restarts_total\{app="crashy"\} 3/);
  });
});

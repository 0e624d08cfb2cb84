// Per-app figures and the platform's recorded facts (issue 18): minute and hour rows of
// request counts, status classes, a latency histogram, probes and resources; memory and CPU
// per process type against the limits; incidents; alert episodes. The pure parts (a bucket's arithmetic, percentiles, availability from incidents)
// are here too, so the API, the collector (src/metrics/) and the tests share one definition.
import { sql } from 'kysely';
import type { Store } from '../store/db.js';
import type { MetricRowCounters, MetricTypeCounters } from '../store/schema.js';
import { recordAudit } from './audit.js';

/** Upper bounds of the latency buckets, in ms (l0..l10); l11 is everything slower. */
export const LATENCY_BOUNDS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const;
const LATENCY_KEYS = ['l0', 'l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'l9', 'l10', 'l11'] as const;

export type Counters = MetricRowCounters;
export type CounterName = keyof Counters;

export const COUNTER_NAMES: readonly CounterName[] = [
  'requests',
  's1xx',
  's2xx',
  's3xx',
  's4xx',
  's5xx',
  'bytes',
  ...LATENCY_KEYS,
  'probes_ok',
  'probes_failed',
  'wakes',
  'wake_ms',
  'cpu_ms',
  'memory_max',
  'restarts',
  'oom_kills',
];

/** Minute rows are kept 48 hours, hour rows 90 days. */
export const MINUTE_RETENTION = 48 * 60;
export const HOUR_RETENTION = 90 * 24;

export function emptyCounters(): Counters {
  const c = {} as Record<CounterName, number>;
  for (const name of COUNTER_NAMES) c[name] = 0;
  return c;
}

/** One request as the router logged it: status, total time (ms; -1 when it had none), bytes. */
export function addRequest(c: Counters, status: number, ms: number, bytes: number): void {
  c.requests++;
  const cls = Math.floor(status / 100);
  if (cls >= 1 && cls <= 5) c[`s${cls}xx` as 's1xx']++;
  if (bytes > 0) c.bytes += bytes;
  c[LATENCY_KEYS[latencyBucket(ms)] as 'l0']++;
}

export function latencyBucket(ms: number): number {
  const i = LATENCY_BOUNDS_MS.findIndex((bound) => ms <= bound);
  return i === -1 ? LATENCY_KEYS.length - 1 : i;
}

/** a += b: every counter adds up but memory_max, which is the higher of the two. */
export function addCounters(a: Counters, b: Counters): void {
  for (const name of COUNTER_NAMES)
    a[name] = name === 'memory_max' ? Math.max(a[name], b[name]) : a[name] + b[name];
}

/** The q-quantile (0.95) of a bucket's latencies: the upper bound of the bucket holding it,
 * in ms (null: no request; Infinity: slower than the last bound). */
export function latencyQuantile(c: Counters, q: number): number | null {
  const counts = LATENCY_KEYS.map((k) => c[k]);
  const total = counts.reduce((s, n) => s + n, 0);
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= rank) return LATENCY_BOUNDS_MS[i] ?? Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

export const unixMinute = (ms: number) => Math.floor(ms / 60_000);
export const unixHour = (ms: number) => Math.floor(ms / 3_600_000);

export interface MinuteRow {
  appId: number;
  minute: number;
  counters: Counters;
}

// ---- memory and CPU per process type -----------------------------------------------------

export type TypeCounters = MetricTypeCounters;
type TypeCounterName = keyof TypeCounters;
const TYPE_COUNTER_NAMES: readonly TypeCounterName[] = [
  'instances',
  'memory_max',
  'memory_limit_mib',
  'cpu_ms',
  'cpu_limit_ms',
];
/** These are the highest of the period; the others add up. */
const TYPE_MAXIMA: ReadonlySet<TypeCounterName> = new Set(['instances', 'memory_max', 'memory_limit_mib']);

/** Process types an app has rows for per minute or hour, named; the rest are summed as
 * OTHER_TYPE: at most 11 rows per app and period. A Procfile's own limit (build/procfile.ts,
 * which domain/ may not import), so only a change of Procfile within the hour reaches it. */
export const MAX_NAMED_TYPES = 10;
/** Not a process type name (those match PROCESS_TYPE), so it cannot be confused with one. */
export const OTHER_TYPE = '(other)';
const PROCESS_TYPE = /^[a-z][a-z0-9_-]{0,29}$/;

export function emptyTypeCounters(): TypeCounters {
  return { instances: 0, memory_max: 0, memory_limit_mib: 0, cpu_ms: 0, cpu_limit_ms: 0 };
}

/** a += b: CPU times add up; instances, memory and its limit are the highest of the two. */
export function addTypeCounters(a: TypeCounters, b: TypeCounters): void {
  for (const name of TYPE_COUNTER_NAMES)
    a[name] = TYPE_MAXIMA.has(name) ? Math.max(a[name], b[name]) : a[name] + b[name];
}

/** The row a process type is counted in, given the names the app has rows for in the period
 * (updated): its own name while the app has fewer than MAX_NAMED_TYPES, else OTHER_TYPE. A
 * name that is not a process type's (a store written by hand, an older release) is OTHER_TYPE
 * too: only such names reach a Prometheus label or a terminal. */
export function typeRowName(named: Set<string>, type: string): string {
  if (!PROCESS_TYPE.test(type)) return OTHER_TYPE;
  if (named.has(type)) return type;
  if (named.size >= MAX_NAMED_TYPES) return OTHER_TYPE;
  named.add(type);
  return type;
}

/** The process types each app has hour rows for in `hour`, (other) left out: the collector
 * starts an hour from them, so a restart within the hour keeps the bound. Through the
 * primary key, app by app. */
export async function typesOfHour(db: Store, hour: number): Promise<Map<string, Set<string>>> {
  // CROSS JOIN: SQLite keeps apps the outer loop (its planner would rather scan the hours).
  const rows = await db
    .selectFrom('apps')
    .crossJoin('metric_type_hours')
    .whereRef('metric_type_hours.app_id', '=', 'apps.id')
    .select(['apps.name as app', 'metric_type_hours.type as type'])
    .where('metric_type_hours.hour', '=', hour)
    .where('metric_type_hours.type', '!=', OTHER_TYPE)
    .execute();
  const map = new Map<string, Set<string>>();
  for (const r of rows) map.set(r.app, (map.get(r.app) ?? new Set()).add(r.type));
  return map;
}

export interface TypeMinuteRow {
  appId: number;
  minute: number;
  type: string;
  counters: TypeCounters;
}

export interface TypePoint {
  /** Unix minute or hour. */
  at: number;
  type: string;
  counters: TypeCounters;
}

/** An app's process type rows from `fromMs` on, by time then type: minutes or hours. */
export async function appTypeSeries(
  db: Store,
  appId: number,
  fromMs: number,
  resolution: 'minute' | 'hour',
): Promise<TypePoint[]> {
  const strip = (r: TypeCounters): TypeCounters => ({
    instances: r.instances,
    memory_max: r.memory_max,
    memory_limit_mib: r.memory_limit_mib,
    cpu_ms: r.cpu_ms,
    cpu_limit_ms: r.cpu_limit_ms,
  });
  if (resolution === 'minute') {
    const rows = await db
      .selectFrom('metric_type_minutes')
      .selectAll()
      .where('app_id', '=', appId)
      .where('minute', '>=', unixMinute(fromMs))
      .orderBy('minute')
      .orderBy('type')
      .execute();
    return rows.map((r) => ({ at: r.minute, type: r.type, counters: strip(r) }));
  }
  const rows = await db
    .selectFrom('metric_type_hours')
    .selectAll()
    .where('app_id', '=', appId)
    .where('hour', '>=', unixHour(fromMs))
    .orderBy('hour')
    .orderBy('type')
    .execute();
  return rows.map((r) => ({ at: r.hour, type: r.type, counters: strip(r) }));
}

export interface TypeFigures {
  type: string;
  totals: TypeCounters;
  /** By time, one per minute or hour measured. */
  points: { at: number; counters: TypeCounters }[];
}

/** Rows of any periods (store rows and the collector's unwritten minutes, already at the
 * resolution asked) rolled up per process type: one point per time, totals over the period.
 * web first, the others by name, OTHER_TYPE last. */
export function rollUpTypes(rows: readonly TypePoint[]): TypeFigures[] {
  const byType = new Map<string, Map<number, TypeCounters>>();
  for (const r of rows) {
    const points = byType.get(r.type) ?? new Map<number, TypeCounters>();
    const c = points.get(r.at) ?? emptyTypeCounters();
    addTypeCounters(c, r.counters);
    points.set(r.at, c);
    byType.set(r.type, points);
  }
  const rank = (t: string) => (t === 'web' ? 0 : t === OTHER_TYPE ? 2 : 1);
  return [...byType]
    .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([type, points]) => {
      const totals = emptyTypeCounters();
      for (const c of points.values()) addTypeCounters(totals, c);
      return {
        type,
        totals,
        points: [...points].sort((a, b) => a[0] - b[0]).map(([at, counters]) => ({ at, counters })),
      };
    });
}

/** Adds a pass's rows to their minutes and to their hours, the app's and its process
 * types', in one transaction: four statements per 1000 rows whatever the number of apps. */
export async function recordMinutes(
  db: Store,
  rows: readonly MinuteRow[],
  typeRows: readonly TypeMinuteRow[] = [],
): Promise<void> {
  if (rows.length === 0 && typeRows.length === 0) return;
  const update = (table: 'metric_minutes' | 'metric_hours') =>
    Object.fromEntries(
      COUNTER_NAMES.map((name) => [
        name,
        name === 'memory_max'
          ? sql`max(${sql.ref(`${table}.${name}`)}, ${sql.ref(`excluded.${name}`)})`
          : sql`${sql.ref(`${table}.${name}`)} + ${sql.ref(`excluded.${name}`)}`,
      ]),
    );
  const updateType = (table: 'metric_type_minutes' | 'metric_type_hours') =>
    Object.fromEntries(
      TYPE_COUNTER_NAMES.map((name) => [
        name,
        TYPE_MAXIMA.has(name)
          ? sql`max(${sql.ref(`${table}.${name}`)}, ${sql.ref(`excluded.${name}`)})`
          : sql`${sql.ref(`${table}.${name}`)} + ${sql.ref(`excluded.${name}`)}`,
      ]),
    );
  // One transaction for the whole pass: a failed write leaves nothing half counted, and the
  // collector keeps the minutes to try again. SQLite takes at most 32766 parameters per
  // statement; a row has 29 (a type row 8).
  await db.transaction().execute(async (tx) => {
    for (let i = 0; i < rows.length; i += 1000) {
      const chunk = rows.slice(i, i + 1000);
      await tx
        .insertInto('metric_minutes')
        .values(chunk.map((r) => ({ app_id: r.appId, minute: r.minute, ...r.counters })))
        .onConflict((oc) => oc.columns(['app_id', 'minute']).doUpdateSet(update('metric_minutes') as never))
        .execute();
      await tx
        .insertInto('metric_hours')
        .values(chunk.map((r) => ({ app_id: r.appId, hour: Math.floor(r.minute / 60), ...r.counters })))
        .onConflict((oc) => oc.columns(['app_id', 'hour']).doUpdateSet(update('metric_hours') as never))
        .execute();
    }
    for (let i = 0; i < typeRows.length; i += 1000) {
      const chunk = typeRows.slice(i, i + 1000);
      await tx
        .insertInto('metric_type_minutes')
        .values(chunk.map((r) => ({ app_id: r.appId, minute: r.minute, type: r.type, ...r.counters })))
        .onConflict((oc) =>
          oc.columns(['app_id', 'minute', 'type']).doUpdateSet(updateType('metric_type_minutes') as never),
        )
        .execute();
      await tx
        .insertInto('metric_type_hours')
        .values(
          chunk.map((r) => ({
            app_id: r.appId,
            hour: Math.floor(r.minute / 60),
            type: r.type,
            ...r.counters,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['app_id', 'hour', 'type']).doUpdateSet(updateType('metric_type_hours') as never),
        )
        .execute();
    }
  });
}

/** Drops minute rows past 48 hours and hour rows past 90 days. */
export async function pruneMetrics(db: Store, nowMs: number): Promise<void> {
  await db
    .deleteFrom('metric_minutes')
    .where('minute', '<', unixMinute(nowMs) - MINUTE_RETENTION)
    .execute();
  await db
    .deleteFrom('metric_hours')
    .where('hour', '<', unixHour(nowMs) - HOUR_RETENTION)
    .execute();
  // The process types' tables have no index on the time (space): the primary key, app by
  // app. Rows of destroyed apps went with them (ON DELETE CASCADE).
  const apps = db.selectFrom('apps').select('id');
  await db
    .deleteFrom('metric_type_minutes')
    .where('app_id', 'in', apps)
    .where('minute', '<', unixMinute(nowMs) - MINUTE_RETENTION)
    .execute();
  await db
    .deleteFrom('metric_type_hours')
    .where('app_id', 'in', apps)
    .where('hour', '<', unixHour(nowMs) - HOUR_RETENTION)
    .execute();
}

export interface SeriesPoint {
  /** Unix minute or hour of the row, by the resolution asked. */
  at: number;
  counters: Counters;
}

/** An app's rows from `fromMs` on: minutes (past 48 hours: none) or hours. */
export async function appSeries(
  db: Store,
  appId: number,
  fromMs: number,
  resolution: 'minute' | 'hour',
): Promise<SeriesPoint[]> {
  const strip = (row: Record<string, unknown>): Counters => {
    const c = emptyCounters();
    for (const name of COUNTER_NAMES) c[name] = Number(row[name] ?? 0);
    return c;
  };
  if (resolution === 'minute') {
    const rows = await db
      .selectFrom('metric_minutes')
      .selectAll()
      .where('app_id', '=', appId)
      .where('minute', '>=', unixMinute(fromMs))
      .orderBy('minute')
      .execute();
    return rows.map((r) => ({ at: r.minute, counters: strip(r as never) }));
  }
  const rows = await db
    .selectFrom('metric_hours')
    .selectAll()
    .where('app_id', '=', appId)
    .where('hour', '>=', unixHour(fromMs))
    .orderBy('hour')
    .execute();
  return rows.map((r) => ({ at: r.hour, counters: strip(r as never) }));
}

/** Requests per app since a time: whole hours from the hour rows, the partial first hour
 * from the minute rows (two queries, whatever the number of apps). Apps with none: 0. */
export async function requestsSince(
  db: Store,
  appIds: readonly number[],
  sinceIso: string,
): Promise<Map<number, number>> {
  const result = new Map<number, number>(appIds.map((id) => [id, 0]));
  if (appIds.length === 0) return result;
  const since = Date.parse(sinceIso);
  const fromMinute = unixMinute(since);
  const firstWholeHour = Math.ceil(fromMinute / 60);
  const add = (rows: { app_id: number; n: number | string | bigint | null }[]) => {
    for (const r of rows) result.set(r.app_id, (result.get(r.app_id) ?? 0) + Number(r.n ?? 0));
  };
  for (let i = 0; i < appIds.length; i += 500) {
    const ids = appIds.slice(i, i + 500);
    add(
      await db
        .selectFrom('metric_hours')
        .select(['app_id', (eb) => eb.fn.sum<number>('requests').as('n')])
        .where('app_id', 'in', ids)
        .where('hour', '>=', firstWholeHour)
        .groupBy('app_id')
        .execute(),
    );
    add(
      await db
        .selectFrom('metric_minutes')
        .select(['app_id', (eb) => eb.fn.sum<number>('requests').as('n')])
        .where('app_id', 'in', ids)
        .where('minute', '>=', fromMinute)
        .where('minute', '<', firstWholeHour * 60)
        .groupBy('app_id')
        .execute(),
    );
  }
  return result;
}

/** App ids by name, for the names a pass saw (one query). */
export async function appIdsByName(db: Store, names: readonly string[]): Promise<Map<string, number>> {
  const map = new Map<string, number>();
  for (let i = 0; i < names.length; i += 500) {
    const rows = await db
      .selectFrom('apps')
      .select(['id', 'name'])
      .where('name', 'in', names.slice(i, i + 500))
      .execute();
    for (const r of rows) map.set(r.name, r.id);
  }
  return map;
}

export interface MetricsInstance {
  appId: number;
  app: string;
  instanceId: string;
  state: string;
  /** Crashes in a row (the supervisor's count: back to 1 after a stable run). */
  restarts: number;
  /** Why it last ended, as the supervisor wrote it ('killed: memory limit ...'). */
  exitReason: string | null;
  healthPath: string | null;
  /** Its process type (web, worker ...). */
  type: string;
  /** The app's limits per instance. */
  memoryMiB: number;
  cpus: number;
  /** The app is put to sleep (its instances may still be up, about to stop). */
  sleeping: boolean;
}

/** Every instance with its app, type, state, restarts, the app's limits and its release's
 * health path (one query). */
export async function instancesForMetrics(db: Store): Promise<MetricsInstance[]> {
  const rows = await db
    .selectFrom('instances')
    .innerJoin('apps', 'apps.id', 'instances.app_id')
    .innerJoin('releases', 'releases.id', 'instances.release_id')
    .select([
      'apps.id as appId',
      'apps.name as app',
      'instances.id as instanceId',
      'instances.state as state',
      'instances.restarts as restarts',
      'instances.exit_reason as exitReason',
      'releases.health_path as healthPath',
      'instances.type as type',
      'apps.memory_mib as memoryMiB',
      'apps.cpus as cpus',
      'apps.sleeping_since as sleepingSince',
    ])
    .execute();
  return rows.map((r) => ({
    appId: r.appId,
    app: r.app,
    instanceId: r.instanceId,
    state: r.state,
    restarts: r.restarts,
    exitReason: r.exitReason,
    // Only the web process answers HTTP; a worker's health path means nothing to the router.
    healthPath: r.type === 'web' ? r.healthPath : null,
    type: r.type,
    memoryMiB: r.memoryMiB,
    cpus: r.cpus,
    sleeping: r.sleepingSince !== null,
  }));
}

/** Every app's name (the collector drops the series of the others). */
export async function allAppNames(db: Store): Promise<string[]> {
  return (await db.selectFrom('apps').select('name').execute()).map((r) => r.name);
}

/** Egress attempts per app, allowed and refused (one query). */
export async function egressTotals(db: Store): Promise<{ app: string; allowed: boolean; count: number }[]> {
  const rows = await db
    .selectFrom('egress_attempts')
    .innerJoin('apps', 'apps.id', 'egress_attempts.app_id')
    .select([
      'apps.name as app',
      'egress_attempts.allowed as allowed',
      (eb) => eb.fn.sum<number>('egress_attempts.count').as('n'),
    ])
    .groupBy(['apps.name', 'egress_attempts.allowed'])
    .execute();
  return rows.map((r) => ({ app: r.app, allowed: r.allowed === 1, count: Number(r.n ?? 0) }));
}

export interface RecentWake {
  app: string;
  wokeAt: string;
  /** When its first instance started after the wake was ready; null: none yet. */
  readyAt: string | null;
  /** Still awake (not asleep again). */
  awake: boolean;
}

/** Apps woken since a time, with when their first instance after it was ready (one query). */
export async function wakesSince(db: Store, sinceIso: string): Promise<RecentWake[]> {
  const rows = await db
    .selectFrom('apps')
    .leftJoin('instances', (join) =>
      join.onRef('instances.app_id', '=', 'apps.id').onRef('instances.ready_at', '>=', 'apps.woke_at'),
    )
    .select([
      'apps.name as app',
      'apps.woke_at as wokeAt',
      'apps.sleeping_since as sleepingSince',
      (eb) => eb.fn.min<string | null>('instances.ready_at').as('readyAt'),
    ])
    .where('apps.woke_at', '>=', sinceIso)
    .groupBy('apps.id')
    .execute();
  return rows.map((r) => ({
    app: r.app,
    wokeAt: r.wokeAt as string,
    readyAt: r.readyAt ?? null,
    awake: r.sleepingSince === null,
  }));
}

/** The add-on engines some ready add-on uses: their servers must answer (one query). */
export async function addonTypesInUse(db: Store): Promise<Set<string>> {
  const rows = await db
    .selectFrom('addons')
    .select('type')
    .distinct()
    .where('status', '=', 'ready')
    .execute();
  return new Set(rows.map((r) => r.type));
}

/** Messages each app handed to the mail relay in [from, to), refused ones left out (one query). */
export async function mailSentBetween(
  db: Store,
  fromIso: string,
  toIso: string,
): Promise<{ app: string; n: number }[]> {
  const rows = await db
    .selectFrom('mail_messages')
    .innerJoin('apps', 'apps.id', 'mail_messages.app_id')
    .select(['apps.name as app', (eb) => eb.fn.countAll<number>().as('n')])
    .where('mail_messages.created_at', '>=', fromIso)
    .where('mail_messages.created_at', '<', toIso)
    .where('mail_messages.status', '!=', 'refused')
    .groupBy('apps.name')
    .execute();
  return rows.map((r) => ({ app: r.app, n: Number(r.n) }));
}

/** Messages one app handed to the mail relay since a time, refused ones left out. */
export async function appMailSent(db: Store, appId: number, sinceIso: string): Promise<number> {
  const row = await db
    .selectFrom('mail_messages')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('app_id', '=', appId)
    .where('created_at', '>=', sinceIso)
    .where('status', '!=', 'refused')
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Apps by state, for the platform gauges (one query). */
export async function appsByState(db: Store): Promise<{ sleeping: number; awake: number; total: number }> {
  const row = await db
    .selectFrom('apps')
    .select([
      (eb) => eb.fn.countAll<number>().as('total'),
      (eb) => eb.fn.count<number>('sleeping_since').as('sleeping'),
    ])
    .executeTakeFirst();
  const total = Number(row?.total ?? 0);
  const sleeping = Number(row?.sleeping ?? 0);
  return { total, sleeping, awake: total - sleeping };
}

// ---- incidents and the heartbeat -------------------------------------------------------

export interface Incident {
  id: number;
  kind: string;
  subject: string;
  startedAt: string;
  endedAt: string | null;
}

export async function getMetricState(db: Store, key: string): Promise<string | undefined> {
  const row = await db.selectFrom('metric_state').select('value').where('key', '=', key).executeTakeFirst();
  return row?.value;
}

export async function setMetricState(db: Store, key: string, value: string): Promise<void> {
  await db
    .insertInto('metric_state')
    .values({ key, value })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
    .execute();
}

/** Opens an incident unless one of that kind and subject is open already. */
export async function openIncident(db: Store, kind: string, subject: string, atIso: string): Promise<void> {
  const open = await db
    .selectFrom('incidents')
    .select('id')
    .where('kind', '=', kind)
    .where('subject', '=', subject)
    .where('ended_at', 'is', null)
    .executeTakeFirst();
  if (open) return;
  await db.insertInto('incidents').values({ kind, subject, started_at: atIso, ended_at: null }).execute();
}

export async function closeIncident(db: Store, kind: string, subject: string, atIso: string): Promise<void> {
  await db
    .updateTable('incidents')
    .set({ ended_at: atIso })
    .where('kind', '=', kind)
    .where('subject', '=', subject)
    .where('ended_at', 'is', null)
    .execute();
}

/** A closed incident in one statement: what happened while nobody was watching (the control
 * plane down between its last heartbeat and its start). */
export async function recordIncident(
  db: Store,
  kind: string,
  subject: string,
  startedAt: string,
  endedAt: string,
): Promise<void> {
  await db
    .insertInto('incidents')
    .values({ kind, subject, started_at: startedAt, ended_at: endedAt })
    .execute();
}

/** Incidents that overlap [sinceIso, now], newest first. */
export async function incidentsSince(db: Store, sinceIso: string): Promise<Incident[]> {
  const rows = await db
    .selectFrom('incidents')
    .selectAll()
    .where((eb) => eb.or([eb('ended_at', 'is', null), eb('ended_at', '>=', sinceIso)]))
    .orderBy('started_at', 'desc')
    .limit(500)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    subject: r.subject,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  }));
}

/** The share of [from, to] not covered by any of the intervals (overlaps count once); 1 for
 * an empty window. Open intervals (no end) last until `to`. */
export function availability(
  intervals: readonly { startedAt: string; endedAt: string | null }[],
  fromMs: number,
  toMs: number,
): number {
  if (toMs <= fromMs) return 1;
  const clipped = intervals
    .map((i) => [
      Math.max(fromMs, Date.parse(i.startedAt)),
      Math.min(toMs, i.endedAt === null ? toMs : Date.parse(i.endedAt)),
    ])
    .filter(([s, e]) => (e as number) > (s as number))
    .sort((a, b) => (a[0] as number) - (b[0] as number)) as [number, number][];
  let down = 0;
  let curStart = -1;
  let curEnd = -1;
  for (const [s, e] of clipped) {
    if (s > curEnd) {
      if (curEnd > curStart) down += curEnd - curStart;
      curStart = s;
      curEnd = e;
    } else curEnd = Math.max(curEnd, e);
  }
  if (curEnd > curStart) down += curEnd - curStart;
  return 1 - down / (toMs - fromMs);
}

/** Probe results per app since a time, from the hour rows (one query): apps never probed in
 * the window are left out (no fact, no figure). */
export async function probeTotals(
  db: Store,
  sinceMs: number,
  appIds?: readonly number[],
): Promise<Map<number, { ok: number; failed: number }>> {
  let q = db
    .selectFrom('metric_hours')
    .select([
      'app_id',
      (eb) => eb.fn.sum<number>('probes_ok').as('ok'),
      (eb) => eb.fn.sum<number>('probes_failed').as('failed'),
    ])
    .where('hour', '>=', unixHour(sinceMs))
    .groupBy('app_id');
  if (appIds !== undefined) {
    if (appIds.length === 0) return new Map();
    q = q.where('app_id', 'in', appIds);
  }
  const map = new Map<number, { ok: number; failed: number }>();
  for (const r of await q.execute()) {
    const ok = Number(r.ok ?? 0);
    const failed = Number(r.failed ?? 0);
    if (ok + failed > 0) map.set(r.app_id, { ok, failed });
  }
  return map;
}

/** Public apps (audience public), the ones the status page may name. */
export async function publicApps(db: Store): Promise<{ id: number; name: string }[]> {
  return db
    .selectFrom('apps')
    .select(['id', 'name'])
    .where('audience', '=', 'public')
    .orderBy('name')
    .limit(1000)
    .execute();
}

// ---- alerts ----------------------------------------------------------------------------

export interface Alert {
  kind: string;
  message: string;
  startedAt: string;
  endedAt: string | null;
}

/** Apps whose 5xx share over [fromMinute, now] exceeds `share`, with at least `minRequests`
 * requests, and whose every minute in the window had 5xx over that share (one query). */
export async function appsOver5xx(
  db: Store,
  fromMinute: number,
  share: number,
  minRequests: number,
  minutes: number,
): Promise<number[]> {
  const rows = await db
    .selectFrom('metric_minutes')
    .select([
      'app_id',
      (eb) => eb.fn.sum<number>('requests').as('requests'),
      (eb) => eb.fn.sum<number>('s5xx').as('errors'),
      (eb) => eb.fn.countAll<number>().as('minutes'),
      (eb) => eb.fn.min<number>('minute').as('first'),
    ])
    .where('minute', '>=', fromMinute)
    .where('requests', '>', 0)
    .groupBy('app_id')
    .execute();
  return rows
    .filter(
      (r) =>
        Number(r.requests) >= minRequests &&
        Number(r.errors) / Number(r.requests) > share &&
        Number(r.minutes) >= 1 &&
        Number(r.first) <= fromMinute + 1 &&
        minutes > 0,
    )
    .map((r) => r.app_id);
}

/** Open alert episodes of every app (one query): app id → kinds. */
export async function openAlerts(db: Store): Promise<Map<number, Set<string>>> {
  const rows = await db
    .selectFrom('app_alerts')
    .select(['app_id', 'kind'])
    .where('ended_at', 'is', null)
    .execute();
  const map = new Map<number, Set<string>>();
  for (const r of rows) {
    const kinds = map.get(r.app_id) ?? new Set<string>();
    kinds.add(r.kind);
    map.set(r.app_id, kinds);
  }
  return map;
}

/** The messages of the app's alert episodes still open, oldest first: the Petri-Warning of
 * every answer about the app carries them until the condition ends. */
export async function openAlertMessages(db: Store, appId: number): Promise<string[]> {
  const rows = await db
    .selectFrom('app_alerts')
    .select(['message'])
    .where('app_id', '=', appId)
    .where('ended_at', 'is', null)
    .orderBy('started_at')
    .execute();
  return rows.map((r) => r.message);
}

/** Starts an alert episode: its row and its audit event (app.alert, to the app's team) in
 * one transaction. */
export async function startAlert(
  db: Store,
  appId: number,
  kind: string,
  message: string,
  atIso: string,
): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const app = await tx
      .selectFrom('apps')
      .select(['name', 'team_id'])
      .where('id', '=', appId)
      .executeTakeFirst();
    if (!app) return;
    await tx
      .insertInto('app_alerts')
      .values({ app_id: appId, kind, message, started_at: atIso, ended_at: null })
      .execute();
    await recordAudit(
      tx,
      { name: 'petri' },
      'app.alert',
      app.name,
      { kind, message },
      { app: app.name, teamId: app.team_id },
    );
  });
}

export async function endAlert(db: Store, appId: number, kind: string, atIso: string): Promise<void> {
  await db
    .updateTable('app_alerts')
    .set({ ended_at: atIso })
    .where('app_id', '=', appId)
    .where('kind', '=', kind)
    .where('ended_at', 'is', null)
    .execute();
}

/** An app's alerts: open ones, and those that ended in the last 7 days. */
export async function appAlerts(db: Store, appId: number, nowMs: number): Promise<Alert[]> {
  const since = new Date(nowMs - 7 * 86_400_000).toISOString();
  const rows = await db
    .selectFrom('app_alerts')
    .selectAll()
    .where('app_id', '=', appId)
    .where((eb) => eb.or([eb('ended_at', 'is', null), eb('ended_at', '>=', since)]))
    .orderBy('started_at', 'desc')
    .limit(50)
    .execute();
  return rows.map((r) => ({
    kind: r.kind,
    message: r.message,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  }));
}

// How an app is doing (issue 18): GET /v1/apps/:name/metrics (its figures over 1h .. 90d,
// minutes up to 48 hours, hours beyond) and GET /metrics, the Prometheus text of the control
// plane and of every app (admins and auditors: a bot with the auditor role scrapes it).
import { AppMetrics, AppNameParams, errorResponses, MetricsQuery } from '../../contract/index.js';
import {
  addCounters,
  appAlerts,
  appMailSent,
  appSeries,
  appTypeSeries,
  type Counters,
  emptyCounters,
  latencyQuantile,
  probeTotals,
  rollUpTypes,
  type TypeCounters,
} from '../../domain/metrics.js';
import { UserError } from '../../lib/errors.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MAX_SINCE_MS = 90 * UNIT_MS.d;

/** '1h', '24h', '7d', '30m' → milliseconds; anything else is refused with what to send. */
export function parseSince(text: string): number {
  const match = /^([1-9][0-9]{0,4})([mhd])$/.exec(text);
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : Number.NaN;
  if (!(ms <= MAX_SINCE_MS)) {
    throw new UserError(
      'bad_request',
      `since must be a number and a unit (m minutes, h hours, d days) of at most 90d, like 1h, 24h or 7d; got '${text}'`,
    );
  }
  return ms;
}

/** Counts every API request by route (its pattern, never the raw URL: bounded labels). */
export function registerApiMetrics(api: Api, ctx: ApiContext): void {
  const metrics = ctx.metrics;
  if (!metrics) return;
  api.addHook('onResponse', async (req, reply) => {
    metrics.observeApi(
      req.routeOptions.url ?? '(no route)',
      req.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });
}

export function metricsRoutes(api: Api, ctx: ApiContext): void {
  const { db } = ctx;

  api.get(
    '/metrics',
    {
      config: { access: 'platform.read' },
      schema: {
        summary: 'Prometheus metrics of the control plane and of every app (admins and auditors)',
        response: {
          200: {
            description: 'Prometheus text format',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          ...errorResponses,
        },
      },
    },
    async (_req, reply) => {
      if (!ctx.metrics) throw new UserError('unavailable', 'metrics are not collected by this server');
      return reply.type(ctx.metrics.contentType).send(await ctx.metrics.text());
    },
  );

  api.get(
    '/v1/apps/:name/metrics',
    {
      config: { access: 'app.read' },
      schema: {
        summary:
          "The app's requests, status classes, latency, probes, wakes, memory, CPU (per process type too, against the limits) and restarts over a period (since=1h|24h|7d)",
        params: AppNameParams,
        querystring: MetricsQuery,
        response: { 200: AppMetrics, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const now = Date.now();
      const sinceMs = parseSince(req.query.since ?? '1h');
      const from = now - sinceMs;
      const resolution: 'minute' | 'hour' = sinceMs <= 48 * UNIT_MS.h ? 'minute' : 'hour';
      const rows = await appSeries(db, app.id, from, resolution);
      // What the collector counted but has not written yet (the current minute).
      const byAt = new Map(rows.map((r) => [r.at, r.counters]));
      for (const { minute, counters } of ctx.metrics?.live(app.name) ?? []) {
        const at = resolution === 'minute' ? minute : Math.floor(minute / 60);
        const c = byAt.get(at) ?? emptyCounters();
        addCounters(c, counters);
        byAt.set(at, c);
      }
      const unit = resolution === 'minute' ? UNIT_MS.m : UNIT_MS.h;
      const points = [...byAt].sort((a, b) => a[0] - b[0]);
      const totals = emptyCounters();
      for (const [, c] of points) addCounters(totals, c);
      const typeRows = await appTypeSeries(db, app.id, from, resolution);
      for (const { minute, type, counters } of ctx.metrics?.liveTypes(app.name) ?? [])
        typeRows.push({ at: resolution === 'minute' ? minute : Math.floor(minute / 60), type, counters });
      const iso = (at: number) => new Date(at * unit).toISOString();
      const availability = await appAvailability(ctx, app.id, now);
      return {
        app: app.name,
        since: new Date(from).toISOString(),
        resolution,
        totals: figures(totals),
        mailSent: await appMailSent(db, app.id, new Date(from).toISOString()),
        points: points.map(([at, c]) => ({ at: iso(at), ...figures(c) })),
        limits: { memoryMiB: app.memory_mib, cpus: app.cpus },
        processTypes: rollUpTypes(typeRows).map((t) => ({
          type: t.type,
          ...typeFigures(t.totals),
          points: t.points.map((p) => ({ at: iso(p.at), ...typeFigures(p.counters) })),
        })),
        availability,
        alerts: await appAlerts(db, app.id, now),
      };
    },
  );
}

async function appAvailability(ctx: ApiContext, appId: number, now: number) {
  const share = async (days: number) => {
    const t = (await probeTotals(ctx.db, now - days * UNIT_MS.d, [appId])).get(appId);
    return t ? t.ok / (t.ok + t.failed) : null;
  };
  return { h24: await share(1), d7: await share(7), d30: await share(30) };
}

function typeFigures(c: TypeCounters) {
  return {
    instances: c.instances,
    memoryMaxBytes: c.memory_max,
    memoryLimitMiB: c.memory_limit_mib,
    cpuMs: c.cpu_ms,
    cpuLimitMs: c.cpu_limit_ms,
  };
}

function figures(c: Counters) {
  const finite = (v: number | null) => (v === null ? null : Number.isFinite(v) ? v : 1e9);
  return {
    requests: c.requests,
    s2xx: c.s2xx + c.s1xx,
    s3xx: c.s3xx,
    s4xx: c.s4xx,
    s5xx: c.s5xx,
    bytes: c.bytes,
    p50Ms: finite(latencyQuantile(c, 0.5)),
    p95Ms: finite(latencyQuantile(c, 0.95)),
    p99Ms: finite(latencyQuantile(c, 0.99)),
    probesOk: c.probes_ok,
    probesFailed: c.probes_failed,
    wakes: c.wakes,
    wakeMs: c.wake_ms,
    cpuMs: c.cpu_ms,
    memoryMaxBytes: c.memory_max,
    restarts: c.restarts,
    oomKills: c.oom_kills,
  };
}

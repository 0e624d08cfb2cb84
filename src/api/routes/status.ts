// The public status (issue 18): GET /status on the API host (a page, no sign-in, nothing
// secret) and GET /v1/status (the same as JSON, for `petri status`): the promise ("one 9")
// beside what was measured for the platform, its incidents, and public apps' availability.
import { errorResponses, PlatformStatus } from '../../contract/index.js';
import {
  availability,
  getMetricState,
  incidentsSince,
  probeTotals,
  publicApps,
} from '../../domain/metrics.js';
import { escapeHtml } from '../../lib/html.js';
import type { Store } from '../../store/db.js';
import type { Api, ApiContext } from '../context.js';

export const PROMISE = 'One 9: Petri aims for 90% availability and makes no stronger promise.';
const DAY_MS = 86_400_000;
/** What makes the platform unavailable: the control plane (its API) or the router down, or
 * the host rebooting. */
const PLATFORM_KINDS = new Set(['control-plane', 'router', 'host-reboot']);

export function statusRoutes(api: Api, ctx: ApiContext): void {
  api.get(
    '/v1/status',
    {
      config: { access: 'public' },
      schema: {
        summary: "The platform's promise, its measured availability, incidents and public apps' availability",
        security: [],
        response: { 200: PlatformStatus, ...errorResponses },
      },
    },
    async () => platformStatus(ctx.db, Date.now()),
  );

  api.get('/status', { config: { access: 'public' }, schema: { hide: true } }, async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(statusPage(await platformStatus(ctx.db, Date.now()))),
  );
}

export async function platformStatus(db: Store, now: number): Promise<PlatformStatus> {
  const since = await getMetricState(db, 'since');
  const sinceMs = since === undefined ? now : Date.parse(since);
  const incidents = await incidentsSince(db, new Date(now - 30 * DAY_MS).toISOString());
  const platformDown = incidents.filter((i) => PLATFORM_KINDS.has(i.kind));
  // Only what was measured: a window reaching before the first fact starts at it.
  const over = (days: number) => {
    const from = Math.max(now - days * DAY_MS, sinceMs);
    return from >= now ? null : availability(platformDown, from, now);
  };
  const apps = await publicApps(db);
  const ids = apps.map((a) => a.id);
  const [h24, d7, d30] = await Promise.all([1, 7, 30].map((d) => probeTotals(db, now - d * DAY_MS, ids)));
  const share = (m: typeof h24, id: number) => {
    const t = m?.get(id);
    return t ? t.ok / (t.ok + t.failed) : null;
  };
  return {
    promise: PROMISE,
    target: 0.9,
    measuredSince: since ?? null,
    platform: { h24: over(1), d7: over(7), d30: over(30) },
    incidents: incidents.map((i) => ({
      kind: i.kind,
      subject: i.subject,
      startedAt: i.startedAt,
      endedAt: i.endedAt,
      durationSeconds: Math.round(
        ((i.endedAt ? Date.parse(i.endedAt) : now) - Date.parse(i.startedAt)) / 1000,
      ),
    })),
    apps: apps
      .map((a) => ({
        name: a.name,
        availability: { h24: share(h24, a.id), d7: share(d7, a.id), d30: share(d30, a.id) },
      }))
      .filter((a) => a.availability.d30 !== null),
  };
}

const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(v >= 0.9995 ? 1 : 2)}%`);

function statusPage(s: PlatformStatus): string {
  const row = (cells: string[]) => `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
  const incidents = s.incidents.length
    ? s.incidents
        .map((i) =>
          row([
            i.kind,
            i.subject,
            i.startedAt,
            i.endedAt ?? 'ongoing',
            `${Math.floor(i.durationSeconds / 60)} min ${i.durationSeconds % 60} s`,
          ]),
        )
        .join('\n')
    : '<tr><td colspan="5">No incident in the last 30 days.</td></tr>';
  const apps = s.apps.length
    ? s.apps
        .map((a) => row([a.name, pct(a.availability.h24), pct(a.availability.d7), pct(a.availability.d30)]))
        .join('\n')
    : '<tr><td colspan="4">No public app measured yet.</td></tr>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Petri status</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd}</style>
</head><body>
<h1>Petri status</h1>
<p><strong>${escapeHtml(s.promise)}</strong></p>
<h2>Platform availability (router and control plane)</h2>
<table><tr><th>last 24 h</th><th>7 days</th><th>30 days</th></tr>
<tr><td>${pct(s.platform.h24)}</td><td>${pct(s.platform.d7)}</td><td>${pct(s.platform.d30)}</td></tr></table>
<p>Measured since ${escapeHtml(s.measuredSince ?? 'now')}.</p>
<h2>Incidents</h2>
<table><tr><th>what</th><th></th><th>start</th><th>end</th><th>duration</th></tr>
${incidents}</table>
<h2>Public apps</h2>
<table><tr><th>app</th><th>24 h</th><th>7 d</th><th>30 d</th></tr>
${apps}</table>
</body></html>
`;
}

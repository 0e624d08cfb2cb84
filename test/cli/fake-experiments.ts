// The fake API's experiments (see fake-api.ts, which routes here): `petri apps set`'s
// experiment keys with the server's rules for the data class (personal needs privacy and
// retention), `petri apps approve`, the inventory of the canned apps (JSON and CSV) and a
// canned report. Answers go through fake-api's send and fail, so they are checked against
// the API contract like every other.
import type http from 'node:http';
import type { App, ExperimentUpdate, InventoryRow, Report } from '../../src/client/index.js';
import type { Reply } from './fake-teams.js';

const CLASSES = ['none', 'anonymous', 'personal', 'sensitive'] as const;

/** Applies create's or set's description fields to the app; an error message, or undefined. */
export function describeFake(app: App, update: ExperimentUpdate): string | undefined {
  const e = { ...app.experiment };
  if (update.description !== undefined) e.description = update.description;
  if (update.data !== undefined) {
    const data = update.data.toLowerCase() as App['experiment']['dataClass'];
    if (!CLASSES.includes(data)) return `data must be one of ${CLASSES.join(', ')}, got '${update.data}'`;
    if (data !== e.dataClass) e.approvedClass = null;
    e.dataClass = data;
  }
  if (update.privacy !== undefined) e.privacyNote = update.privacy || null;
  if (update.retention !== undefined) {
    const days = /^(\d+)d?$/.exec(update.retention ?? '');
    if (!days)
      return `retention must be a duration in days from 1 day to 10 years, like 30d, 12w, 6m or 1y, got '${update.retention}'`;
    e.retentionDays = Number(days[1]);
  }
  if (update.stage !== undefined) e.stage = update.stage as App['experiment']['stage'];
  if (update.redirect !== undefined) e.redirectUrl = update.redirect;
  if (
    (e.dataClass === 'personal' || e.dataClass === 'sensitive') &&
    (!e.privacyNote || e.retentionDays === null)
  )
    return `data=${e.dataClass} needs a privacy note and a retention`;
  e.awaitsReview = e.dataClass === 'sensitive' && e.approvedClass !== 'sensitive';
  app.experiment = e;
  return undefined;
}

/** PATCH /v1/apps/:name/experiment and POST /v1/apps/:name/approve. */
export function handleExperiment(
  app: App,
  method: string | undefined,
  sub: string,
  body: Buffer,
  res: http.ServerResponse,
  { send, fail }: Reply,
): unknown {
  if (sub === 'experiment' && method === 'PATCH') {
    const error = describeFake(app, JSON.parse(body.toString()) as ExperimentUpdate);
    if (error) return fail(res, 400, 'bad_request', error);
    return send(res, 200, app);
  }
  if (sub === 'approve' && method === 'POST') {
    const e = app.experiment;
    if (e.dataClass !== 'personal' && e.dataClass !== 'sensitive')
      return fail(
        res,
        409,
        'conflict',
        `'${app.name}' declares data=${e.dataClass}: only personal or sensitive data is reviewed`,
      );
    app.experiment = { ...e, approvedClass: e.dataClass, awaitsReview: false };
    return send(res, 200, app);
  }
  return fail(res, 404, 'not_found', `no route ${sub}`);
}

/** The inventory row of a canned app: egress, add-ons and use made up, fixed for golden files. */
export function inventoryRow(app: App): InventoryRow {
  const e = app.experiment;
  const busy = app.name === 'alpha';
  return {
    name: app.name,
    url: app.url,
    team: app.team,
    owner: app.owner,
    description: e.description,
    stage: e.stage,
    dataClass: e.dataClass,
    privacyNote: e.privacyNote,
    retentionDays: e.retentionDays,
    approved: e.approvedClass !== null && e.approvedClass === e.dataClass,
    audience: null,
    egressDeclared: busy ? ['api.stripe.com:443'] : [],
    egressReached: busy ? ['api.stripe.com:443', 'example.org:443'] : [],
    egressRefused: busy ? 2 : 0,
    addons: busy ? [{ name: 'db', type: 'postgres', sizeBytes: 8_388_608 }] : [],
    limits: { memoryMiB: app.limits.memoryMiB, cpus: app.limits.cpus },
    processes: app.processes.filter((p) => p.state === 'up').length,
    memoryBytes: busy ? 50_331_648 : null,
    cpuSeconds: busy ? 12.5 : null,
    requests7d: 0,
    requests24h: new Array(24).fill(0),
    mail30d: { sent: 0, bounced: 0, refused: 0 },
    lastRequestAt: busy ? '2025-01-05T10:00:00.000Z' : null,
    createdAt: app.createdAt,
    lastDeployAt: app.release ? '2025-01-02T03:05:00.000Z' : null,
    expiresAt: e.expiresAt,
    expiredAt: e.expiredAt,
    stack: app.release ? 'node 22.11.0' : null,
  };
}

/** GET /v1/inventory (filters data and stage, as the server's) and GET /v1/report. */
export function handlePlatform(
  apps: App[],
  resource: string,
  query: URLSearchParams,
  res: http.ServerResponse,
  { send, fail }: Reply,
): unknown {
  if (resource === 'report') {
    const report: Report = {
      since: '2024-01-05T00:00:00.000Z',
      until: '2025-01-05T00:00:00.000Z',
      created: 120,
      deployed: 97,
      active: 41,
      graduated: 3,
      graduating: 1,
      expired: 64,
      archived: 52,
      destroyed: 9,
      medianToFirstDeploySeconds: 1260,
      personalData: 14,
      sensitiveData: 2,
      outsideHosts: 23,
    };
    return send(res, 200, {
      ...report,
      since: query.get('since') === '30d' ? '2024-12-06T00:00:00.000Z' : report.since,
    });
  }
  const data = query.get('data');
  if (data !== null && !(CLASSES as readonly string[]).includes(data))
    return fail(res, 400, 'bad_request', `data must be one of ${CLASSES.join(', ')}, got '${data}'`);
  const rows = apps
    .map(inventoryRow)
    .filter((r) => data === null || r.dataClass === data)
    .filter((r) => query.get('stage') === null || r.stage === query.get('stage'));
  if (query.get('format') === 'csv') {
    res.writeHead(200, { 'content-type': 'text/csv; charset=utf-8' });
    res.end(`name,team\n${rows.map((r) => `${r.name},${r.team}`).join('\n')}\n`);
    return;
  }
  return send(res, 200, { apps: rows });
}

// How the platform is doing over a period (`petri report`, admins): experiments created,
// deployed, active, graduated, expired, archived and destroyed; the median time from
// `petri apps create` to the first deploy that served; how many hold personal data and how
// many talk to outside hosts. Four queries whatever the number of apps.
//
// Destroyed apps leave no row: they are counted from the audit trail (an app.create and its
// app.destroy in the period); the figures that need a row (deployed, active, the median)
// are of the experiments still on record, archived ones included.
import type { Store } from '../store/db.js';
import { parseAuditTime } from './audit.js';

export interface PlatformReport {
  since: string;
  until: string;
  created: number;
  deployed: number;
  active: number;
  graduated: number;
  graduating: number;
  expired: number;
  archived: number;
  destroyed: number;
  medianToFirstDeploySeconds: number | null;
  personalData: number;
  sensitiveData: number;
  outsideHosts: number;
}

export async function platformReport(
  db: Store,
  sinceText = '365d',
  nowMs = Date.now(),
): Promise<PlatformReport> {
  const since = parseAuditTime('since', sinceText, nowMs);
  const until = new Date(nowMs).toISOString();
  const [apps, deploys, reached, events] = await Promise.all([
    db
      .selectFrom('apps')
      .leftJoin('releases', 'releases.id', 'apps.serving_release_id')
      .select([
        'apps.id',
        'apps.created_at',
        'apps.stage',
        'apps.data_class',
        'apps.active_at',
        'apps.expired_at',
        'apps.archived_at',
        'releases.egress',
      ])
      .execute(),
    db
      .selectFrom('deploys')
      .select([
        'app_id',
        (eb) => eb.fn.min('finished_at').filterWhere('status', '=', 'succeeded').as('first_served'),
        (eb) => eb.fn.max('created_at').as('last_created'),
      ])
      .groupBy('app_id')
      .execute(),
    db
      .selectFrom('egress_attempts')
      .select('app_id')
      .distinct()
      .where('allowed', '=', 1)
      .where('last_seen', '>=', since)
      .execute(),
    db
      .selectFrom('audit_events')
      .select(['action', 'target', 'at'])
      .where('action', 'in', ['app.create', 'app.destroy'])
      .where('outcome', '=', 'ok')
      .where('at', '>=', since)
      .orderBy('id')
      .execute(),
  ]);

  const deployOf = new Map(
    deploys.map((d) => [
      d.app_id,
      { first: d.first_served as string | null, last: d.last_created as string | null },
    ]),
  );
  const reachedOut = new Set(reached.map((r) => r.app_id));
  const inPeriod = (at: string | null) => at !== null && at >= since;

  let created = 0;
  let deployed = 0;
  let active = 0;
  let graduated = 0;
  let graduating = 0;
  let expired = 0;
  let archived = 0;
  let personalData = 0;
  let sensitiveData = 0;
  let outsideHosts = 0;
  const toFirstDeploy: number[] = [];
  for (const app of apps) {
    const deploy = deployOf.get(app.id);
    if (inPeriod(app.created_at)) {
      created++;
      if (deploy?.first) {
        deployed++;
        toFirstDeploy.push((Date.parse(deploy.first) - Date.parse(app.created_at)) / 1000);
      }
    }
    if (inPeriod(app.active_at) || inPeriod(deploy?.last ?? null)) active++;
    if (app.stage === 'graduated') graduated++;
    if (app.stage === 'graduating') graduating++;
    if (inPeriod(app.expired_at) || inPeriod(app.archived_at)) expired++;
    if (inPeriod(app.archived_at)) archived++;
    if (app.stage === 'archived') continue;
    if (app.data_class === 'personal' || app.data_class === 'sensitive') personalData++;
    if (app.data_class === 'sensitive') sensitiveData++;
    const declares = app.egress !== null && app.egress !== '[]';
    if (declares || reachedOut.has(app.id)) outsideHosts++;
  }

  // Apps created and destroyed within the period: an app.create followed by its app.destroy.
  const createdAt = new Map<string, number>();
  let destroyed = 0;
  for (const event of events) {
    if (event.action === 'app.create') {
      createdAt.set(event.target, (createdAt.get(event.target) ?? 0) + 1);
      continue;
    }
    destroyed++;
    const pending = createdAt.get(event.target) ?? 0;
    if (pending > 0) {
      created++;
      createdAt.set(event.target, pending - 1);
    }
  }

  return {
    since,
    until,
    created,
    deployed,
    active,
    graduated,
    graduating,
    expired,
    archived,
    destroyed,
    medianToFirstDeploySeconds: median(toFirstDeploy),
    personalData,
    sensitiveData,
    outsideHosts,
  };
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const value = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return Math.round(value);
}

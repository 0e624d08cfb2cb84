// The operators' inventory: for every app its team, owner, description, stage, data class,
// egress declared and reached, add-ons, limits, activity, expiry and stack. A fixed number
// of queries whatever the number of apps (one per table, each over the same filtered set of
// apps), so a platform of a thousand experiments answers at once. What only the runtime and
// the engines know (memory and CPU in use, add-on sizes) is added by the API.
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import type { Addon, Audience, DataClass, Stage, User } from '../store/schema.js';
import { decide, teamNotFound } from './access.js';
import { teamWithRole } from './app-access.js';
import { isApproved, parseDataClass, STAGES } from './experiments.js';
import { parsePeriod } from './lifecycle.js';
import { countsSince, type MailCounts } from './mail.js';
import { requestsSince, unixHour } from './metrics.js';
import { releaseEgress, releaseRuntimeEnv } from './release-json.js';

export interface InventoryFilters {
  team?: string;
  stage?: string;
  data?: string;
  /** A duration (14d, 36h, 2w): experiments that expire within it. */
  expiring?: string;
}

export interface InventoryEntry {
  id: number;
  name: string;
  team: string;
  owner: string;
  description: string;
  stage: Stage;
  dataClass: DataClass;
  privacyNote: string | null;
  retentionDays: number | null;
  approved: boolean;
  /** Who may reach it: public, staff or invite (issue 15). */
  audience: Audience;
  egressDeclared: string[];
  egressReached: string[];
  egressRefused: number;
  /** Its add-ons (the API asks their engines for their sizes). */
  addons: Addon[];
  limits: { memoryMiB: number; cpus: number };
  /** Ids of its running instances (the API asks the runtime for their use). */
  instanceIds: string[];
  lastRequestAt: string | null;
  /** Requests the router passed to it in the last 7 days (the metrics' minute and hour rows). */
  requests7d: number;
  /** Requests per hour over the last 24 hours, oldest first (the last: the hour so far). */
  requests24h: number[];
  /** Its mail of the last 30 days through the relay: sent (or captured), bounced, refused. */
  mail30d: { sent: number; bounced: number; refused: number };
  createdAt: string;
  lastDeployAt: string | null;
  expiresAt: string | null;
  expiredAt: string | null;
  stack: string | null;
}

/** --expiring: a duration ahead of now (36h, 14d, 2w) in ms, read as renewals' periods are. */
export function parseWithin(value: string, field = 'expiring'): number {
  try {
    return parsePeriod(value, field);
  } catch {
    throw new UserError(
      'bad_request',
      `${field} must be a duration like 14d, 36h or 2w, got '${value.slice(0, 40)}'`,
    );
  }
}

function parseStage(value: string): Stage {
  const stage = value.trim().toLowerCase();
  if (!(STAGES as readonly string[]).includes(stage)) {
    throw new UserError(
      'bad_request',
      `stage must be one of ${STAGES.join(', ')}, got '${value.slice(0, 40)}'`,
    );
  }
  return stage as Stage;
}

/** The inventory as the user may see it: every app for admins and auditors, their teams'
 * apps for everyone else. Filters are checked first, each error naming its field. */
export async function inventory(
  db: Store,
  user: User,
  filters: InventoryFilters = {},
  nowMs = Date.now(),
): Promise<InventoryEntry[]> {
  const seesAll = decide(user, 'platform.read') === 'ok';
  const stage = filters.stage === undefined ? undefined : parseStage(filters.stage);
  const data = filters.data === undefined ? undefined : parseDataClass(filters.data, 'data');
  const within = filters.expiring === undefined ? undefined : parseWithin(filters.expiring);
  let teamId: number | undefined;
  if (filters.team !== undefined) {
    const found = await teamWithRole(db, user.id, filters.team);
    if (!found || (!seesAll && found.teamRole === null)) throw teamNotFound(filters.team);
    teamId = found.team.id;
  }

  // The apps of the inventory, as a subquery every other query is limited to.
  const selected = () => {
    let q = db.selectFrom('apps').select('apps.id');
    if (!seesAll) {
      q = q.where('apps.team_id', 'in', (sub) =>
        sub.selectFrom('team_members').select('team_id').where('user_id', '=', user.id),
      );
    }
    if (teamId !== undefined) q = q.where('apps.team_id', '=', teamId);
    if (stage !== undefined) q = q.where('apps.stage', '=', stage);
    if (data !== undefined) q = q.where('apps.data_class', '=', data);
    if (within !== undefined) {
      q = q
        .where('apps.stage', '=', 'experiment')
        .where('apps.expires_at', 'is not', null)
        .where('apps.expires_at', '<=', new Date(nowMs + within).toISOString());
    }
    return q;
  };

  const lastHour = unixHour(nowMs);
  const [apps, deploys, egress, addons, instances, hours] = await Promise.all([
    db
      .selectFrom('apps')
      .innerJoin('teams', 'teams.id', 'apps.team_id')
      .innerJoin('users', 'users.id', 'apps.owner_id')
      .leftJoin('releases', 'releases.id', 'apps.serving_release_id')
      .selectAll('apps')
      .select([
        'teams.name as team_name',
        'users.name as owner_name',
        'releases.egress as release_egress',
        'releases.runtime_env as release_env',
        'releases.node_version as release_node',
      ])
      .where('apps.id', 'in', selected())
      .orderBy('apps.name')
      .execute(),
    db
      .selectFrom('deploys')
      .select(['app_id', (eb) => eb.fn.max('finished_at').as('last')])
      .where('status', '=', 'succeeded')
      .where('app_id', 'in', selected())
      .groupBy('app_id')
      .execute(),
    db
      .selectFrom('egress_attempts')
      .select(['app_id', 'host', 'port', 'allowed', 'count'])
      .where('app_id', 'in', selected())
      .orderBy('host')
      .orderBy('port')
      .execute(),
    db
      .selectFrom('addons')
      .selectAll()
      .where('status', '!=', 'destroyed')
      .where('app_id', 'in', selected())
      .orderBy('name')
      .execute(),
    db
      .selectFrom('instances')
      .select(['id', 'app_id'])
      .where('state', 'in', ['up', 'starting'])
      .where('app_id', 'in', selected())
      .execute(),
    // The dashboard's sparklines: one row per app and hour, one query for all apps.
    db
      .selectFrom('metric_hours')
      .select(['app_id', 'hour', 'requests'])
      .where('hour', '>', lastHour - 24)
      .where('app_id', 'in', selected())
      .execute(),
  ]);

  const requests = await requestsSince(
    db,
    apps.map((a) => a.id),
    new Date(nowMs - 7 * 86_400_000).toISOString(),
  );
  const mail = await countsSince(
    db,
    apps.map((a) => a.id),
    new Date(nowMs - 30 * 86_400_000).toISOString(),
  );
  const lastDeploy = new Map(deploys.map((d) => [d.app_id, d.last as string | null]));
  const grouped = <T extends { app_id: number }>(rows: T[]) => {
    const map = new Map<number, T[]>();
    for (const row of rows) {
      const list = map.get(row.app_id);
      if (list) list.push(row);
      else map.set(row.app_id, [row]);
    }
    return map;
  };
  const egressOf = grouped(egress);
  const addonsOf = grouped(addons);
  const instancesOf = grouped(instances);
  const hoursOf = grouped(hours);

  return apps.map((app) => {
    const attempts = egressOf.get(app.id) ?? [];
    return {
      id: app.id,
      name: app.name,
      team: app.team_name,
      owner: app.owner_name,
      description: app.description,
      stage: app.stage,
      dataClass: app.data_class,
      privacyNote: app.privacy_note,
      retentionDays: app.retention_days,
      approved: isApproved(app),
      audience: app.audience,
      egressDeclared: app.release_egress ? releaseEgress({ egress: app.release_egress }) : [],
      egressReached: attempts.filter((a) => a.allowed === 1).map((a) => `${a.host}:${a.port}`),
      egressRefused: attempts.filter((a) => a.allowed === 0).reduce((sum, a) => sum + a.count, 0),
      addons: addonsOf.get(app.id) ?? [],
      limits: { memoryMiB: app.memory_mib, cpus: app.cpus },
      instanceIds: (instancesOf.get(app.id) ?? []).map((i) => i.id),
      lastRequestAt: app.active_at,
      requests7d: requests.get(app.id) ?? 0,
      requests24h: hourly(hoursOf.get(app.id) ?? [], lastHour),
      mail30d: mailOf(mail.get(app.id)),
      createdAt: app.created_at,
      lastDeployAt: lastDeploy.get(app.id) ?? null,
      expiresAt: app.expires_at,
      expiredAt: app.expired_at,
      stack: stackOf(app.release_env, app.release_node),
    };
  });
}

/** What the serving release runs on: node and its version, python, or static/other. */
export function stackOf(runtimeEnv: string | null, nodeVersion: string | null): string | null {
  if (runtimeEnv === null) return null;
  if (nodeVersion) return `node ${nodeVersion}`;
  const env = releaseRuntimeEnv({ runtime_env: runtimeEnv });
  if (env.NODE_ENV !== undefined) return 'node (host)';
  if (env.PYTHONUNBUFFERED !== undefined || env.VIRTUAL_ENV !== undefined) return 'python (host)';
  return 'other';
}

function mailOf(counts: MailCounts | undefined): { sent: number; bounced: number; refused: number } {
  if (!counts) return { sent: 0, bounced: 0, refused: 0 };
  return { sent: counts.sent + counts.captured, bounced: counts.bounced, refused: counts.refused };
}

/** 24 hourly counts ending with `lastHour`, an hour without a row counting 0. */
function hourly(rows: { hour: number; requests: number }[], lastHour: number): number[] {
  const counts = new Array<number>(24).fill(0);
  for (const row of rows) {
    const at = 23 - (lastHour - row.hour);
    if (at >= 0 && at < 24) counts[at] = row.requests;
  }
  return counts;
}

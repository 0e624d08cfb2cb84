// Quotas per team: how many apps, how much memory of instances and how many add-ons a
// team's apps may have. The defaults come from the configuration (quotas), a team's own
// from teams.quota_*. Every check runs inside the transaction of the write it guards, so two
// requests at once cannot both fit under the same figure (SQLite runs one at a time).
import type { Quotas } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { formatMiB } from '../lib/limits.js';
import type { Store } from '../store/db.js';
import type { App, Team, User } from '../store/schema.js';
import { recordAudit } from './audit.js';

export { formatMiB };

export type QuotaKey = keyof Quotas;

export interface QuotaFigure {
  used: number;
  limit: number;
  /** true: the team's own limit; false: the configuration's default. */
  custom: boolean;
}

export type TeamQuotas = Record<QuotaKey, QuotaFigure>;

/** What the team's apps take now. Memory counts every formation row of every app, sleeping
 * ones included (a wake starts them without asking), times the app's memory limit; expired
 * apps too (a renewal starts them again without asking). Archived apps count for nothing:
 * only their name is kept (and their final backups, which are the platform's to keep), so a
 * team is never pushed to destroy its record of an experiment that ended to start the next;
 * renewing one checks the quota like creating an app. */
export async function teamUsage(db: Store, teamId: number): Promise<Quotas> {
  const [apps, memory, addons] = await Promise.all([
    db
      .selectFrom('apps')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('team_id', '=', teamId)
      .where('archived_at', 'is', null)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('formations')
      .innerJoin('apps', 'apps.id', 'formations.app_id')
      .select((eb) => eb.fn.sum<number>(eb('formations.quantity', '*', eb.ref('apps.memory_mib'))).as('n'))
      .where('apps.team_id', '=', teamId)
      .where('apps.archived_at', 'is', null)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('addons')
      .innerJoin('apps', 'apps.id', 'addons.app_id')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('apps.team_id', '=', teamId)
      .where('addons.status', '!=', 'destroyed')
      .executeTakeFirstOrThrow(),
  ]);
  return { apps: Number(apps.n), memoryMiB: Number(memory.n ?? 0), addons: Number(addons.n) };
}

/** The team's limits: its own where an admin set one, else the configuration's. */
export function teamLimits(
  team: Team,
  defaults: Quotas,
): Record<QuotaKey, { limit: number; custom: boolean }> {
  const pick = (own: number | null, fallback: number) => ({ limit: own ?? fallback, custom: own !== null });
  return {
    apps: pick(team.quota_apps, defaults.apps),
    memoryMiB: pick(team.quota_memory_mib, defaults.memoryMiB),
    addons: pick(team.quota_addons, defaults.addons),
  };
}

export async function teamQuotas(db: Store, team: Team, defaults: Quotas): Promise<TeamQuotas> {
  const used = await teamUsage(db, team.id);
  const limits = teamLimits(team, defaults);
  return {
    apps: { used: used.apps, ...limits.apps },
    memoryMiB: { used: used.memoryMiB, ...limits.memoryMiB },
    addons: { used: used.addons, ...limits.addons },
  };
}

/** What a request would add to a team, and how to say it: 'web=2 at 512 MiB'. */
export interface QuotaRequest {
  apps?: number;
  memoryMiB?: number;
  addons?: number;
  /** What asks for it, for the message ("a new app 'blog' (web=1 at 512 MiB)"). */
  what: string;
}

/** Refuses (403 quota_exceeded) a request that adds to a figure past the team's limit.
 * Only additions are checked, so a team over a lowered quota can always shrink. Call it in
 * the transaction that writes the change. */
export async function assertWithinQuota(
  tx: Store,
  teamId: number,
  defaults: Quotas,
  request: QuotaRequest,
): Promise<void> {
  const adds = (key: QuotaKey) => (request[key] ?? 0) > 0;
  if (!adds('apps') && !adds('memoryMiB') && !adds('addons')) return;
  const team = await tx.selectFrom('teams').selectAll().where('id', '=', teamId).executeTakeFirstOrThrow();
  const used = await teamUsage(tx, teamId);
  const limits = teamLimits(team, defaults);
  const raise = (flag: string, value: string) =>
    `scale down or remove something first, or ask a platform admin to raise it (petri quotas ${team.name} ${flag} ${value})`;
  if (adds('apps') && used.apps + (request.apps ?? 0) > limits.apps.limit) {
    throw new UserError(
      'quota_exceeded',
      `team ${team.name} has ${used.apps} of ${limits.apps.limit} apps; ${request.what} needs ${request.apps} more: ${raise('--apps', String(used.apps + (request.apps ?? 0)))}`,
    );
  }
  const memory = request.memoryMiB ?? 0;
  if (adds('memoryMiB') && used.memoryMiB + memory > limits.memoryMiB.limit) {
    throw new UserError(
      'quota_exceeded',
      `team ${team.name} runs ${formatMiB(used.memoryMiB)} of ${formatMiB(limits.memoryMiB.limit)}; ${request.what} needs ${formatMiB(memory)} more: ${raise('--memory', formatSize(used.memoryMiB + memory))}`,
    );
  }
  if (adds('addons') && used.addons + (request.addons ?? 0) > limits.addons.limit) {
    throw new UserError(
      'quota_exceeded',
      `team ${team.name} has ${used.addons} of ${limits.addons.limit} add-ons; ${request.what} needs ${request.addons} more: ${raise('--addons', String(used.addons + (request.addons ?? 0)))}`,
    );
  }
}

/** Changes a team's own limits; null puts one back to the configuration's default. A limit
 * below what the team has now is taken: nothing stops, but nothing more fits until it shrinks. */
export async function setTeamQuotas(
  db: Store,
  user: User,
  team: Team,
  changes: Partial<Record<QuotaKey, number | null>>,
  ip?: string,
): Promise<Team> {
  const set: { quota_apps?: number | null; quota_memory_mib?: number | null; quota_addons?: number | null } =
    {};
  for (const [key, value] of Object.entries(changes) as [QuotaKey, number | null | undefined][]) {
    if (value === undefined) continue;
    if (value !== null && (!Number.isInteger(value) || value < 0 || value > QUOTA_MAX[key])) {
      throw new UserError(
        'bad_request',
        `quota ${key} must be a whole number from 0 to ${QUOTA_MAX[key]}, or null for the default; got ${value}`,
      );
    }
    if (key === 'apps') set.quota_apps = value;
    if (key === 'memoryMiB') set.quota_memory_mib = value;
    if (key === 'addons') set.quota_addons = value;
  }
  if (Object.keys(set).length === 0) return team;
  return db.transaction().execute(async (tx) => {
    const updated = await tx
      .updateTable('teams')
      .set(set)
      .where('id', '=', team.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, { name: user.name, ip: ip ?? null }, 'team.quotas', team.name, { ...changes });
    return updated;
  });
}

/** Instances the app wants, all process types together (sleeping or not). */
export async function desiredInstances(db: Store, appId: number): Promise<number> {
  const row = await db
    .selectFrom('formations')
    .select((eb) => eb.fn.sum<number>('quantity').as('n'))
    .where('app_id', '=', appId)
    .executeTakeFirstOrThrow();
  return Number(row.n ?? 0);
}

/** Refuses a higher memory limit for an app whose instances would then take its team past
 * its memory quota. `app` is the row as read in the transaction `tx`. */
export async function assertMemoryLimitFits(
  tx: Store,
  app: App,
  memoryMiB: number,
  defaults: Quotas,
): Promise<void> {
  if (memoryMiB <= app.memory_mib) return;
  const instances = await desiredInstances(tx, app.id);
  await assertWithinQuota(tx, app.team_id, defaults, {
    memoryMiB: instances * (memoryMiB - app.memory_mib),
    what: `${app.name} at ${formatMiB(memoryMiB)} per instance (${instances} instance${instances === 1 ? '' : 's'}, ${formatMiB(app.memory_mib)} each now)`,
  });
}

export const QUOTA_MAX: Record<QuotaKey, number> = {
  apps: 1_000_000,
  memoryMiB: 1_048_576_000,
  addons: 1_000_000,
};

/** 512M, 8G: memory as `petri quotas --memory` takes it. */
function formatSize(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}G` : `${mib}M`;
}

/** 'web=2 at 512 MiB': a formation change as the quota message shows it. */
export function describeInstances(formation: Record<string, number>, memoryMiB: number): string {
  const parts = Object.entries(formation).map(([type, n]) => `${type}=${n}`);
  return `${parts.join(' ')} at ${formatMiB(memoryMiB)}`;
}

// The formation: how many instances of each process type should run, and the restart
// generation of each type (a restart makes new instances replace the old ones).
import { type Ceilings, DEFAULTS, type Quotas } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import type { App, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { assertWithinQuota, describeInstances } from './quotas.js';
import { releaseProcessTypes } from './release-json.js';

export const MAX_QUANTITY = 100;

async function processTypesOf(db: Store, app: App): Promise<string[]> {
  const id = app.desired_release_id ?? app.serving_release_id;
  if (id === null) return ['web'];
  const release = await db
    .selectFrom('releases')
    .select('process_types')
    .where('id', '=', id)
    .executeTakeFirst();
  return release ? Object.keys(releaseProcessTypes(release)) : [];
}

export async function getFormation(db: Store, app: App): Promise<Record<string, number>> {
  const types = await processTypesOf(db, app);
  const rows = await db.selectFrom('formations').selectAll().where('app_id', '=', app.id).execute();
  const formation: Record<string, number> = {};
  for (const type of types) formation[type] = rows.find((r) => r.type === type)?.quantity ?? 0;
  return formation;
}

export async function scale(
  db: Store,
  user: User,
  app: App,
  changes: Record<string, number>,
  ceilings: Pick<Ceilings, 'instancesPerApp' | 'instancesPerOwner'>,
  ip?: string,
  /** The teams' default quotas: more instances must fit the memory of the app's team. */
  quotas: Quotas = DEFAULTS.quotas,
): Promise<Record<string, number>> {
  const types = await processTypesOf(db, app);
  const rows = await db
    .selectFrom('formations')
    .select(['type', 'quantity'])
    .where('app_id', '=', app.id)
    .execute();
  for (const [type, quantity] of Object.entries(changes)) {
    // A type a later release dropped keeps its row (it runs again if a release brings it
    // back), so it counts against the ceiling and may always be scaled down to 0.
    const stale = quantity === 0 && rows.some((r) => r.type === type);
    if (!types.includes(type) && !stale) {
      throw new UserError(
        'bad_request',
        `unknown process type '${type}'; ${app.name} has ${types.join(', ')}`,
      );
    }
    if (!Number.isInteger(quantity) || quantity < 0 || quantity > MAX_QUANTITY) {
      throw new UserError(
        'bad_request',
        `${type} must be scaled to a whole number from 0 to ${MAX_QUANTITY}, got ${quantity}`,
      );
    }
  }
  await db.transaction().execute(async (tx) => {
    // Inside the transaction, so two scale requests cannot both pass on the old totals.
    await checkCeilings(tx, app, changes, ceilings);
    await checkMemoryQuota(tx, app, changes, quotas);
    for (const [type, quantity] of Object.entries(changes)) {
      await tx
        .insertInto('formations')
        .values({ app_id: app.id, type, quantity })
        .onConflict((oc) => oc.columns(['app_id', 'type']).doUpdateSet({ quantity }))
        .execute();
    }
    await recordAudit(tx, actorOf(user, ip), 'formation.scale', app.name, changes);
  });
  return getFormation(db, app);
}

/** Refuses a formation beyond the instances one app, or all apps of one owner, may have:
 * every instance takes a sandbox address, a cgroup and memory all apps share. Counts every
 * formation row, whether or not the serving release runs that type. Only increases are
 * refused, so an app already above a lowered ceiling can still scale down. */
async function checkCeilings(
  db: Store,
  app: App,
  changes: Record<string, number>,
  ceilings: Pick<Ceilings, 'instancesPerApp' | 'instancesPerOwner'>,
): Promise<void> {
  const rows = await db
    .selectFrom('formations')
    .innerJoin('apps', 'apps.id', 'formations.app_id')
    .select(['formations.app_id', 'formations.type', 'formations.quantity'])
    .where('apps.owner_id', '=', app.owner_id)
    .execute();
  const ownRows = rows.filter((r) => r.app_id === app.id);
  const sum = (list: { quantity: number }[]) => list.reduce((n, r) => n + r.quantity, 0);
  const before = sum(ownRows);
  const appTotal =
    sum(ownRows.filter((r) => !(r.type in changes))) +
    sum(Object.values(changes).map((quantity) => ({ quantity })));
  if (appTotal <= before) return;
  if (appTotal > ceilings.instancesPerApp) {
    throw new UserError(
      'bad_request',
      `${app.name} would have ${appTotal} instances, above the ceiling of ${ceilings.instancesPerApp} per app (all process types together); scale other types down first, or ask the operator to raise ceilings.instancesPerApp`,
    );
  }
  const ownerTotal = sum(rows) - before + appTotal;
  if (ownerTotal > ceilings.instancesPerOwner) {
    throw new UserError(
      'bad_request',
      `the apps of ${app.name}'s owner would have ${ownerTotal} instances, above the ceiling of ${ceilings.instancesPerOwner} per owner; scale other apps down first, or ask the operator to raise ceilings.instancesPerOwner`,
    );
  }
}

/** Refuses more instances than the memory quota of the app's team holds (sleeping apps'
 * instances count: a wake starts them without asking). */
async function checkMemoryQuota(
  tx: Store,
  app: App,
  changes: Record<string, number>,
  quotas: Quotas,
): Promise<void> {
  const fresh = await tx
    .selectFrom('apps')
    .select(['memory_mib', 'team_id'])
    .where('id', '=', app.id)
    .executeTakeFirst();
  if (!fresh)
    throw new UserError('not_found', `app '${app.name}' not found; list your apps with 'petri apps'`);
  const rows = await tx
    .selectFrom('formations')
    .select(['type', 'quantity'])
    .where('app_id', '=', app.id)
    .execute();
  let added = 0;
  for (const [type, quantity] of Object.entries(changes)) {
    added += quantity - (rows.find((r) => r.type === type)?.quantity ?? 0);
  }
  if (added <= 0) return;
  await assertWithinQuota(tx, fresh.team_id, quotas, {
    memoryMiB: added * fresh.memory_mib,
    what: describeInstances(changes, fresh.memory_mib),
  });
}

/** Bumps the generation of one type (or all): every instance of it is replaced, new ones
 * first, with zero downtime. Returns the names of the processes being restarted. */
export async function restart(
  db: Store,
  user: User,
  app: App,
  type?: string,
  ip?: string,
): Promise<string[]> {
  const types = await processTypesOf(db, app);
  if (type !== undefined && !types.includes(type)) {
    throw new UserError('bad_request', `unknown process type '${type}'; ${app.name} has ${types.join(', ')}`);
  }
  return db.transaction().execute(async (tx) => {
    let q = tx
      .updateTable('formations')
      .set((eb) => ({ generation: eb('generation', '+', 1) }))
      .where('app_id', '=', app.id);
    if (type !== undefined) q = q.where('type', '=', type);
    await q.execute();
    await recordAudit(tx, actorOf(user, ip), 'ps.restart', app.name, { type: type ?? 'all' });
    const rows = await tx
      .selectFrom('instances')
      .select(['type', 'idx'])
      .where('app_id', '=', app.id)
      .where('release_id', '=', app.serving_release_id ?? -1)
      .where('state', '!=', 'stopping')
      .execute();
    return rows.filter((r) => type === undefined || r.type === type).map((r) => `${r.type}.${r.idx}`);
  });
}

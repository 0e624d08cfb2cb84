// The formation: how many instances of each process type should run, and the restart
// generation of each type (a restart makes new instances replace the old ones).
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import type { App, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';

export const MAX_QUANTITY = 100;

async function processTypesOf(db: Store, app: App): Promise<string[]> {
  const id = app.desired_release_id ?? app.serving_release_id;
  if (id === null) return ['web'];
  const release = await db
    .selectFrom('releases')
    .select('process_types')
    .where('id', '=', id)
    .executeTakeFirst();
  return Object.keys(JSON.parse(release?.process_types ?? '{}') as Record<string, string>);
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
  ip?: string,
): Promise<Record<string, number>> {
  const types = await processTypesOf(db, app);
  for (const [type, quantity] of Object.entries(changes)) {
    if (!types.includes(type)) {
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

// Instance rows: what the reconciler believes runs, and what it decided about each one.
import { now, type Store } from '../store/db.js';
import type { App, Instance, InstanceState, Release } from '../store/schema.js';

export function listInstances(db: Store): Promise<Instance[]> {
  return db.selectFrom('instances').selectAll().orderBy('app_id').orderBy('type').orderBy('idx').execute();
}

export function listAllApps(db: Store): Promise<App[]> {
  return db.selectFrom('apps').selectAll().orderBy('id').execute();
}

/** Every app's id, and nothing else of it: which apps still exist. */
export async function listAppIds(db: Store): Promise<number[]> {
  return (await db.selectFrom('apps').select('id').execute()).map((r) => r.id);
}

/** The apps of these ids (a reconcile pass's instances' apps), by id: one query. */
export async function appsByIds(db: Store, ids: number[]): Promise<Map<number, App>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('apps').selectAll().where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r]));
}

export function instancesOfApp(db: Store, appId: number): Promise<Instance[]> {
  return db
    .selectFrom('instances')
    .selectAll()
    .where('app_id', '=', appId)
    .orderBy('type')
    .orderBy('idx')
    .execute();
}

/** Every app's formation, by app id: one query for a whole reconcile pass. */
export async function allFormations(
  db: Store,
): Promise<Map<number, Map<string, { quantity: number; generation: number }>>> {
  const byApp = new Map<number, Map<string, { quantity: number; generation: number }>>();
  for (const r of await db.selectFrom('formations').selectAll().execute()) {
    const entries = byApp.get(r.app_id) ?? new Map<string, { quantity: number; generation: number }>();
    entries.set(r.type, { quantity: r.quantity, generation: r.generation });
    byApp.set(r.app_id, entries);
  }
  return byApp;
}

export async function releasesByIds(db: Store, ids: number[]): Promise<Map<number, Release>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('releases').selectAll().where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r]));
}

export async function insertInstance(
  db: Store,
  row: Pick<Instance, 'id' | 'app_id' | 'release_id' | 'type' | 'idx' | 'generation'>,
): Promise<Instance> {
  return db
    .insertInto('instances')
    .values({
      ...row,
      port: null, // the driver's choice, known once it started the instance
      state: 'starting',
      started_at: now(),
      ready_at: null,
      restarts: 0,
      exit_code: null,
      exit_reason: null,
      next_start_at: null,
      stop_deadline: null,
      signalled_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateInstance(
  db: Store,
  id: string,
  changes: Partial<Omit<Instance, 'id' | 'app_id' | 'release_id' | 'type' | 'idx'>> & {
    state?: InstanceState;
  },
): Promise<void> {
  await db.updateTable('instances').set(changes).where('id', '=', id).execute();
}

/** A starting instance answers on `port`: up, unless something else decided about it
 * meanwhile (a pass, a restart on another port). True when this call made it up. */
export async function markInstanceUp(db: Store, id: string, port: number | null): Promise<boolean> {
  const result = await db
    .updateTable('instances')
    .set({ state: 'up', ready_at: now() })
    .where('id', '=', id)
    .where('state', '=', 'starting')
    .where('port', port === null ? 'is' : '=', port)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteInstance(db: Store, id: string): Promise<void> {
  await db.deleteFrom('instances').where('id', '=', id).execute();
}

/** Where a web process of the app's serving release answers, once one is up. */
export async function servingWebAddress(
  db: Store,
  appId: number,
): Promise<{ address: string | null; port: number } | undefined> {
  const row = await db
    .selectFrom('instances')
    .innerJoin('apps', 'apps.id', 'instances.app_id')
    .select(['instances.address', 'instances.port'])
    .where('instances.app_id', '=', appId)
    .where('instances.type', '=', 'web')
    .where('instances.state', '=', 'up')
    .where('instances.port', 'is not', null)
    .whereRef('instances.release_id', '=', 'apps.serving_release_id')
    .executeTakeFirst();
  return row && row.port !== null ? { address: row.address, port: row.port } : undefined;
}

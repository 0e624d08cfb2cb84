// Apps: creation, lookup, limits and removal. Removing an app only deletes what should be;
// the reconciler stops what still runs for it and removes its files.
import { UserError } from '../lib/errors.js';
import type { Limits } from '../lib/limits.js';
import { now, type Store } from '../store/db.js';
import type { App, User } from '../store/schema.js';
import { type Actor, recordAudit } from './audit.js';
import { validateAppName } from './names.js';

export async function createApp(
  db: Store,
  user: User,
  name: unknown,
  limits: Limits,
  ip?: string,
): Promise<App> {
  const appName = validateAppName(name);
  return db.transaction().execute(async (tx) => {
    const taken = await tx.selectFrom('apps').select('id').where('name', '=', appName).executeTakeFirst();
    if (taken) throw new UserError('conflict', `app '${appName}' already exists; pick another name`);
    const app = await tx
      .insertInto('apps')
      .values({
        name: appName,
        owner_id: user.id,
        created_at: now(),
        memory_mib: limits.memoryMiB,
        disk_mib: limits.diskMiB ?? 1024,
        cpus: limits.cpus,
        pids: limits.pids,
        desired_release_id: null,
        serving_release_id: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await tx.insertInto('formations').values({ app_id: app.id, type: 'web', quantity: 1 }).execute();
    await recordAudit(tx, actorOf(user, ip), 'app.create', appName);
    return app;
  });
}

export function listApps(db: Store, user: User): Promise<App[]> {
  let q = db.selectFrom('apps').selectAll().orderBy('name');
  if (user.role !== 'admin') q = q.where('owner_id', '=', user.id);
  return q.execute();
}

/** The app by name, if the user may see it; otherwise the same not-found as a missing app. */
export async function getApp(db: Store, user: User, name: string): Promise<App> {
  const app = await db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirst();
  if (!app || (user.role !== 'admin' && app.owner_id !== user.id)) {
    throw new UserError('not_found', `app '${name}' not found; list your apps with 'petri apps'`);
  }
  return app;
}

export async function setLimits(
  db: Store,
  user: User,
  app: App,
  limits: Partial<Limits>,
  ip?: string,
): Promise<App> {
  const updated = await db
    .updateTable('apps')
    .set({
      memory_mib: limits.memoryMiB ?? app.memory_mib,
      disk_mib: limits.diskMiB ?? app.disk_mib,
      cpus: limits.cpus ?? app.cpus,
      pids: limits.pids ?? app.pids,
    })
    .where('id', '=', app.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await recordAudit(db, actorOf(user, ip), 'app.limits', app.name, { ...limits });
  return updated;
}

export interface AppSettings {
  bootTimeoutSeconds?: number;
}

export async function setSettings(
  db: Store,
  user: User,
  app: App,
  settings: AppSettings,
  ip?: string,
): Promise<App> {
  const changes: { boot_timeout_ms?: number } = {};
  if (settings.bootTimeoutSeconds !== undefined) {
    const s = settings.bootTimeoutSeconds;
    if (!Number.isFinite(s) || s < 1 || s > 3600) {
      throw new UserError('bad_request', `boot timeout must be from 1 s to 3600 s, got ${s}`);
    }
    changes.boot_timeout_ms = Math.round(s * 1000);
  }
  if (Object.keys(changes).length === 0) return app;
  const updated = await db
    .updateTable('apps')
    .set(changes)
    .where('id', '=', app.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await recordAudit(db, actorOf(user, ip), 'app.settings', app.name, { ...settings });
  return updated;
}

export async function destroyApp(db: Store, user: User, app: App, ip?: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    // Instances rows stay: the reconciler sees instances of an app that no longer exists,
    // stops them and removes their rows. Everything else goes with the app (cascade).
    await tx.deleteFrom('apps').where('id', '=', app.id).execute();
    await recordAudit(tx, actorOf(user, ip), 'app.destroy', app.name);
  });
}

export function appLimits(app: App): Limits {
  return { memoryMiB: app.memory_mib, cpus: app.cpus, pids: app.pids, diskMiB: app.disk_mib };
}

export function actorOf(user: User, ip?: string): Actor {
  return { name: user.name, ip: ip ?? null };
}

// Apps: creation, limits and removal (who may see which app: app-access.ts). Removing an app
// only deletes what should be; the reconciler stops what still runs for it and removes its files.
import { DEFAULTS, type PetriConfig, type Quotas } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { describeLimit, type LimitCeiling, type Limits } from '../lib/limits.js';
import { now, type Store } from '../store/db.js';
import type { App, NewApp, User } from '../store/schema.js';
import { type Actor, recordAudit } from './audit.js';
import { validateAppName } from './names.js';
import { assertMemoryLimitFits, assertWithinQuota, describeInstances } from './quotas.js';
import { teamForNewApp } from './teams.js';

export async function createApp(
  db: Store,
  user: User,
  name: unknown,
  limits: Limits,
  ip?: string,
  instancesPerOwner = Number.POSITIVE_INFINITY,
  appsPerOwner = Number.POSITIVE_INFINITY,
  /** The team by name (default: the caller's personal team) and its default quotas. */
  inTeam: { team?: string; quotas?: Quotas } = {},
  /** Its description, data class and expiry (domain/experiments.ts describeNewApp). */
  experiment: Partial<
    Pick<NewApp, 'description' | 'data_class' | 'privacy_note' | 'retention_days' | 'expires_at' | 'audience'>
  > = {},
): Promise<App> {
  const appName = validateAppName(name);
  return db.transaction().execute(async (tx) => {
    const team = await teamForNewApp(tx, user, inTeam.team);
    const taken = await tx.selectFrom('apps').select('id').where('name', '=', appName).executeTakeFirst();
    if (taken) throw new UserError('conflict', `app '${appName}' already exists; pick another name`);
    // Apps scaled to 0 take no instance, but each keeps a directory, logs, a build cache and
    // slugs: their number is bounded on its own (ceilings.appsPerOwner).
    const apps = await tx
      .selectFrom('apps')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('owner_id', '=', user.id)
      .executeTakeFirst();
    if (Number(apps?.n ?? 0) >= appsPerOwner) {
      throw new UserError(
        'bad_request',
        `you already own ${apps?.n} apps, the ceiling of ${appsPerOwner} per owner (ceilings.appsPerOwner); destroy one first, or ask the operator to raise it`,
      );
    }
    // A new app has one web instance: creating apps must not get round the owner's ceiling
    // on instances (see formation.ts), which every scale checks.
    const owned = await tx
      .selectFrom('formations')
      .innerJoin('apps', 'apps.id', 'formations.app_id')
      .select((eb) => eb.fn.sum<number>('formations.quantity').as('n'))
      .where('apps.owner_id', '=', user.id)
      .executeTakeFirst();
    if (Number(owned?.n ?? 0) + 1 > instancesPerOwner) {
      throw new UserError(
        'bad_request',
        `your apps already have ${owned?.n} instances, the ceiling of ${instancesPerOwner} per owner, and a new app has one; scale an app down or destroy one first`,
      );
    }
    // The team's share, checked in this transaction so that two creations at once cannot
    // both take its last app or its last memory.
    await assertWithinQuota(tx, team.id, inTeam.quotas ?? DEFAULTS.quotas, {
      apps: 1,
      memoryMiB: limits.memoryMiB,
      what: `a new app '${appName}' (${describeInstances({ web: 1 }, limits.memoryMiB)})`,
    });
    const app = await tx
      .insertInto('apps')
      .values({
        name: appName,
        owner_id: user.id,
        team_id: team.id,
        created_at: now(),
        memory_mib: limits.memoryMiB,
        disk_mib: limits.diskMiB ?? 1024,
        cpus: limits.cpus,
        pids: limits.pids,
        desired_release_id: null,
        serving_release_id: null,
        ...experiment,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await tx.insertInto('formations').values({ app_id: app.id, type: 'web', quantity: 1 }).execute();
    await recordAudit(
      tx,
      actorOf(user, ip),
      'app.create',
      appName,
      experiment.data_class && experiment.data_class !== 'none' ? { data: experiment.data_class } : {},
    );
    return app;
  });
}

/** The ceilings of the configuration that bound what setLimits accepts. */
export interface LimitCeilings {
  maxLimits: LimitCeiling;
  memberMaxLimits: LimitCeiling;
  /** The teams' default quotas: a higher memory limit must fit the app's team's. */
  quotas?: Quotas;
}

/** Each limit given must be within the caller's ceiling: an admin's is the per-app maximum,
 * a member's the lower member maximum (a member could otherwise take the host). */
export function checkLimits(user: User, limits: Partial<Limits>, ceilings: LimitCeilings): void {
  const admin = user.role === 'admin';
  const ceiling = admin ? ceilings.maxLimits : ceilings.memberMaxLimits;
  for (const key of ['memoryMiB', 'cpus', 'pids', 'diskMiB'] as const) {
    const value = limits[key];
    if (value === undefined || value <= ceiling[key]) continue;
    const max = describeLimit(key, ceiling[key]);
    throw new UserError(
      'bad_request',
      admin
        ? `limits.${key} ${value} is over the per-app maximum of ${max} (the configuration's maxLimits.${key})`
        : `limits.${key} ${value} is over the maximum of ${max} members may set; ask an admin for more (up to ${describeLimit(key, ceilings.maxLimits[key])})`,
    );
  }
}

export async function setLimits(
  db: Store,
  user: User,
  app: App,
  limits: Partial<Limits>,
  ceilings: LimitCeilings,
  ip?: string,
): Promise<App> {
  checkLimits(user, limits, ceilings);
  return db.transaction().execute(async (tx) => {
    // Read again in the transaction: the memory the team's quota is checked against must be
    // the one this update replaces, not what an earlier request saw.
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirst();
    if (!fresh)
      throw new UserError('not_found', `app '${app.name}' not found; list your apps with 'petri apps'`);
    if (limits.memoryMiB !== undefined) {
      await assertMemoryLimitFits(tx, fresh, limits.memoryMiB, ceilings.quotas ?? DEFAULTS.quotas);
    }
    const updated = await tx
      .updateTable('apps')
      .set({
        memory_mib: limits.memoryMiB ?? fresh.memory_mib,
        disk_mib: limits.diskMiB ?? fresh.disk_mib,
        cpus: limits.cpus ?? fresh.cpus,
        pids: limits.pids ?? fresh.pids,
      })
      .where('id', '=', app.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actorOf(user, ip), 'app.limits', app.name, { ...limits });
    return updated;
  });
}

export interface AppSettings {
  bootTimeoutSeconds?: number;
  /** null: never sleeps. */
  idleTimeoutSeconds?: number | null;
}

export async function setSettings(
  db: Store,
  user: User,
  app: App,
  settings: AppSettings,
  ip?: string,
): Promise<App> {
  const changes: { boot_timeout_ms?: number; idle_timeout_s?: number } = {};
  if (settings.idleTimeoutSeconds !== undefined) {
    const s = settings.idleTimeoutSeconds;
    if (s !== null && (!Number.isInteger(s) || s < 1 || s > 365 * 24 * 3600)) {
      throw new UserError(
        'bad_request',
        `idle timeout must be whole seconds from 1 s to 365 days, or null (never), got ${s}`,
      );
    }
    // 0 in the store: never (null there means the server's default).
    changes.idle_timeout_s = s ?? 0;
  }
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

/** The app's idle period in ms, or undefined when it never sleeps. */
export function idleTimeoutMs(app: App, defaultMs: number): number | undefined {
  const ms = app.idle_timeout_s === null ? defaultMs : app.idle_timeout_s * 1000;
  return ms > 0 ? ms : undefined;
}

/** Puts the app to sleep: the reconciler stops its processes, the route stays. */
export async function sleepApp(db: Store, actor: Actor, app: App, reason: string): Promise<App> {
  const updated = await db
    .updateTable('apps')
    .set({ sleeping_since: now() })
    .where('id', '=', app.id)
    .where('sleeping_since', 'is', null)
    .returningAll()
    .executeTakeFirst();
  if (!updated)
    return await db.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
  await recordAudit(db, actor, 'app.sleep', app.name, { reason });
  return updated;
}

/** Wakes the app; true when this call woke it (it was asleep). Recorded before anything
 * starts, so a restart of the control plane does not lose it. */
export async function wakeApp(db: Store, actor: Actor, app: App, reason: string): Promise<boolean> {
  const woke = await db
    .updateTable('apps')
    .set({ sleeping_since: null, woke_at: now(), active_at: now() })
    .where('id', '=', app.id)
    .where('sleeping_since', 'is not', null)
    .executeTakeFirst();
  if (Number(woke.numUpdatedRows) === 0) return false;
  await recordAudit(db, actor, 'app.wake', app.name, { reason });
  return true;
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
  return { name: user.name, userId: user.id, ip: ip ?? null };
}

/** The app with this id, if it still exists (the controllers' view: no user to check). */
export function findApp(db: Store, id: number): Promise<App | undefined> {
  return db.selectFrom('apps').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The app with this name, if any (the waker's view: no user to check). */
export function findAppByName(db: Store, name: string): Promise<App | undefined> {
  return db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirst();
}

/** Apps awake and serving: those that may go idle, and those in the middle of a rollout
 * (busy, not idle, but soon to be looked at). */
export function awakeServingApps(db: Store): Promise<App[]> {
  return db
    .selectFrom('apps')
    .selectAll()
    .where('sleeping_since', 'is', null)
    .where('serving_release_id', 'is not', null)
    .execute();
}

/** In the middle of a rollout: busy, never idle. */
export function rollingOut(app: App): boolean {
  return app.desired_release_id !== app.serving_release_id;
}

/** Keeps when the app last had a request, so its idle period survives restarts. */
export async function recordActivity(db: Store, appId: number, at: Date): Promise<void> {
  await db.updateTable('apps').set({ active_at: at.toISOString() }).where('id', '=', appId).execute();
}

/** What a listing of apps shows beside each app, for many apps in one query per table (not
 * one per app): `petri apps` lists hundreds of experiments. */
export async function appListingRows(db: Store, apps: App[]) {
  const ids = apps.map((a) => a.id);
  const [instances, owners, releases, pending, formations] = await Promise.all([
    db
      .selectFrom('instances')
      .selectAll()
      .where('app_id', 'in', ids)
      .orderBy('type')
      .orderBy('idx')
      .execute(),
    db
      .selectFrom('users')
      .select(['id', 'name'])
      .where('id', 'in', [...new Set(apps.map((a) => a.owner_id))])
      .execute(),
    db.selectFrom('releases').select(['id', 'app_id', 'version']).where('app_id', 'in', ids).execute(),
    db
      .selectFrom('deploys')
      .select('app_id')
      .where('app_id', 'in', ids)
      .where('status', 'in', ['queued', 'building', 'releasing'])
      .execute(),
    db.selectFrom('formations').select(['app_id', 'type', 'quantity']).where('app_id', 'in', ids).execute(),
  ]);
  return { instances, owners, releases, pending, formations };
}

type Served = Pick<PetriConfig, 'httpPort' | 'httpsPort' | 'tls'>;

/** Where the app is served: its host under the platform's domain, with the router's port
 * unless it is the scheme's own (the API, the deploy log and `petri open` all say this one).
 * Over HTTPS when overHttps says so: `onHttps`, the visitor is on HTTPS already. */
export function appUrl(config: Served & Pick<PetriConfig, 'domain'>, name: string, onHttps = false): string {
  return routerOrigin(config, `${name}.${config.domain}`, overHttps(config, onHttps));
}

/** Whether browsers are sent to HTTPS: when the router serves it and either sends plain HTTP
 * there anyway (tls.redirectHttp), or the visitor is on it already. A URL carrying a secret
 * (a gate ticket, a join link) must not take the visitor back to plain HTTP: the browser
 * sends it in the clear before any redirect (and HSTS is never there on a first visit). */
export function overHttps(config: Pick<PetriConfig, 'httpsPort' | 'tls'>, onHttps = false): boolean {
  return config.httpsPort !== 0 && (config.tls.redirectHttp || onHttps);
}

/** scheme://host[:port] as browsers reach `host` through the router. */
export function routerOrigin(config: Served, host: string, https: boolean): string {
  const port = https ? config.httpsPort : config.httpPort;
  return `${https ? 'https' : 'http'}://${host}${port === (https ? 443 : 80) ? '' : `:${port}`}`;
}

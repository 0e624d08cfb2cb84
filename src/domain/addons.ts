// Add-ons as the store sees them: which app has which database, under which config var
// (their backups: addon-backups.ts). Attaching, rotating and detaching change the app's config in the same
// transaction as a new release, so the app gets its URL with zero downtime the way a
// `petri config set` does. Talking to the engines is the caller's part (services/addons).
import { ADDON_ENGINES, DEFAULTS, type Quotas } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import type { SecretBox } from '../lib/secrets.js';
import { now, type Store } from '../store/db.js';
import type { Addon, App, Release, User } from '../store/schema.js';
import { addonVarNames } from './addon-vars.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { readConfig, sealConfig } from './config-vars.js';
import { assertWithinQuota } from './quotas.js';
import { assertNoReleaseInProgress, insertConfigRelease } from './releases.js';

export type AddonType = Addon['type'];
export const ADDON_TYPE_NAMES: readonly AddonType[] = ADDON_ENGINES;

/** The config var an engine's URL goes in unless `--as NAME` says otherwise (Heroku's names). */
export const DEFAULT_ENV_VAR: Record<AddonType, string> = {
  postgres: 'DATABASE_URL',
  mysql: 'MYSQL_URL',
  redis: 'REDIS_URL',
};

/** Accepted spellings of the engines, as users type them. */
const TYPE_ALIASES: Record<string, AddonType> = {
  postgres: 'postgres',
  postgresql: 'postgres',
  pg: 'postgres',
  mysql: 'mysql',
  mariadb: 'mysql',
  redis: 'redis',
};

export interface StoredCredentials {
  slot: 'a' | 'b';
  user: string;
  password: string;
  database: string;
}

export function parseAddonType(text: string, available: readonly AddonType[]): AddonType {
  const type = TYPE_ALIASES[text.toLowerCase()];
  if (!type) {
    throw new UserError(
      'bad_request',
      `unknown add-on type '${text}'; available: ${available.join(', ') || 'none (the operator turned them all off)'}`,
    );
  }
  if (!available.includes(type)) {
    throw new UserError(
      'bad_request',
      `${type} add-ons are turned off on this Petri; available: ${available.join(', ') || 'none'}`,
    );
  }
  return type;
}

/** `--as CACHE` → add-on 'cache' whose URL is in CACHE_URL; without it the engine's default. */
export function attachmentOf(type: AddonType, as?: string): { name: string; envVar: string } {
  if (as === undefined) return { name: type, envVar: DEFAULT_ENV_VAR[type] };
  const upper = as.toUpperCase().replace(/-/g, '_').replace(/_URL$/, '');
  if (!/^[A-Z][A-Z0-9_]{0,29}$/.test(upper)) {
    throw new UserError(
      'bad_request',
      `--as must be a name like CACHE or ANALYTICS_DB (letters, digits, _; the app gets NAME_URL), got '${as}'`,
    );
  }
  if (upper.startsWith('PETRI'))
    throw new UserError('bad_request', `--as '${as}': names starting with PETRI are Petri's`);
  return { name: upper.toLowerCase().replace(/_/g, '-'), envVar: `${upper}_URL` };
}

export function listAddons(db: Store, app: App): Promise<Addon[]> {
  return db
    .selectFrom('addons')
    .selectAll()
    .where('app_id', '=', app.id)
    .where('status', '!=', 'destroyed')
    .orderBy('name')
    .execute();
}

export async function getAddon(db: Store, app: App, name: string): Promise<Addon> {
  const addons = await listAddons(db, app);
  const addon = addons.find((a) => a.name === name);
  if (!addon) {
    const names = addons.map((a) => a.name).join(', ');
    throw new UserError(
      'not_found',
      `add-on '${name}' not found on '${app.name}'${names ? `; it has: ${names}` : '; it has none (petri addons create postgres)'}`,
    );
  }
  return addon;
}

export function readCredentials(secrets: SecretBox, addon: Addon): StoredCredentials {
  if (addon.credentials_sealed === '') throw new Error(`add-on ${addon.id} has no credentials yet`);
  return JSON.parse(secrets.open(addon.credentials_sealed)) as StoredCredentials;
}

/** Records an add-on about to be provisioned, so a crash halfway leaves a row that says
 * what to clean up. Refuses a name or config var the app already uses. */
export async function insertProvisioningAddon(
  db: Store,
  secrets: SecretBox,
  user: User,
  app: App,
  fields: { type: AddonType; name: string; envVar: string; mode: Addon['mode']; resourcePrefix: string },
  addonsPerOwner = Number.POSITIVE_INFINITY,
  /** The teams' default quotas: the app's team must have room for one more add-on. */
  quotas: Quotas = DEFAULTS.quotas,
): Promise<Addon> {
  return db.transaction().execute(async (tx) => {
    // Each add-on may hold sessions and memory of a server every app shares: one owner's
    // add-ons are bounded so that others' fit beside them.
    const owned = await tx
      .selectFrom('addons')
      .innerJoin('apps', 'apps.id', 'addons.app_id')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('apps.owner_id', '=', app.owner_id)
      .where('addons.status', '!=', 'destroyed')
      .executeTakeFirstOrThrow();
    if (Number(owned.n) >= addonsPerOwner) {
      throw new UserError(
        'bad_request',
        `the apps of ${app.name}'s owner already have ${owned.n} add-ons, the ceiling per owner; destroy one first (petri addons destroy), or ask the operator to raise ceilings.addonsPerOwner`,
      );
    }
    // The team's share, in this transaction: two creations at once cannot both take its last
    // add-on. The team as it is now (the app may have moved since the request read it).
    const team = await tx.selectFrom('apps').select('team_id').where('id', '=', app.id).executeTakeFirst();
    if (!team)
      throw new UserError('not_found', `app '${app.name}' not found; list your apps with 'petri apps'`);
    await assertWithinQuota(tx, team.team_id, quotas, {
      addons: 1,
      what: `a new ${fields.type} add-on '${fields.name}' of ${app.name}`,
    });
    const live = await tx
      .selectFrom('addons')
      .selectAll()
      .where('app_id', '=', app.id)
      .where('status', '!=', 'destroyed')
      .execute();
    const wanted = addonVarNames({ type: fields.type, env_var: fields.envVar });
    const clash = live.find(
      (a) => a.name === fields.name || addonVarNames(a).some((v) => wanted.includes(v)),
    );
    if (clash) {
      throw new UserError(
        'conflict',
        `'${app.name}' already has add-on '${clash.name}' (${clash.type}) as ${clash.env_var}; give the new one another name with --as NAME (it gets NAME_URL)`,
      );
    }
    const fresh = await tx
      .selectFrom('apps')
      .select('config_sealed')
      .where('id', '=', app.id)
      .executeTakeFirstOrThrow();
    const taken = wanted.find((v) => readConfig(secrets, fresh.config_sealed)[v] !== undefined);
    if (taken) {
      throw new UserError(
        'conflict',
        `'${app.name}' already has config var ${taken}; unset it first (petri config unset ${taken}) or attach with --as NAME`,
      );
    }
    const row = await tx
      .insertInto('addons')
      .values({
        app_id: app.id,
        app_name: app.name,
        name: fields.name,
        type: fields.type,
        env_var: fields.envVar,
        mode: fields.mode,
        resource: `pending_${Date.now()}_${Math.random().toString(36).slice(2)}`,
        status: 'provisioning',
        retiring_slot: null,
        retire_after_release_id: null,
        created_by: user.id,
        created_at: now(),
        destroyed_at: null,
        error: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return tx
      .updateTable('addons')
      .set({ resource: `${fields.resourcePrefix}_${row.id}` })
      .where('id', '=', row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

/** A release that sets (or with `url` undefined, removes) the add-on's config var. Returns
 * null when the app has no release yet: its first deploy takes the config along. */
async function releaseWithAddonVar(
  tx: Store,
  secrets: SecretBox,
  user: User,
  appId: number,
  vars: Record<string, string | undefined>,
  description: string,
  withRelease = true,
  refuseWhenBusy = true,
): Promise<Release | null> {
  const app = await tx.selectFrom('apps').selectAll().where('id', '=', appId).executeTakeFirst();
  if (!app) return null;
  const config = readConfig(secrets, app.config_sealed);
  for (const [key, value] of Object.entries(vars)) {
    if (value === undefined) delete config[key];
    else config[key] = value;
  }
  const sealed = sealConfig(secrets, config);
  await tx.updateTable('apps').set({ config_sealed: sealed }).where('id', '=', appId).execute();
  const base = app.desired_release_id
    ? await tx.selectFrom('releases').selectAll().where('id', '=', app.desired_release_id).executeTakeFirst()
    : undefined;
  if (!base || !withRelease) return null;
  if (!refuseWhenBusy) {
    // Removing a destroyed add-on's vars must not fail after its data is gone: with a
    // release on its way, the app's config loses them now and the next release with it.
    const pending = await tx
      .selectFrom('releases')
      .select('id')
      .where('app_id', '=', appId)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    if (pending) return null;
  }
  await assertNoReleaseInProgress(tx, app);
  return insertConfigRelease(tx, appId, user.id, base, { kind: 'addon', description, config_sealed: sealed });
}

/** The add-on's config vars: the URL, and Redis's key prefix (its `database`). */
function addonVars(addon: Addon, url: string, credentials: StoredCredentials): Record<string, string> {
  const [urlVar, prefixVar] = addonVarNames(addon);
  return prefixVar
    ? { [urlVar as string]: url, [prefixVar]: credentials.database }
    : { [urlVar as string]: url };
}

/** Provisioned: the add-on is ready and the app gets its URL in a new release. */
export async function attachAddon(
  db: Store,
  secrets: SecretBox,
  user: User,
  addon: Addon,
  credentials: StoredCredentials,
  url: string,
  ip?: string,
): Promise<{ addon: Addon; release: Release | null }> {
  return db.transaction().execute(async (tx) => {
    const release = await releaseWithAddonVar(
      tx,
      secrets,
      user,
      addon.app_id,
      addonVars(addon, url, credentials),
      `Attach ${addon.name} (${addon.type}) as ${addon.env_var}`,
    );
    const ready = await tx
      .updateTable('addons')
      .set({ status: 'ready', credentials_sealed: secrets.seal(JSON.stringify(credentials)) })
      .where('id', '=', addon.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actorOf(user, ip), 'addon.create', addon.app_name, {
      addon: addon.name,
      type: addon.type,
      env: addon.env_var,
    });
    return { addon: ready, release };
  });
}

/** A new password is in place: the app gets it in a new release, and the old login is
 * revoked once nothing of an earlier release runs (services/addons). */
export async function recordRotation(
  db: Store,
  secrets: SecretBox,
  user: User,
  addon: Addon,
  credentials: StoredCredentials,
  url: string,
  ip?: string,
): Promise<{ addon: Addon; release: Release | null }> {
  const old = readCredentials(secrets, addon);
  return db.transaction().execute(async (tx) => {
    const release = await releaseWithAddonVar(
      tx,
      secrets,
      user,
      addon.app_id,
      addonVars(addon, url, credentials),
      `Rotate credentials of ${addon.name}`,
    );
    const rotated = await tx
      .updateTable('addons')
      .set({
        credentials_sealed: secrets.seal(JSON.stringify(credentials)),
        retiring_slot: old.slot,
        // 0: no release of the app uses the old login, so it can go right away.
        retire_after_release_id: release?.id ?? 0,
      })
      .where('id', '=', addon.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actorOf(user, ip), 'addon.rotate', addon.app_name, { addon: addon.name });
    return { addon: rotated, release };
  });
}

export async function clearRetiringLogin(db: Store, addonId: number): Promise<void> {
  await db
    .updateTable('addons')
    .set({ retiring_slot: null, retire_after_release_id: null })
    .where('id', '=', addonId)
    .execute();
}

/** True once no instance of the app runs a release older than the rotation's (the old
 * password is then unused) and the app serves the rotation's release or a later one. */
export async function retiredLoginUnused(db: Store, addon: Addon): Promise<boolean> {
  const after = addon.retire_after_release_id ?? 0;
  if (after === 0) return true;
  const app = await db.selectFrom('apps').selectAll().where('id', '=', addon.app_id).executeTakeFirst();
  if (!app) return true;
  if ((app.serving_release_id ?? 0) < after) return false;
  const older = await db
    .selectFrom('instances')
    .select('id')
    .where('app_id', '=', addon.app_id)
    .where('release_id', '<', after)
    .executeTakeFirst();
  return !older;
}

export async function markDestroying(db: Store, addon: Addon): Promise<void> {
  await db.updateTable('addons').set({ status: 'destroying' }).where('id', '=', addon.id).execute();
}

/** Deprovisioned: the config var goes (a new release, when the app still exists) and its
 * backups are kept for the final retention period. */
export async function recordDestroyed(
  db: Store,
  secrets: SecretBox,
  user: User,
  addon: Addon,
  finalRetentionMs: number,
  ip?: string,
  /** false when the app goes too: no release for an app about to be destroyed. */
  withRelease = true,
): Promise<Release | null> {
  return db.transaction().execute(async (tx) => {
    const release = await releaseWithAddonVar(
      tx,
      secrets,
      user,
      addon.app_id,
      Object.fromEntries(addonVarNames(addon).map((v) => [v, undefined])),
      `Detach ${addon.name} (${addon.type})`,
      withRelease,
      false,
    );
    const at = now();
    await tx
      .updateTable('addons')
      .set({ status: 'destroyed', destroyed_at: at, credentials_sealed: '', retiring_slot: null })
      .where('id', '=', addon.id)
      .execute();
    const expires = new Date(Date.now() + finalRetentionMs).toISOString();
    await tx
      .updateTable('addon_backups')
      .set({ expires_at: expires })
      .where('addon_id', '=', addon.id)
      .where('status', '=', 'succeeded')
      .execute();
    await recordAudit(tx, actorOf(user, ip), 'addon.destroy', addon.app_name, {
      addon: addon.name,
      type: addon.type,
      keptUntil: expires,
    });
    return release;
  });
}

/** Refuses before any engine work when the app has a release on its way: the add-on's
 * change is a release of its own, and two at once are refused (as for config changes). */
export async function assertAppCanRelease(db: Store, appId: number): Promise<void> {
  const app = await db.selectFrom('apps').selectAll().where('id', '=', appId).executeTakeFirst();
  if (app) await assertNoReleaseInProgress(db, app);
}

/** The add-on with this id as it is now, whatever its state. */
export function addonById(db: Store, addonId: number): Promise<Addon | undefined> {
  return db.selectFrom('addons').selectAll().where('id', '=', addonId).executeTakeFirst();
}

/** Every add-on not yet destroyed: what upkeep looks after. */
export function listLiveAddons(db: Store): Promise<Addon[]> {
  return db.selectFrom('addons').selectAll().where('status', '!=', 'destroyed').execute();
}

/** The row of an add-on whose provisioning failed and left nothing behind on its server. */
export async function forgetAddon(db: Store, addonId: number): Promise<void> {
  await db.deleteFrom('addons').where('id', '=', addonId).execute();
}

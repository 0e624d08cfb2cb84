// Config vars: the app's environment, sealed at rest. A change is a new release (with the
// same slug) that the reconciler swaps in with zero downtime.
import { UserError } from '../lib/errors.js';
import type { SecretBox } from '../lib/secrets.js';
import type { Store } from '../store/db.js';
import type { App, Release, User } from '../store/schema.js';
import { addonVarNames } from './addon-vars.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { assertNoReleaseInProgress, insertConfigRelease } from './releases.js';
import { readConfig, sealConfig } from './sealed-config.js';

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by Petri for every process; the app cannot change them. */
const RESERVED = new Set(['PORT', 'HOME']);
const MAX_VALUE_BYTES = 32 * 1024;
/** Config vars per app, add-ons' included. Every var is a bwrap argument of every start, and
 * bwrap refuses past a few thousand (20,000 were accepted, then every release failed). */
export const MAX_CONFIG_VARS = 500;
/** Names and values of all of an app's config vars together, in bytes. */
export const MAX_CONFIG_BYTES = 64 * 1024;

export function validateConfigKey(key: string): void {
  if (!KEY.test(key)) {
    throw new UserError(
      'bad_request',
      `config key '${key}' is not a valid environment variable name (^[A-Za-z_][A-Za-z0-9_]*$)`,
    );
  }
  if (key.toUpperCase().startsWith('PETRI_')) {
    throw new UserError(
      'bad_request',
      `config key '${key}' is reserved: keys starting with PETRI_ are set by Petri`,
    );
  }
  if (RESERVED.has(key))
    throw new UserError(
      'bad_request',
      `config key '${key}' is reserved: Petri sets ${key} for every process`,
    );
}

export { readConfig, sealConfig } from './sealed-config.js';

/** Sets and unsets config vars; returns the new release, or null when the app has none yet
 * (the next deploy takes the config with it). */
export async function changeConfig(
  db: Store,
  secrets: SecretBox,
  user: User,
  app: App,
  set: Record<string, string>,
  unset: string[],
  ip?: string,
): Promise<Release | null> {
  for (const key of [...Object.keys(set), ...unset]) validateConfigKey(key);
  for (const [key, value] of Object.entries(set)) {
    if (value.includes('\0'))
      throw new UserError('bad_request', `config value of '${key}' contains a NUL byte`);
    if (Buffer.byteLength(value) > MAX_VALUE_BYTES) {
      throw new UserError('bad_request', `config value of '${key}' is over ${MAX_VALUE_BYTES / 1024} KiB`);
    }
  }
  if (Object.keys(set).length === 0 && unset.length === 0) {
    throw new UserError('bad_request', 'nothing to change: give config vars to set or unset');
  }
  await assertNotAddonVars(db, app, [...Object.keys(set), ...unset]);
  return db.transaction().execute(async (tx) => {
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
    const config = readConfig(secrets, fresh.config_sealed);
    const before = configSize(config);
    for (const key of unset) delete config[key];
    Object.assign(config, set);
    checkConfigSize(before, configSize(config));
    const sealed = sealConfig(secrets, config);
    await tx.updateTable('apps').set({ config_sealed: sealed }).where('id', '=', app.id).execute();
    // Keys only: values never reach the audit trail or any log.
    await recordAudit(tx, actorOf(user, ip), 'config.change', app.name, { set: Object.keys(set), unset });
    const base = fresh.desired_release_id
      ? await tx
          .selectFrom('releases')
          .selectAll()
          .where('id', '=', fresh.desired_release_id)
          .executeTakeFirst()
      : undefined;
    if (!base) return null;
    await assertNoReleaseInProgress(tx, fresh);
    return insertConfigRelease(tx, app.id, user.id, base, {
      kind: 'config',
      description: describeChange(Object.keys(set), unset),
      config_sealed: sealed,
    });
  });
}

function configSize(config: Record<string, string>): { count: number; bytes: number } {
  let bytes = 0;
  for (const [key, value] of Object.entries(config))
    bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  return { count: Object.keys(config).length, bytes };
}

/** Over a cap is refused, unless the change makes it smaller: a config over the caps (from
 * before they existed) can always be brought down. */
function checkConfigSize(
  before: { count: number; bytes: number },
  after: { count: number; bytes: number },
): void {
  if (after.count > MAX_CONFIG_VARS && after.count > before.count) {
    throw new UserError(
      'bad_request',
      `this change would make ${after.count} config vars; at most ${MAX_CONFIG_VARS} per app (add-ons' included): unset some, or keep related settings in one var (JSON)`,
    );
  }
  if (after.bytes > MAX_CONFIG_BYTES && after.bytes > before.bytes) {
    throw new UserError(
      'bad_request',
      `this change would make the config ${Math.ceil(after.bytes / 1024)} KiB (names and values); at most ${MAX_CONFIG_BYTES / 1024} KiB per app: keep large data in a file or an add-on`,
    );
  }
}

function describeChange(set: string[], unset: string[]): string {
  const parts: string[] = [];
  if (set.length > 0) parts.push(`Set ${set.join(', ')}`);
  if (unset.length > 0) parts.push(`${parts.length > 0 ? 'unset' : 'Unset'} ${unset.join(', ')}`);
  return parts.join('; ');
}

/** Config vars that belong to add-ons cannot be set or unset by hand. */
async function assertNotAddonVars(db: Store, app: App, keys: string[]): Promise<void> {
  const owned = await db
    .selectFrom('addons')
    .select(['name', 'type', 'env_var'])
    .where('app_id', '=', app.id)
    .where('status', '!=', 'destroyed')
    .execute();
  for (const key of keys) {
    const addon = owned.find((a) => addonVarNames(a).includes(key));
    if (addon) {
      throw new UserError(
        'conflict',
        `${key} belongs to add-on '${addon.name}'; it changes with 'petri addons rotate ${addon.name}' and goes with 'petri addons destroy ${addon.name}'`,
      );
    }
  }
}

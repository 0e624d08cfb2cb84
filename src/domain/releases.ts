// Releases: immutable (slug + config snapshot + process types), numbered v1, v2 ... per
// app. Every change that alters what runs (deploy, config, rollback) makes a new one and
// points the app's desired release at it; the reconciler makes it serve or fails it, and
// the previous release keeps serving until then.
import { UserError } from '../lib/errors.js';
import type { SecretBox } from '../lib/secrets.js';
import { now, type Store } from '../store/db.js';
import type { App, Release, ReleaseKind, User } from '../store/schema.js';
import { addonVarNames } from './addon-vars.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { readConfig, sealConfig } from './sealed-config.js';

export type ReleaseFields = Pick<
  Release,
  | 'slug_dir'
  | 'process_types'
  | 'runtime_env'
  | 'config_sealed'
  | 'release_command'
  | 'health_path'
  | 'egress'
> & {
  kind: ReleaseKind;
  description: string;
  deploy_id: string | null;
  /** The Node.js it runs on (the build's); absent or null: the host's. */
  node_version?: string | null;
};

type Tx = Store;

/** Inserts the next release and makes it the desired one, in the caller's transaction. */
export async function insertRelease(
  tx: Tx,
  appId: number,
  createdBy: number,
  fields: ReleaseFields,
): Promise<Release> {
  const last = await tx
    .selectFrom('releases')
    .select((eb) => eb.fn.max('version').as('v'))
    .where('app_id', '=', appId)
    .executeTakeFirst();
  const release = await tx
    .insertInto('releases')
    .values({
      app_id: appId,
      version: (last?.v ?? 0) + 1,
      created_by: createdBy,
      created_at: now(),
      status: 'pending',
      error: null,
      phase_status: fields.release_command ? 'pending' : 'none',
      phase_instance: null,
      phase_started_at: null,
      ...fields,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  // A new release is activity: the idle period starts again.
  await tx
    .updateTable('apps')
    .set({ desired_release_id: release.id, active_at: now() })
    .where('id', '=', appId)
    .execute();
  // A new release of a sleeping app wakes it: whoever deployed wants to see it serve.
  await tx
    .updateTable('apps')
    .set({ sleeping_since: null, woke_at: now() })
    .where('id', '=', appId)
    .where('sleeping_since', 'is not', null)
    .execute();
  return release;
}

/** A new release of the same build with another config (a config or add-on change). */
export function insertConfigRelease(
  tx: Tx,
  appId: number,
  createdBy: number,
  base: Release,
  change: { kind: ReleaseKind; description: string; config_sealed: string },
): Promise<Release> {
  return insertRelease(tx, appId, createdBy, {
    ...change,
    deploy_id: null,
    slug_dir: base.slug_dir,
    process_types: base.process_types,
    runtime_env: base.runtime_env,
    release_command: base.release_command,
    health_path: base.health_path,
    egress: base.egress,
    node_version: base.node_version,
  });
}

/** Config changes and rollbacks wait for nothing: they are refused while a release is on its way. */
export async function assertNoReleaseInProgress(tx: Tx, app: App): Promise<void> {
  const pending = await tx
    .selectFrom('releases')
    .select(['version', 'kind'])
    .where('app_id', '=', app.id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  if (pending) {
    throw new UserError(
      'conflict',
      `release v${pending.version} (${pending.kind}) of '${app.name}' is still in progress; try again when it serves or fails (petri releases)`,
    );
  }
}

export function listReleases(db: Store, app: App, limit = 50): Promise<Release[]> {
  return db
    .selectFrom('releases')
    .selectAll()
    .where('app_id', '=', app.id)
    .orderBy('version', 'desc')
    .limit(limit)
    .execute();
}

export function parseVersion(version: string): number {
  const m = /^v?([1-9][0-9]{0,8})$/.exec(version);
  if (!m) throw new UserError('bad_request', `release version must look like v3, got '${version}'`);
  return Number(m[1]);
}

export async function releaseByVersion(db: Store, app: App, version: string): Promise<Release> {
  const n = parseVersion(version);
  const release = await db
    .selectFrom('releases')
    .selectAll()
    .where('app_id', '=', app.id)
    .where('version', '=', n)
    .executeTakeFirst();
  if (!release)
    throw new UserError(
      'not_found',
      `release v${n} of '${app.name}' not found; list them with 'petri releases'`,
    );
  return release;
}

/** A new release from an old one's slug and config, with no rebuild. */
export async function rollback(
  db: Store,
  secrets: SecretBox,
  user: User,
  app: App,
  version?: string,
  ip?: string,
): Promise<Release> {
  return db.transaction().execute(async (tx) => {
    await assertNoReleaseInProgress(tx, app);
    const current = app.serving_release_id
      ? await tx
          .selectFrom('releases')
          .selectAll()
          .where('id', '=', app.serving_release_id)
          .executeTakeFirst()
      : undefined;
    if (!current) throw new UserError('conflict', `'${app.name}' has no serving release to roll back from`);
    let target: Release | undefined;
    if (version) {
      target = await releaseByVersion(tx, app, version);
      if (target.status !== 'succeeded') {
        throw new UserError(
          'bad_request',
          `v${target.version} never served (${target.status}); pick a release that did (petri releases)`,
        );
      }
    } else {
      target = await tx
        .selectFrom('releases')
        .selectAll()
        .where('app_id', '=', app.id)
        .where('status', '=', 'succeeded')
        .where('version', '<', current.version)
        .orderBy('version', 'desc')
        .executeTakeFirst();
      if (!target) throw new UserError('conflict', `'${app.name}' has no earlier release that served`);
    }
    const config = await withCurrentAddonVars(tx, secrets, app.id, target.config_sealed);
    const release = await insertRelease(tx, app.id, user.id, {
      kind: 'rollback',
      description: `Rollback to v${target.version}`,
      deploy_id: null,
      slug_dir: target.slug_dir,
      process_types: target.process_types,
      runtime_env: target.runtime_env,
      config_sealed: config,
      // The schema of the data moved on with later releases: a rollback does not migrate back.
      release_command: null,
      health_path: target.health_path,
      egress: target.egress,
      // The Node.js it was built on, whatever later releases moved to.
      node_version: target.node_version,
    });
    // Heroku's rollback restores the config too: the app's config is the release's again.
    await tx.updateTable('apps').set({ config_sealed: config }).where('id', '=', app.id).execute();
    await recordAudit(tx, actorOf(user, ip), 'release.rollback', app.name, {
      to: `v${target.version}`,
      as: `v${release.version}`,
    });
    return release;
  });
}

/** A release now serves: it succeeded, and so did its deploy. */
export async function markReleaseServing(db: Store, appId: number, releaseId: number): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await tx.updateTable('apps').set({ serving_release_id: releaseId }).where('id', '=', appId).execute();
    await tx.updateTable('releases').set({ status: 'succeeded' }).where('id', '=', releaseId).execute();
    await tx
      .updateTable('deploys')
      .set({ status: 'succeeded', finished_at: now() })
      .where('release_id', '=', releaseId)
      .where('status', '=', 'releasing')
      .execute();
  });
}

/** A release could not serve: it fails with the reason (and its deploy, if any), and the
 * app goes back to the release that serves. */
export async function failRelease(db: Store, releaseId: number, error: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const release = await tx
      .selectFrom('releases')
      .selectAll()
      .where('id', '=', releaseId)
      .executeTakeFirst();
    if (release?.status !== 'pending') return;
    await tx.updateTable('releases').set({ status: 'failed', error }).where('id', '=', releaseId).execute();
    await tx
      .updateTable('deploys')
      .set({ status: 'failed', error, finished_at: now() })
      .where('release_id', '=', releaseId)
      .where('status', '=', 'releasing')
      .execute();
    await tx
      .updateTable('apps')
      .set((eb) => ({ desired_release_id: eb.ref('serving_release_id') }))
      .where('id', '=', release.app_id)
      .where('desired_release_id', '=', releaseId)
      .execute();
  });
}

export function updateReleasePhase(
  db: Store,
  releaseId: number,
  changes: Partial<Pick<Release, 'phase_status' | 'phase_instance' | 'phase_started_at'>>,
): Promise<unknown> {
  return db.updateTable('releases').set(changes).where('id', '=', releaseId).execute();
}

/** A rollback takes an old release's config, but add-on URLs stay what they are now: an
 * old password may be revoked, an old add-on destroyed. Every name an add-on ever used
 * takes its current value (whoever set it since) or goes. Returns the sealed config. */
async function withCurrentAddonVars(
  tx: Tx,
  secrets: SecretBox,
  appId: number,
  sealed: string,
): Promise<string> {
  const addons = await tx
    .selectFrom('addons')
    .select(['type', 'env_var'])
    .where('app_id', '=', appId)
    .execute();
  if (addons.length === 0) return sealed;
  const app = await tx
    .selectFrom('apps')
    .select('config_sealed')
    .where('id', '=', appId)
    .executeTakeFirstOrThrow();
  const current = readConfig(secrets, app.config_sealed);
  const config = readConfig(secrets, sealed);
  for (const key of addons.flatMap(addonVarNames)) {
    const value = current[key];
    if (value === undefined) delete config[key];
    else config[key] = value;
  }
  return sealConfig(secrets, config);
}

/** Runtime ids of the release commands the store knows of (anything else running is an orphan). */
export async function releasePhaseInstances(db: Store): Promise<Set<string>> {
  const rows = await db
    .selectFrom('releases')
    .select('phase_instance')
    .where('phase_instance', 'is not', null)
    .execute();
  return new Set(rows.flatMap((r) => (r.phase_instance === null ? [] : [r.phase_instance])));
}

/** The release the app serves now, if any. */
export async function servingRelease(db: Store, app: App): Promise<Release | undefined> {
  if (app.serving_release_id === null) return undefined;
  return db.selectFrom('releases').selectAll().where('id', '=', app.serving_release_id).executeTakeFirst();
}

/** A release's version number, if the release exists. */
export async function releaseVersion(db: Store, releaseId: number): Promise<number | undefined> {
  const row = await db
    .selectFrom('releases')
    .select('version')
    .where('id', '=', releaseId)
    .executeTakeFirst();
  return row?.version;
}

/** Each release of an app's version number, by release id. */
export async function releaseVersionsOf(db: Store, appId: number): Promise<Map<number, number>> {
  const rows = await db
    .selectFrom('releases')
    .select(['id', 'version'])
    .where('app_id', '=', appId)
    .execute();
  return new Map(rows.map((r) => [r.id, r.version]));
}

/** Whether the release serves now, read afresh: the app row a request holds may predate a switch. */
export async function isServingRelease(db: Store, appId: number, releaseId: number): Promise<boolean> {
  const app = await db
    .selectFrom('apps')
    .select('serving_release_id')
    .where('id', '=', appId)
    .executeTakeFirst();
  return app?.serving_release_id === releaseId;
}

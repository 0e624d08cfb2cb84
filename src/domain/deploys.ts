// Deploys and releases. A deploy is queued with its uploaded source, built, then turned
// into an immutable release (v1, v2 ...) that becomes the app's desired release; the
// reconciler makes it serve and reports back here.
import type { Ceilings } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { App, Deploy, Release, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { newId } from './ids.js';
import { failRelease, insertRelease } from './releases.js';

export type ProcessTypes = Record<string, string>;

/** Queues a deploy whose source was unpacked under the id `id` (see newDeployId). */
export async function queueDeploy(
  db: Store,
  user: User,
  app: App,
  id: string,
  ip?: string,
  options: { noCache?: boolean } = {},
): Promise<Deploy> {
  const deploy = await db
    .insertInto('deploys')
    .values({
      id,
      app_id: app.id,
      no_cache: options.noCache ? 1 : 0,
      status: 'queued',
      error: null,
      release_id: null,
      created_by: user.id,
      created_at: now(),
      started_at: null,
      finished_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  await recordAudit(db, actorOf(user, ip), 'deploy.create', app.name, { deploy: deploy.id });
  return deploy;
}

export function newDeployId(): string {
  return newId('d');
}

export async function getDeploy(db: Store, app: App, id: string): Promise<Deploy> {
  const deploy = await db
    .selectFrom('deploys')
    .selectAll()
    .where('id', '=', id)
    .where('app_id', '=', app.id)
    .executeTakeFirst();
  if (!deploy) throw new UserError('not_found', `deploy '${id}' of app '${app.name}' not found`);
  return deploy;
}

/** Queued deploys that may start now: one build at a time per app and per owner, oldest
 * first. Per owner, so that one member's slow builds never hold every build slot while
 * other owners' deploys wait (issue 11). */
export async function deploysReadyToBuild(db: Store): Promise<Deploy[]> {
  // One change at a time per app: a build waits for the release before it to serve or fail.
  const busy = db
    .selectFrom('deploys as busy')
    .select('busy.app_id')
    .where('busy.status', 'in', ['building', 'releasing'])
    .union(db.selectFrom('releases').select('releases.app_id').where('releases.status', '=', 'pending'));
  const building = db
    .selectFrom('deploys as b')
    .innerJoin('apps as ba', 'ba.id', 'b.app_id')
    .select('ba.owner_id')
    .where('b.status', '=', 'building');
  const queued = await db
    .selectFrom('deploys')
    .innerJoin('apps', 'apps.id', 'deploys.app_id')
    .selectAll('deploys')
    .select('apps.owner_id')
    .where('deploys.status', '=', 'queued')
    .where('deploys.app_id', 'not in', busy)
    .where('apps.owner_id', 'not in', building)
    .orderBy('deploys.created_at')
    .execute();
  const apps = new Set<number>();
  const owners = new Set<number>();
  return queued
    .filter(
      (d) => !apps.has(d.app_id) && !owners.has(d.owner_id) && apps.add(d.app_id) && owners.add(d.owner_id),
    )
    .map(({ owner_id: _, ...deploy }) => deploy);
}

/** Claims a queued deploy for building; false when someone else already did. */
export async function claimDeploy(db: Store, id: string): Promise<boolean> {
  const result = await db
    .updateTable('deploys')
    .set({ status: 'building', started_at: now() })
    .where('id', '=', id)
    .where('status', '=', 'queued')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Creates the next release from a finished build (with the app's config as it is now)
 * and makes it the desired one, atomically. */
export async function releaseBuild(db: Store, deploy: Deploy, build: BuildResult): Promise<Release> {
  return db.transaction().execute(async (tx) => {
    const app = await tx
      .selectFrom('apps')
      .selectAll()
      .where('id', '=', deploy.app_id)
      .executeTakeFirstOrThrow();
    const release = await insertRelease(tx, app.id, deploy.created_by, {
      kind: 'deploy',
      description: `Deploy ${deploy.id}`,
      deploy_id: deploy.id,
      slug_dir: build.slugDir,
      process_types: JSON.stringify(build.processTypes),
      runtime_env: JSON.stringify(build.runtimeEnv),
      config_sealed: app.config_sealed,
      release_command: build.releaseCommand ?? null,
      health_path: build.healthPath ?? null,
      egress: JSON.stringify(build.egress ?? []),
      node_version: build.nodeVersion ?? null,
    });
    await tx
      .updateTable('deploys')
      .set({ status: 'releasing', release_id: release.id })
      .where('id', '=', deploy.id)
      .execute();
    return release;
  });
}

export interface BuildResult {
  slugDir: string;
  processTypes: ProcessTypes;
  runtimeEnv: Record<string, string>;
  releaseCommand?: string;
  healthPath?: string;
  egress?: string[];
  /** The Node.js version the build ran on (runtime cache); absent: the host's. */
  nodeVersion?: string;
}

/** Fails a deploy; if its release was about to serve, the release fails with it. */
export async function failDeploy(db: Store, deployId: string, error: string): Promise<void> {
  const deploy = await db.selectFrom('deploys').selectAll().where('id', '=', deployId).executeTakeFirst();
  if (!deploy || deploy.status === 'failed' || deploy.status === 'succeeded') return;
  if (deploy.release_id !== null) return failRelease(db, deploy.release_id, error);
  await db
    .updateTable('deploys')
    .set({ status: 'failed', error, finished_at: now() })
    .where('id', '=', deployId)
    .execute();
}

/** Deploys that were building when the control plane died cannot resume: say so. */
export async function failInterruptedBuilds(db: Store): Promise<Deploy[]> {
  const cut = await db.selectFrom('deploys').selectAll().where('status', '=', 'building').execute();
  for (const d of cut) {
    await failDeploy(db, d.id, 'the build was interrupted because petri server stopped; deploy again');
  }
  return cut;
}

export function latestDeploys(db: Store, app: App, limit = 20): Promise<Deploy[]> {
  return db
    .selectFrom('deploys')
    .selectAll()
    .where('app_id', '=', app.id)
    .orderBy('created_at', 'desc')
    .limit(limit)
    .execute();
}

/** The status of each of these deploys of the app that the store knows of. */
export async function deployStatuses(
  db: Store,
  appId: number,
  ids: string[],
): Promise<Map<string, Deploy['status']>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('deploys')
    .select(['id', 'status'])
    .where('app_id', '=', appId)
    .where('id', 'in', ids)
    .execute();
  return new Map(rows.map((d) => [d.id, d.status]));
}

/** Fails every queued deploy that a newer queued deploy of the same app makes pointless, as
 * Heroku does: only the newest source of an app waits to be built, so a member cannot park
 * sources on disk by queueing deploys behind a slow build. Returns them, for their sources
 * to be removed. */
export async function supersedeQueuedDeploys(db: Store): Promise<Pick<Deploy, 'id' | 'app_id'>[]> {
  return db.transaction().execute(async (tx) => {
    const queued = await tx
      .selectFrom('deploys')
      .select(['id', 'app_id', 'created_at'])
      .where('status', '=', 'queued')
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    const newest = new Map<number, string>();
    const superseded: Pick<Deploy, 'id' | 'app_id'>[] = [];
    for (const d of queued) {
      const by = newest.get(d.app_id);
      if (by === undefined) {
        newest.set(d.app_id, d.id);
        continue;
      }
      await tx
        .updateTable('deploys')
        .set({
          status: 'failed',
          error: `superseded by ${by}, a newer deploy of the same app`,
          finished_at: now(),
        })
        .where('id', '=', d.id)
        .where('status', '=', 'queued')
        .execute();
      superseded.push({ id: d.id, app_id: d.app_id });
    }
    return superseded;
  });
}

/** Refuses a new deploy (before its upload is unpacked) when the owner's other apps already
 * have as many deploys queued as ceilings.queuedDeploysPerOwner: each holds an unpacked
 * source on the host's disk until it is built. This app's own queued deploy does not count:
 * the new one supersedes it. */
export async function checkQueuedDeploys(
  db: Store,
  app: App,
  ceilings: Pick<Ceilings, 'queuedDeploysPerOwner'>,
): Promise<void> {
  const row = await db
    .selectFrom('deploys')
    .innerJoin('apps', 'apps.id', 'deploys.app_id')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('apps.owner_id', '=', app.owner_id)
    .where('deploys.app_id', '!=', app.id)
    .where('deploys.status', '=', 'queued')
    .executeTakeFirst();
  const n = Number(row?.n ?? 0);
  if (n >= ceilings.queuedDeploysPerOwner) {
    throw new UserError(
      'too_many_requests',
      `the apps of ${app.name}'s owner already have ${n} deploys queued, the ceiling of ${ceilings.queuedDeploysPerOwner} per owner (ceilings.queuedDeploysPerOwner); deploy again once one of them has been built`,
    );
  }
}

// Deploys and releases. A deploy is queued with its uploaded source, built, then turned
// into an immutable release (v1, v2 ...) that becomes the app's desired release; the
// reconciler makes it serve and reports back here.
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

/** Queued deploys that may start now: one build at a time per app, oldest first. */
export async function deploysReadyToBuild(db: Store): Promise<Deploy[]> {
  // One change at a time per app: a build waits for the release before it to serve or fail.
  const busy = db
    .selectFrom('deploys as busy')
    .select('busy.app_id')
    .where('busy.status', 'in', ['building', 'releasing'])
    .union(db.selectFrom('releases').select('releases.app_id').where('releases.status', '=', 'pending'));
  const queued = await db
    .selectFrom('deploys')
    .selectAll()
    .where('status', '=', 'queued')
    .where('app_id', 'not in', busy)
    .orderBy('created_at')
    .execute();
  const seen = new Set<number>();
  return queued.filter((d) => !seen.has(d.app_id) && seen.add(d.app_id));
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

// Graduation as the store sees it: the release a handoff bundle is made of, the names the
// bundle gives (owner, team, approver), and the move to the `graduating` stage, which
// suspends the app's expiry while a production team takes it over.
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import type { App, Release } from '../store/schema.js';
import type { Actor } from './audit.js';
import { recordAudit } from './audit.js';

/** The release a bundle is made of: the serving one, else the newest that served (an expired
 * or sleeping app runs nothing, and its last release is what it is). */
export async function releaseToGraduate(db: Store, app: App): Promise<Release> {
  if (app.stage === 'archived') {
    throw new UserError(
      'conflict',
      `${app.name} is archived: its build is gone, so there is nothing to hand off; its add-ons' final backups are with the admins ('petri addons download BACKUP')`,
    );
  }
  const serving =
    app.serving_release_id === null
      ? undefined
      : await db
          .selectFrom('releases')
          .selectAll()
          .where('id', '=', app.serving_release_id)
          .executeTakeFirst();
  const release =
    serving ??
    (await db
      .selectFrom('releases')
      .selectAll()
      .where('app_id', '=', app.id)
      .where('status', '=', 'succeeded')
      .orderBy('version', 'desc')
      .executeTakeFirst());
  if (!release) {
    throw new UserError(
      'conflict',
      `${app.name} has no release that served yet: deploy it ('petri deploy' or git push) and graduate it once it serves`,
    );
  }
  return release;
}

/** Who the bundle names: the owner, the team, and the admin who approved the data class. */
export async function graduationNames(
  db: Store,
  app: App,
): Promise<{ owner: string; team: string; approvedBy: string | null }> {
  const ids = [app.owner_id, ...(app.approved_by === null ? [] : [app.approved_by])];
  const [users, team] = await Promise.all([
    db.selectFrom('users').select(['id', 'name', 'email']).where('id', 'in', ids).execute(),
    db.selectFrom('teams').select('name').where('id', '=', app.team_id).executeTakeFirst(),
  ]);
  const who = (id: number | null) => {
    const u = users.find((x) => x.id === id);
    return u ? (u.email && u.email !== u.name ? `${u.name} (${u.email})` : u.name) : null;
  };
  return {
    owner: who(app.owner_id) ?? `user #${app.owner_id}`,
    team: team?.name ?? `team #${app.team_id}`,
    approvedBy: who(app.approved_by),
  };
}

/** Moves an experiment to `graduating` and records the handoff in the audit trail. Its
 * expiry is suspended until the handoff's deadline (`deadline`, lifecycle.maxDays from now,
 * kept in expires_at): the lifecycle loop takes it back to an expiring experiment, with the
 * usual warnings, unless an admin closes the handoff first (stage=graduated). expired_at is
 * cleared, so an app that had expired (only admins graduate one) serves again while the
 * production team takes it over. An app already graduating or graduated keeps its stage
 * and its deadline: a bundle can be made again. Returns the app as it is now. */
export async function markGraduating(
  db: Store,
  actor: Actor,
  app: App,
  detail: Record<string, unknown>,
  deadline: string,
): Promise<App> {
  return db.transaction().execute(async (tx) => {
    const moved = await tx
      .updateTable('apps')
      .set({ stage: 'graduating', expires_at: deadline, expired_at: null })
      .where('id', '=', app.id)
      .where('stage', '=', 'experiment')
      .returningAll()
      .executeTakeFirst();
    const now =
      moved ?? (await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow());
    await recordAudit(
      tx,
      actor,
      'app.graduate',
      app.name,
      {
        ...detail,
        stage: now.stage,
        ...(moved && {
          from: app.stage,
          expiresAt: app.expires_at,
          expiredAt: app.expired_at,
          handoffDeadline: deadline,
        }),
      },
      { app: app.name, teamId: app.team_id },
    );
    return now;
  });
}

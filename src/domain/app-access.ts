// Apps and teams as a caller may see them: by the teams they are in (platform admins and
// auditors see all). An app of a team the caller is not in answers exactly as a missing one.
import type { Store } from '../store/db.js';
import type { App, Team, TeamRole, User } from '../store/schema.js';
import { appNotFound, decide } from './access.js';

/** The app by name and the user's role in its team (null: not in it), in one query. */
export async function appWithRole(
  db: Store,
  userId: number,
  name: string,
): Promise<{ app: App; teamRole: TeamRole | null } | undefined> {
  const row = await db
    .selectFrom('apps')
    .leftJoin('team_members', (join) =>
      join.onRef('team_members.team_id', '=', 'apps.team_id').on('team_members.user_id', '=', userId),
    )
    .selectAll('apps')
    .select('team_members.role as team_role')
    .where('apps.name', '=', name)
    .executeTakeFirst();
  if (!row) return undefined;
  const { team_role, ...app } = row;
  return { app, teamRole: team_role };
}

/** The team by name and the user's role in it (null: not in it), in one query. */
export async function teamWithRole(
  db: Store,
  userId: number,
  name: string,
): Promise<{ team: Team; teamRole: TeamRole | null } | undefined> {
  const row = await db
    .selectFrom('teams')
    .leftJoin('team_members', (join) =>
      join.onRef('team_members.team_id', '=', 'teams.id').on('team_members.user_id', '=', userId),
    )
    .selectAll('teams')
    .select('team_members.role as team_role')
    .where('teams.name', '=', name)
    .executeTakeFirst();
  if (!row) return undefined;
  const { team_role, ...team } = row;
  return { team, teamRole: team_role };
}

/** The app by name, if the user may see it; otherwise the same not-found as a missing app. */
export async function getApp(db: Store, user: User, name: string): Promise<App> {
  const found = await appWithRole(db, user.id, name);
  if (!found || decide(user, 'app.read', found.teamRole) !== 'ok') throw appNotFound(name);
  return found.app;
}

/** The apps the user may see, by name: those of their teams (admins and auditors: all).
 * One query, however many teams and apps. */
export function listApps(db: Store, user: User): Promise<App[]> {
  let q = db.selectFrom('apps').selectAll().orderBy('name');
  if (decide(user, 'platform.read') !== 'ok') {
    q = q.where('team_id', 'in', (sub) =>
      sub.selectFrom('team_members').select('team_id').where('user_id', '=', user.id),
    );
  }
  return q.execute();
}

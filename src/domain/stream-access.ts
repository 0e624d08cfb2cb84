// Access to a long-lived request, decided again: a log follow, a deploy stream, a `petri run`
// session or a git push was let in by the API's access hook when it began, and may last
// minutes or hours. api/open-streams.ts asks here, periodically and when access changes,
// whether each may go on; `petri run` asks right before it starts its command.
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import { type Access, appNotFound, decide, refusal } from './access.js';

/** What a stream was let in as: who (through which token; null: git's hook ticket, whose
 * push was let in with one), which app (by id: a new app of the same name is another app),
 * and the level the route declared. */
export interface StreamGrant {
  userId: number;
  tokenId: number | null;
  appId: number;
  /** Named in the refusal. */
  appName: string;
  access: Access;
}

/** ok (with the app's team now), or why the stream must end. */
export type GrantCheck = { ok: true; teamId: number | null } | { ok: false; reason: UserError };

/**
 * Decides every grant again as the access hook would now: the token still valid (not
 * revoked, not expired), the user not disabled, the app still there (the same id), and the
 * user's role in its team (or their platform role) still enough for the level. Two small
 * queries for all of them, however many (their rows are the grants' users and tokens, and
 * the apps with those users' memberships in their teams: no cross product).
 */
export async function recheckGrants(db: Store, grants: StreamGrant[]): Promise<GrantCheck[]> {
  if (grants.length === 0) return [];
  const userIds = [...new Set(grants.map((g) => g.userId))];
  const appIds = [...new Set(grants.map((g) => g.appId))];
  // -1 matches no token: `in ()` is not SQL.
  const tokenIds = [...new Set(grants.flatMap((g) => (g.tokenId === null ? [] : [g.tokenId])))].concat(-1);
  const [people, apps] = await Promise.all([
    // Each user, with the tokens asked about (a row per token; one with nulls when none).
    db
      .selectFrom('users')
      .leftJoin('tokens', (join) =>
        join.onRef('tokens.user_id', '=', 'users.id').on('tokens.id', 'in', tokenIds),
      )
      .select([
        'users.id as userId',
        'users.role as role',
        'users.disabled_at as disabledAt',
        'tokens.id as tokenId',
        'tokens.revoked_at as revokedAt',
        'tokens.expires_at as expiresAt',
      ])
      .where('users.id', 'in', userIds)
      .execute(),
    // Each app, with the roles those users have in its team (a row per member among them).
    db
      .selectFrom('apps')
      .leftJoin('team_members', (join) =>
        join.onRef('team_members.team_id', '=', 'apps.team_id').on('team_members.user_id', 'in', userIds),
      )
      .select([
        'apps.id as appId',
        'apps.team_id as teamId',
        'team_members.user_id as memberId',
        'team_members.role as teamRole',
      ])
      .where('apps.id', 'in', appIds)
      .execute(),
  ]);
  const at = Date.now();
  const peopleBy = groupBy(people, (r) => r.userId);
  const appsBy = groupBy(apps, (r) => r.appId);
  return grants.map((grant): GrantCheck => {
    const rows = peopleBy.get(grant.userId) ?? [];
    const person = rows[0];
    if (!person) return { ok: false, reason: new UserError('unauthorized', 'your account no longer exists') };
    const user = { role: person.role, disabled_at: person.disabledAt };
    if (user.disabled_at !== null) return { ok: false, reason: refusal('unauthorized', grant.access, user) };
    if (grant.tokenId !== null) {
      const token = rows.find((r) => r.tokenId === grant.tokenId);
      if (!token) return { ok: false, reason: tokenGone('no longer exists') };
      if (token.revokedAt !== null) return { ok: false, reason: tokenGone('was revoked') };
      if (token.expiresAt !== null && Date.parse(token.expiresAt) <= at)
        return { ok: false, reason: tokenGone('expired') };
    }
    // A destroyed app is gone by its id, whatever now has its name.
    const appRows = appsBy.get(grant.appId) ?? [];
    const app = appRows[0];
    if (!app) return { ok: false, reason: appGone(grant.appName) };
    const teamRole = appRows.find((r) => r.memberId === grant.userId)?.teamRole ?? null;
    const decision = decide(user, grant.access, teamRole);
    if (decision === 'ok') return { ok: true, teamId: app.teamId };
    return { ok: false, reason: refusal(decision, grant.access, user, { app: grant.appName, teamRole }) };
  });
}

function groupBy<T, K>(rows: T[], key: (row: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const row of rows) {
    const group = groups.get(key(row));
    if (group) group.push(row);
    else groups.set(key(row), [row]);
  }
  return groups;
}

function tokenGone(what: string): UserError {
  return new UserError('unauthorized', `the token this began with ${what}; run 'petri login'`);
}

function appGone(name: string): UserError {
  const missing = appNotFound(name);
  return new UserError(missing.code, `app '${name}' was destroyed`);
}

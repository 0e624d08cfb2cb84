// Who may do what: the one place that decides. Every API route declares an access level;
// the API's hook (api/auth.ts) loads the app or team the route names and asks decide() with
// the caller's role in that team. Domain code that takes a team from a request's body
// (create an app in team T, transfer to T) asks requireTeamRole() the same question.
//
// | level          | meaning                                                        |
// | public         | anyone, signed in or not                                       |
// | signed-in      | any signed-in user (whoami, own tokens, create and list apps)  |
// | app.read       | viewers of the app's team and up; auditors                     |
// | app.write      | members of the app's team and up (deploy, config, scale ...)   |
// | app.secrets    | members and up: config values, add-on credentials, dumps       |
// | app.admin      | team admins (destroy, transfer)                                 |
// | team.read      | viewers of the team and up; auditors                           |
// | team.admin     | team admins (members)                                          |
// | platform.read  | auditors and admins (users, all audit, egress report)          |
// | platform.admin | admins (invite, disable, quotas, bots)                         |
//
// Platform admins may do everything. Someone outside the team (not an auditor) is answered
// as if the app or team did not exist (404), so its existence is not revealed; an auditor
// or a team member below the level needed is refused (403).
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import type { PlatformRole, TeamRole, User } from '../store/schema.js';

export const ACCESS_LEVELS = [
  'public',
  'signed-in',
  'app.read',
  'app.write',
  'app.secrets',
  'app.admin',
  'team.read',
  'team.admin',
  'platform.read',
  'platform.admin',
] as const;
export type Access = (typeof ACCESS_LEVELS)[number];

/** What decide() needs of the caller: null when nobody signed in. */
export type Principal = Pick<User, 'role' | 'disabled_at'> | null;

/** ok, or the refusal: 401 (sign in), 404 (as if missing), 403 (seen, not allowed). */
export type Decision = 'ok' | 'unauthorized' | 'not_found' | 'forbidden';

const TEAM_RANK: Record<TeamRole, number> = { viewer: 1, member: 2, admin: 3 };

/** The team role an app or team level needs; undefined for the other levels. */
export function teamRoleNeeded(access: Access): TeamRole | undefined {
  switch (access) {
    case 'app.read':
    case 'team.read':
      return 'viewer';
    case 'app.write':
    case 'app.secrets':
      return 'member';
    case 'app.admin':
    case 'team.admin':
      return 'admin';
    default:
      return undefined;
  }
}

/** Whether a level only reads (auditors may, wherever it is). */
function readsOnly(access: Access): boolean {
  return access === 'app.read' || access === 'team.read' || access === 'platform.read';
}

/**
 * The decision, a pure function: the caller (null: not signed in), the level the route
 * declares, and the caller's role in the team of the app or team the route names (null:
 * not a member; ignored by the levels that name no team).
 */
export function decide(principal: Principal, access: Access, teamRole: TeamRole | null = null): Decision {
  if (access === 'public') return 'ok';
  if (!principal || principal.disabled_at) return 'unauthorized';
  const platform: PlatformRole = principal.role;
  if (platform === 'admin') return 'ok';
  if (access === 'signed-in') return 'ok';
  if (access === 'platform.read') return platform === 'auditor' ? 'ok' : 'forbidden';
  if (access === 'platform.admin') return 'forbidden';
  const need = teamRoleNeeded(access);
  if (need && teamRole && TEAM_RANK[teamRole] >= TEAM_RANK[need]) return 'ok';
  if (platform === 'auditor') return readsOnly(access) ? 'ok' : 'forbidden';
  return teamRole ? 'forbidden' : 'not_found';
}

/** Whether the user may act at a level that names no app or team (platform.*, signed-in). */
export function allows(user: Principal, access: Access): boolean {
  return decide(user, access) === 'ok';
}

/** The user's role in the team, or null when they are not in it. */
export async function teamRoleOf(db: Store, userId: number, teamId: number): Promise<TeamRole | null> {
  const row = await db
    .selectFrom('team_members')
    .select('role')
    .where('team_id', '=', teamId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row?.role ?? null;
}

/** What each level lets one do, for refusals ("... needs member"). */
const DOING: Partial<Record<Access, string>> = {
  'app.write': 'changing the app',
  'app.secrets': "reading or restoring the app's secrets",
  'app.admin': 'destroying or transferring the app',
  'team.admin': "managing the team's members",
  'platform.read': 'this',
  'platform.admin': 'this',
};

/**
 * The refusal for a decision that is not ok, worded for the caller; `target` names what the
 * route names: an app (404 like a missing app) or a team (404 like a missing team).
 */
export function refusal(
  decision: Exclude<Decision, 'ok'>,
  access: Access,
  principal: Principal,
  target: { app?: string; team?: string; teamRole?: TeamRole | null } = {},
): UserError {
  if (decision === 'unauthorized') {
    return principal?.disabled_at
      ? new UserError('unauthorized', 'account disabled by an admin; ask an admin to enable it again')
      : new UserError(
          'unauthorized',
          "sign in first: send 'Authorization: Bearer TOKEN' (see 'petri login')",
        );
  }
  if (decision === 'not_found') {
    return target.app !== undefined ? appNotFound(target.app) : teamNotFound(target.team ?? '');
  }
  if (access === 'platform.read') {
    return new UserError('forbidden', 'this is for admins and auditors; ask an admin if you need it');
  }
  if (access === 'platform.admin') return new UserError('forbidden', 'this is for admins; ask an admin');
  const need = teamRoleNeeded(access) ?? 'admin';
  const what = DOING[access] ?? 'this';
  const where = target.app !== undefined ? `app '${target.app}'` : `team '${target.team ?? ''}'`;
  if (!target.teamRole && principal?.role === 'auditor') {
    return new UserError(
      'forbidden',
      `auditors read but do not change or see secrets: ${what} on ${where} is refused`,
    );
  }
  return new UserError(
    'forbidden',
    `${what} needs the ${need} role in the team of ${where}; you are a ${target.teamRole ?? 'non-member'}: ask one of its admins`,
  );
}

/** The answer for an app that does not exist, and for one the caller may not see. */
export function appNotFound(name: string): UserError {
  return new UserError('not_found', `app '${name}' not found; list your apps with 'petri apps'`);
}

/** The answer for a team that does not exist, and for one the caller is not in. */
export function teamNotFound(name: string): UserError {
  return new UserError('not_found', `team '${name}' not found; list your teams with 'petri teams'`);
}

/**
 * For domain code that takes a team from a request (create an app in team T, transfer to T):
 * throws unless `user`, whose role in the team is `role` (teamRoleOf; null: not in it), has
 * `need` there. Platform admins always may; outsiders get the team's not-found.
 */
export function requireTeamRole(
  user: Principal,
  role: TeamRole | null,
  need: TeamRole,
  teamName: string,
): void {
  const access: Access = need === 'viewer' ? 'team.read' : need === 'member' ? 'app.write' : 'team.admin';
  const decision = decide(user, access, role);
  if (decision === 'ok') return;
  if (decision === 'not_found') throw teamNotFound(teamName);
  if (decision === 'unauthorized') throw refusal(decision, access, user);
  throw new UserError(
    'forbidden',
    `this needs the ${need} role in team '${teamName}'; you are ${role ? `a ${role}` : 'not a member'}: ask one of its admins`,
  );
}

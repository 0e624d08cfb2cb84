// Teams: who is in which, with which role, and the rules that keep a team manageable (a
// team always has an admin; a personal team is its person's alone). Every app belongs to a
// team; its members' roles decide what they may do with its apps (see domain/access.ts).
import type { Quotas } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { App, Team, TeamRole, User } from '../store/schema.js';
import { requireTeamRole, teamNotFound, teamRoleOf } from './access.js';
import { type Actor, recordAudit } from './audit.js';
import { assertWithinQuota, desiredInstances, formatMiB, type TeamQuotas, teamQuotas } from './quotas.js';

export const TEAM_NAME_PATTERN = /^[a-z][a-z0-9-]{1,29}$/;
export const TEAM_ROLES: readonly TeamRole[] = ['admin', 'member', 'viewer'];

/** Platform admins and auditors see every team; everyone else the teams they are in. */
function seesAllTeams(user: User): boolean {
  return user.role === 'admin' || user.role === 'auditor';
}

function actor(user: User, ip?: string): Actor {
  return { name: user.name, ip: ip ?? null };
}

export function validateTeamName(name: unknown): string {
  if (typeof name !== 'string' || !TEAM_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? `'${name}'` : String(name);
    throw new UserError('bad_request', `team name must match ^[a-z][a-z0-9-]{1,29}$, got ${shown}`);
  }
  if (name.endsWith('-') || name.includes('--')) {
    throw new UserError('bad_request', `team name '${name}' must not end with '-' or contain '--'`);
  }
  return name;
}

export function findTeam(db: Store, name: string): Promise<Team | undefined> {
  return db.selectFrom('teams').selectAll().where('name', '=', name).executeTakeFirst();
}

/** The team by name if the user may see it (a member, or a platform admin or auditor);
 * otherwise the same not-found as a missing team, so its existence is not revealed. */
export async function visibleTeam(db: Store, user: User, name: string): Promise<Team> {
  const team = await findTeam(db, name);
  if (!team) throw teamNotFound(name);
  if (!seesAllTeams(user) && !(await teamRoleOf(db, user.id, team.id))) throw teamNotFound(name);
  return team;
}

/** Refuses (domain/access.ts decides) unless the user has at least `need` in the team. */
async function requireRole(db: Store, user: User, team: Team, need: TeamRole): Promise<void> {
  requireTeamRole(user, await teamRoleOf(db, user.id, team.id), need, team.name);
}

/** The team a new app goes to: the one named (the caller must be a member or admin of it,
 * or a platform admin), else the caller's personal team. */
export async function teamForNewApp(db: Store, user: User, name: string | undefined): Promise<Team> {
  if (name === undefined) {
    const personal = await db
      .selectFrom('teams')
      .selectAll()
      .where('personal_of', '=', user.id)
      .executeTakeFirst();
    if (!personal) {
      throw new UserError('bad_request', 'you have no personal team; name a team with --team (petri teams)');
    }
    return personal;
  }
  const team = await findTeam(db, name);
  if (!team) throw teamNotFound(name);
  await requireRole(db, user, team, 'member');
  return team;
}

export interface TeamSummary {
  team: Team;
  /** The caller's role; null when they are not in it (platform admins and auditors see all). */
  role: TeamRole | null;
  apps: number;
  members: number;
  /** The name of the person whose personal team it is. */
  personalOf: string | null;
}

/** The teams the user is in, or every team for platform admins and auditors; a few queries
 * whatever the number of teams. */
export async function listTeams(db: Store, user: User): Promise<TeamSummary[]> {
  const mine = await db
    .selectFrom('team_members')
    .select(['team_id', 'role'])
    .where('user_id', '=', user.id)
    .execute();
  const roleOf = new Map(mine.map((m) => [m.team_id, m.role]));
  let q = db.selectFrom('teams').selectAll().orderBy('name');
  if (!seesAllTeams(user)) {
    if (mine.length === 0) return [];
    q = q.where(
      'id',
      'in',
      mine.map((m) => m.team_id),
    );
  }
  const teams = await q.execute();
  const ids = teams.map((t) => t.id);
  if (ids.length === 0) return [];
  const [apps, members, people] = await Promise.all([
    db
      .selectFrom('apps')
      .select(['team_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('team_id', 'in', ids)
      .groupBy('team_id')
      .execute(),
    db
      .selectFrom('team_members')
      .select(['team_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('team_id', 'in', ids)
      .groupBy('team_id')
      .execute(),
    db
      .selectFrom('users')
      .select(['id', 'name'])
      .where('id', 'in', teams.flatMap((t) => (t.personal_of === null ? [] : [t.personal_of])).concat([-1]))
      .execute(),
  ]);
  const count = (rows: { team_id: number; n: number }[], id: number) =>
    Number(rows.find((r) => r.team_id === id)?.n ?? 0);
  const nameOf = new Map(people.map((p) => [p.id, p.name]));
  return teams.map((team) => ({
    team,
    role: roleOf.get(team.id) ?? null,
    apps: count(apps, team.id),
    members: count(members, team.id),
    personalOf: team.personal_of === null ? null : (nameOf.get(team.personal_of) ?? null),
  }));
}

/** A shared team; its creator is its first admin. A person who is not a platform admin may
 * be admin of at most `teamsPerPerson` shared teams (ceilings.teamsPerPerson). */
export async function createTeam(
  db: Store,
  user: User,
  name: unknown,
  ip?: string,
  teamsPerPerson = Number.POSITIVE_INFINITY,
): Promise<Team> {
  const teamName = validateTeamName(name);
  if (user.kind === 'bot') {
    throw new UserError(
      'forbidden',
      'service accounts cannot create teams; a person creates it and adds the bot',
    );
  }
  return db.transaction().execute(async (tx) => {
    if (await findTeam(tx, teamName)) {
      throw new UserError('conflict', `team '${teamName}' already exists; pick another name`);
    }
    if (user.role !== 'admin') {
      const led = await tx
        .selectFrom('team_members')
        .innerJoin('teams', 'teams.id', 'team_members.team_id')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('team_members.user_id', '=', user.id)
        .where('team_members.role', '=', 'admin')
        .where('teams.personal_of', 'is', null)
        .executeTakeFirstOrThrow();
      if (Number(led.n) >= teamsPerPerson) {
        throw new UserError(
          'bad_request',
          `you are already admin of ${led.n} teams, the ceiling of ${teamsPerPerson} per person (ceilings.teamsPerPerson); hand one over to another admin or use one of them`,
        );
      }
    }
    const at = now();
    const team = await tx
      .insertInto('teams')
      .values({ name: teamName, personal_of: null, created_at: at })
      .returningAll()
      .executeTakeFirstOrThrow();
    await tx
      .insertInto('team_members')
      .values({ team_id: team.id, user_id: user.id, role: 'admin', created_at: at })
      .execute();
    await recordAudit(tx, actor(user, ip), 'team.create', teamName);
    return team;
  });
}

export interface TeamMemberView {
  name: string;
  email: string | null;
  kind: 'person' | 'bot';
  role: TeamRole;
  disabled: boolean;
}

export interface TeamDetail {
  team: Team;
  role: TeamRole | null;
  personalOf: string | null;
  members: TeamMemberView[];
  apps: string[];
  quotas: TeamQuotas;
}

export async function teamDetail(db: Store, user: User, team: Team, defaults: Quotas): Promise<TeamDetail> {
  const [members, apps, quotas, owner] = await Promise.all([
    db
      .selectFrom('team_members')
      .innerJoin('users', 'users.id', 'team_members.user_id')
      .select(['users.name', 'users.email', 'users.kind', 'users.disabled_at', 'team_members.role'])
      .where('team_members.team_id', '=', team.id)
      .orderBy('users.name')
      .execute(),
    db.selectFrom('apps').select('name').where('team_id', '=', team.id).orderBy('name').execute(),
    teamQuotas(db, team, defaults),
    team.personal_of === null
      ? undefined
      : db.selectFrom('users').select('name').where('id', '=', team.personal_of).executeTakeFirst(),
  ]);
  return {
    team,
    role: await teamRoleOf(db, user.id, team.id),
    personalOf: owner?.name ?? null,
    members: members.map((m) => ({
      name: m.name,
      email: m.email,
      kind: m.kind,
      role: m.role,
      disabled: m.disabled_at !== null,
    })),
    apps: apps.map((a) => a.name),
    quotas,
  };
}

/** A person by e-mail (any case), or a bot (or an install's first admin, who has no e-mail)
 * by name. */
export async function userByEmail(db: Store, email: string): Promise<User | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb(eb.fn('lower', ['email']), '=', email.toLowerCase()),
        eb.and([eb('email', 'is', null), eb('name', '=', email)]),
      ]),
    )
    .executeTakeFirst();
}

/** Refuses a personal team as the place for anyone else: adding a member, an invitation
 * into it, a bot made in it (a personal team is its person's alone). */
export function refusePersonal(team: Pick<Team, 'name' | 'personal_of'>): void {
  if (team.personal_of !== null) {
    throw new UserError(
      'conflict',
      `team ${team.name} is a personal team, its person's alone; to share apps, create a team (petri teams create NAME), add people to it and move apps there (petri apps transfer APP --team NAME)`,
    );
  }
}

/** How many admins the team has, counted in the transaction that would remove one. */
async function adminCount(tx: Store, teamId: number): Promise<number> {
  const row = await tx
    .selectFrom('team_members')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('team_id', '=', teamId)
    .where('role', '=', 'admin')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Adds the person to the team with the role, or changes their role. A team admin or a
 * platform admin may; the person must exist (invited and signed in, or a bot). */
export async function setMember(
  db: Store,
  user: User,
  team: Team,
  email: string,
  role: TeamRole,
  ip?: string,
): Promise<{ member: TeamMemberView; previousRole: TeamRole | null }> {
  if (!TEAM_ROLES.includes(role)) {
    throw new UserError('bad_request', `role must be admin, member or viewer, got '${role}'`);
  }
  await requireRole(db, user, team, 'admin');
  refusePersonal(team);
  return db.transaction().execute(async (tx) => {
    const person = await userByEmail(tx, email);
    if (!person) {
      throw new UserError(
        'not_found',
        `no user ${email}: invite them first with 'petri users invite ${email} --team ${team.name}'`,
      );
    }
    const previous = await teamRoleOf(tx, person.id, team.id);
    // A bot belongs to the team it was made for: a team admin may change its role there, but
    // not take another team's bot (and with it that team's CI token) into their team. A
    // platform admin, who makes bots, may share one between teams.
    if (person.kind === 'bot' && previous === null && user.role !== 'admin') {
      throw new UserError(
        'forbidden',
        `bot ${person.name} belongs to another team; ask an admin for a bot of your own ('petri users create-bot NAME --team ${team.name}')`,
      );
    }
    // The last admin may not make themselves (or be made) anything less: nobody could
    // manage the team's people afterwards but a platform admin.
    if (previous === 'admin' && role !== 'admin' && (await adminCount(tx, team.id)) <= 1) {
      throw new UserError(
        'conflict',
        `${person.name} is the last admin of team ${team.name}; make someone else admin first`,
      );
    }
    await tx
      .insertInto('team_members')
      .values({ team_id: team.id, user_id: person.id, role, created_at: now() })
      .onConflict((oc) => oc.columns(['team_id', 'user_id']).doUpdateSet({ role }))
      .execute();
    await recordAudit(tx, actor(user, ip), previous ? 'team.member.role' : 'team.member.add', team.name, {
      member: person.name,
      role,
      ...(previous ? { was: previous } : {}),
    });
    return {
      member: {
        name: person.name,
        email: person.email,
        kind: person.kind,
        role,
        disabled: person.disabled_at !== null,
      },
      previousRole: previous,
    };
  });
}

/** Takes the person out of the team. A team admin or platform admin may take anyone; anyone
 * may leave; never the team's last admin. */
export async function removeMember(
  db: Store,
  user: User,
  team: Team,
  email: string,
  ip?: string,
): Promise<void> {
  const person = await userByEmail(db, email);
  if (!person || person.id !== user.id) {
    await requireRole(db, user, team, 'admin');
  }
  refusePersonal(team);
  await db.transaction().execute(async (tx) => {
    const role = person && (await teamRoleOf(tx, person.id, team.id));
    if (!person || !role) {
      throw new UserError(
        'not_found',
        `${email} is not in team ${team.name}; see its members with 'petri teams info ${team.name}'`,
      );
    }
    if (role === 'admin' && (await adminCount(tx, team.id)) <= 1) {
      throw new UserError(
        'conflict',
        `${person.name} is the last admin of team ${team.name}; make someone else admin first (petri teams add ${team.name} EMAIL --role admin)`,
      );
    }
    await tx
      .deleteFrom('team_members')
      .where('team_id', '=', team.id)
      .where('user_id', '=', person.id)
      .execute();
    await recordAudit(tx, actor(user, ip), 'team.member.remove', team.name, { member: person.name, role });
  });
}

/** Team names by id, for the views of many apps at once. */
export async function teamNames(db: Store, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('teams')
    .select(['id', 'name'])
    .where('id', 'in', [...new Set(ids)])
    .execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** Moves the app to another team (its owner stays): the caller must be an admin of the app's
 * team (the route's app.admin) and a member or admin of the target; the target's quotas must
 * hold the app, its instances and its add-ons. */
export async function transferApp(
  db: Store,
  user: User,
  app: App,
  teamName: string,
  defaults: Quotas,
  ip?: string,
): Promise<App> {
  const target = await findTeam(db, teamName);
  if (!target) throw teamNotFound(teamName);
  await requireRole(db, user, target, 'member');
  return db.transaction().execute(async (tx) => {
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirst();
    if (!fresh)
      throw new UserError('not_found', `app '${app.name}' not found; list your apps with 'petri apps'`);
    if (fresh.team_id === target.id) return fresh;
    const instances = await desiredInstances(tx, fresh.id);
    const addons = await tx
      .selectFrom('addons')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('app_id', '=', fresh.id)
      .where('status', '!=', 'destroyed')
      .executeTakeFirstOrThrow();
    await assertWithinQuota(tx, target.id, defaults, {
      apps: 1,
      memoryMiB: instances * fresh.memory_mib,
      addons: Number(addons.n),
      what: `${fresh.name} (${instances} instance${instances === 1 ? '' : 's'} at ${formatMiB(fresh.memory_mib)}, ${addons.n} add-on${Number(addons.n) === 1 ? '' : 's'})`,
    });
    const from = await tx
      .selectFrom('teams')
      .select('name')
      .where('id', '=', fresh.team_id)
      .executeTakeFirst();
    const moved = await tx
      .updateTable('apps')
      .set({ team_id: target.id })
      .where('id', '=', fresh.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actor(user, ip), 'app.transfer', fresh.name, {
      from: from?.name ?? null,
      to: target.name,
    });
    return moved;
  });
}

// People and bots as admins manage them: the list, disabling (which revokes every token of
// the user at once), platform roles, service accounts for CI, and who a token speaks for.
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { PlatformRole, TeamRole, Token, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { endGatePasses } from './audiences.js';
import { recordAudit } from './audit.js';
import { createUser, mintToken } from './auth.js';
import { refusePersonal } from './teams.js';
import { endWebSessionsOf } from './web-sessions.js';

export { normalizeEmail } from './emails.js';

/** A person by e-mail, or anyone by name (a bot, or the first admin of an install from
 * before e-mails, named 'admin'). */
export async function findUser(db: Store, who: string): Promise<User> {
  const key = who.trim();
  const user =
    (key.includes('@')
      ? await db.selectFrom('users').selectAll().where('email', '=', key.toLowerCase()).executeTakeFirst()
      : undefined) ?? (await db.selectFrom('users').selectAll().where('name', '=', key).executeTakeFirst());
  if (!user) throw new UserError('not_found', `no user '${who}'; list them with 'petri users'`);
  return user;
}

export interface UserSummary {
  user: User;
  /** Apps the user created (owns). */
  apps: number;
}

/** Everyone, people first then bots, each with how many apps they own. */
export async function listUsers(db: Store): Promise<UserSummary[]> {
  const [users, counts] = await Promise.all([
    db.selectFrom('users').selectAll().orderBy('kind', 'desc').orderBy('name').execute(),
    db
      .selectFrom('apps')
      .select(['owner_id', (eb) => eb.fn.countAll<number>().as('apps')])
      .groupBy('owner_id')
      .execute(),
  ]);
  const apps = new Map(counts.map((c) => [c.owner_id, Number(c.apps)]));
  return users.map((user) => ({ user, apps: apps.get(user.id) ?? 0 }));
}

/** How many apps the user created. */
export async function appCount(db: Store, userId: number): Promise<number> {
  const row = await db
    .selectFrom('apps')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('owner_id', '=', userId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** How a user is named in messages and the audit trail: the e-mail, else the name. */
export function userLabel(user: Pick<User, 'email' | 'name'>): string {
  return user.email ?? user.name;
}

/** Admins who can still act (not disabled), other than `except`. */
async function otherActiveAdmins(db: Store, except: number): Promise<number> {
  const row = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('role', '=', 'admin')
    .where('disabled_at', 'is', null)
    .where('id', '!=', except)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Revokes every live token of the user; answers how many. */
export async function revokeAllTokens(db: Store, userId: number): Promise<number> {
  // The browser's web sessions (the dashboard, the gate's SSO) end with the tokens.
  await endWebSessionsOf(db, userId);
  const result = await db
    .updateTable('tokens')
    .set({ revoked_at: now() })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Disables a user: every token and session of theirs is revoked in the same transaction,
 * and every gated app's key version is raised (their gate cookies end), so their next
 * request is refused. Never oneself, never the last admin. */
export async function disableUser(
  db: Store,
  actor: User,
  who: string,
  ip?: string,
): Promise<{ user: User; tokensRevoked: number }> {
  return db.transaction().execute(async (tx) => {
    const user = await findUser(tx, who);
    if (user.id === actor.id)
      throw new UserError('conflict', 'you cannot disable your own account; ask another admin');
    if (user.role === 'admin' && (await otherActiveAdmins(tx, user.id)) === 0)
      throw new UserError(
        'conflict',
        `${userLabel(user)} is the last admin; make someone else admin first ('petri users role EMAIL admin')`,
      );
    const tokensRevoked = await revokeAllTokens(tx, user.id);
    // Their gate cookies too (the caller nudges the reconciler, which tells the router).
    await endGatePasses(tx);
    const disabled = user.disabled_at ?? now();
    const updated = await tx
      .updateTable('users')
      .set({ disabled_at: disabled })
      .where('id', '=', user.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actorOf(actor, ip), 'user.disable', userLabel(user), {
      tokensRevoked,
      wasDisabled: user.disabled_at !== null,
    });
    return { user: updated, tokensRevoked };
  });
}

/** Lets a disabled user in again: they sign in anew (their old tokens stay revoked). */
export async function enableUser(db: Store, actor: User, who: string, ip?: string): Promise<User> {
  return db.transaction().execute(async (tx) => {
    const user = await findUser(tx, who);
    const updated = await tx
      .updateTable('users')
      .set({ disabled_at: null })
      .where('id', '=', user.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actorOf(actor, ip), 'user.enable', userLabel(user), {
      wasDisabled: user.disabled_at !== null,
    });
    return updated;
  });
}

/** Changes a person's platform role; never demotes the last admin, never a bot's role
 * (what a bot may do is its role in its team). */
export async function setPlatformRole(
  db: Store,
  actor: User,
  who: string,
  role: PlatformRole,
  ip?: string,
): Promise<User> {
  return db.transaction().execute(async (tx) => {
    const user = await findUser(tx, who);
    if (user.kind === 'bot')
      throw new UserError(
        'bad_request',
        `${user.name} is a bot: its platform role stays member; what it may do is its role in its team ('petri teams add TEAM ${user.name} --role ...')`,
      );
    if (user.role === 'admin' && role !== 'admin' && (await otherActiveAdmins(tx, user.id)) === 0)
      throw new UserError(
        'conflict',
        `${userLabel(user)} is the last admin; make someone else admin first ('petri users role EMAIL admin')`,
      );
    const updated = await tx
      .updateTable('users')
      .set({ role })
      .where('id', '=', user.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (user.role !== role)
      await recordAudit(tx, actorOf(actor, ip), 'user.role', userLabel(user), { from: user.role, to: role });
    return updated;
  });
}

export const BOT_NAME = /^[a-z][a-z0-9-]{1,39}$/;
/** Path words under /v1/users that a bot's name would shadow. */
const RESERVED_NAMES = new Set(['bots', 'invitations', 'admin', 'me']);

/** A service account for CI: a bot user in one team with a role there, and its token (shown
 * once). A bot never signs in; it has no e-mail, no password and no personal team. */
export async function createBot(
  db: Store,
  actor: User,
  input: {
    name: string;
    team: string;
    role: Extract<TeamRole, 'member' | 'viewer'>;
    expiresAt: string | null;
  },
  ip?: string,
): Promise<{ user: User; token: Token; secret: string }> {
  const { name } = input;
  if (!BOT_NAME.test(name) || RESERVED_NAMES.has(name))
    throw new UserError(
      'bad_request',
      `a bot's name is 2 to 40 lowercase letters, digits and dashes, starting with a letter (not bots, invitations, admin or me), got '${name}'`,
    );
  return db.transaction().execute(async (tx) => {
    const team = await tx
      .selectFrom('teams')
      .select(['id', 'name', 'personal_of'])
      .where('name', '=', input.team)
      .executeTakeFirst();
    if (!team) throw new UserError('not_found', `no team '${input.team}'; list them with 'petri teams'`);
    // A bot's team is shared: a personal team is its person's alone.
    refusePersonal(team);
    const taken = await tx.selectFrom('users').select('id').where('name', '=', name).executeTakeFirst();
    if (taken) throw new UserError('conflict', `a user named '${name}' exists already; choose another name`);
    const user = await createUser(tx, name, 'member', { kind: 'bot', provider: 'bot' });
    await tx
      .insertInto('team_members')
      .values({ team_id: team.id, user_id: user.id, role: input.role, created_at: now() })
      .execute();
    const { secret, token } = await mintToken(tx, user.id, `${name}'s token`, {
      kind: 'bot',
      expiresAt: input.expiresAt,
    });
    await recordAudit(tx, actorOf(actor, ip), 'user.create-bot', name, {
      team: input.team,
      role: input.role,
      token: token.id,
      expiresAt: input.expiresAt,
    });
    return { user, token, secret };
  });
}

/** The teams a user is in, with their role in each; the personal team first. */
export async function teamsOf(
  db: Store,
  userId: number,
): Promise<{ name: string; role: TeamRole; personal: boolean }[]> {
  const rows = await db
    .selectFrom('team_members')
    .innerJoin('teams', 'teams.id', 'team_members.team_id')
    .select(['teams.name', 'team_members.role', 'teams.personal_of'])
    .where('team_members.user_id', '=', userId)
    .orderBy('teams.name')
    .execute();
  return rows
    .map((r) => ({ name: r.name, role: r.role, personal: r.personal_of === userId }))
    .sort((a, b) => Number(b.personal) - Number(a.personal));
}

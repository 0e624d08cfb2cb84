// Accounts and API tokens. Tokens are random, shown once, and stored only as sha256 hashes.
import { createHash, randomBytes } from 'node:crypto';
import type { Insertable } from 'kysely';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { Token, User, UsersTable } from '../store/schema.js';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A user and their personal team (named after them), in one transaction. */
export async function createUser(
  db: Store,
  name: string,
  role: User['role'],
  more: Partial<
    Pick<Insertable<UsersTable>, 'email' | 'kind' | 'provider' | 'subject' | 'password_hash'>
  > = {},
): Promise<User> {
  const create = async (tx: Store) => {
    const at = now();
    const user = await tx
      .insertInto('users')
      .values({ name, role, created_at: at, ...more })
      .returningAll()
      .executeTakeFirstOrThrow();
    if (user.kind === 'bot') return user;
    const team = await tx
      .insertInto('teams')
      .values({ name: await freeTeamName(tx, name), personal_of: user.id, created_at: at })
      .returning('id')
      .executeTakeFirstOrThrow();
    await tx
      .insertInto('team_members')
      .values({ team_id: team.id, user_id: user.id, role: 'admin', created_at: at })
      .execute();
    return user;
  };
  return db.isTransaction ? create(db) : db.transaction().execute(create);
}

/** The name wanted for a personal team, or with -2, -3 ... when a team has it already. */
async function freeTeamName(db: Store, wanted: string): Promise<string> {
  const base =
    wanted
      .toLowerCase()
      .replace(/@.*$/, '')
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'team';
  for (let n = 1; ; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    const taken = await db.selectFrom('teams').select('id').where('name', '=', name).executeTakeFirst();
    if (!taken) return name;
  }
}

/** The personal team of a user (every person has one; made with the user). */
export async function personalTeamId(db: Store, userId: number): Promise<number> {
  const team = await db.selectFrom('teams').select('id').where('personal_of', '=', userId).executeTakeFirst();
  if (!team) throw new UserError('bad_request', 'you have no personal team; name a team with --team');
  return team.id;
}

export type TokenKind = Token['kind'];

export interface IssueOptions {
  /** api (the default): `petri tokens create` or the first start's; session: a sign-in's; bot: a service account's. */
  kind?: TokenKind;
  /** ISO time after which the token is refused; null or absent: it never expires. */
  expiresAt?: string | null;
  /** Sealed JSON of what re-checking the user with their provider needs (SSO sessions). */
  recheckSealed?: string | null;
}

/** Makes a new token for the user; answers it in clear (the only time it exists so) and its row. */
export async function mintToken(
  db: Store,
  userId: number,
  description: string,
  opts: IssueOptions = {},
): Promise<{ secret: string; token: Token }> {
  const secret = `petri_${randomBytes(24).toString('base64url')}`;
  const at = now();
  const token = await db
    .insertInto('tokens')
    .values({
      user_id: userId,
      hash: hashToken(secret),
      description,
      created_at: at,
      last_used_at: null,
      kind: opts.kind ?? 'api',
      expires_at: opts.expiresAt ?? null,
      // A session starts checked: its sign-in just asked the provider.
      checked_at: opts.kind === 'session' ? at : null,
      recheck_sealed: opts.recheckSealed ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { secret, token };
}

/** Makes a new token for the user and returns it in clear, the only time it exists so. */
export async function issueToken(
  db: Store,
  userId: number,
  description: string,
  opts: IssueOptions = {},
): Promise<string> {
  return (await mintToken(db, userId, description, opts)).secret;
}

/** How often a token's last use (and its user's last sighting) is written: a write per
 * request would cost every request a transaction; once a minute is enough to read. */
export const LAST_USED_EVERY_MS = 60_000;

/** Who a bearer token belongs to, and the token's row. Refuses an unknown, revoked or
 * expired token and a disabled user, each with its own message. */
export async function authenticate(
  db: Store,
  token: string | undefined,
): Promise<{ user: User; token: Token }> {
  if (!token) {
    throw new UserError(
      'unauthorized',
      "missing API token: send 'Authorization: Bearer TOKEN' (see 'petri login')",
    );
  }
  // One query on every request: the token and its user together.
  const joined = await db
    .selectFrom('tokens')
    .innerJoin('users', 'users.id', 'tokens.user_id')
    .selectAll('users')
    .select([
      'tokens.id as t_id',
      'tokens.hash as t_hash',
      'tokens.description as t_description',
      'tokens.created_at as t_created_at',
      'tokens.last_used_at as t_last_used_at',
      'tokens.kind as t_kind',
      'tokens.expires_at as t_expires_at',
      'tokens.checked_at as t_checked_at',
      'tokens.recheck_sealed as t_recheck_sealed',
      'tokens.revoked_at as t_revoked_at',
    ])
    .where('tokens.hash', '=', hashToken(token))
    .executeTakeFirst();
  if (!joined) throw new UserError('unauthorized', "invalid API token: log in again with 'petri login'");
  const {
    t_id,
    t_hash,
    t_description,
    t_created_at,
    t_last_used_at,
    t_kind,
    t_expires_at,
    t_checked_at,
    t_recheck_sealed,
    t_revoked_at,
    ...user
  } = joined;
  const row: Token = {
    id: t_id,
    user_id: user.id,
    hash: t_hash,
    description: t_description,
    created_at: t_created_at,
    last_used_at: t_last_used_at,
    kind: t_kind,
    expires_at: t_expires_at,
    checked_at: t_checked_at,
    recheck_sealed: t_recheck_sealed,
    revoked_at: t_revoked_at,
  };
  // The account first: a disabled user's tokens are revoked too, and this is the reason.
  if (user.disabled_at !== null)
    throw new UserError(
      'unauthorized',
      `your account was disabled by an admin on ${day(user.disabled_at)}; ask an admin to enable it ('petri users enable')`,
    );
  if (row.revoked_at !== null)
    throw new UserError('unauthorized', `this token was revoked on ${day(row.revoked_at)}; ${renewal(user)}`);
  const at = Date.now();
  if (row.expires_at !== null && Date.parse(row.expires_at) <= at)
    throw new UserError('unauthorized', `your token expired on ${day(row.expires_at)}; ${renewal(user)}`);
  if (row.last_used_at === null || at - Date.parse(row.last_used_at) >= LAST_USED_EVERY_MS) {
    const stamp = new Date(at).toISOString();
    await db.updateTable('tokens').set({ last_used_at: stamp }).where('id', '=', row.id).execute();
    await db.updateTable('users').set({ last_seen_at: stamp }).where('id', '=', user.id).execute();
    row.last_used_at = stamp;
    user.last_seen_at = stamp;
  }
  return { user, token: row };
}

/** What to do about a token that no longer works: people sign in again, a bot needs an
 * admin to make it a new token. */
function renewal(user: User): string {
  return user.kind === 'bot'
    ? `an admin makes this bot a new one with 'petri tokens create NAME --bot ${user.name}'`
    : "run 'petri login'";
}

/** The day of an ISO time (2027-03-01), as the messages say it. */
function day(iso: string): string {
  return iso.slice(0, 10);
}

/** On every start: on the very first, an admin account and its token (an api token that
 * never expires), which the caller writes out. `adminEmail` (config identity.adminEmail)
 * gives the first admin an e-mail, also on a later start of an install from before
 * e-mails, so their single sign-on finds the account instead of making a new one. */
export async function bootstrapAdmin(
  db: Store,
  opts: { adminEmail?: string } = {},
): Promise<string | undefined> {
  const email = opts.adminEmail?.trim().toLowerCase() || null;
  const existing = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (!existing) {
    const admin = await createUser(db, 'admin', 'admin', email ? { email } : {});
    return issueToken(db, admin.id, 'created at first start', { kind: 'api', expiresAt: null });
  }
  if (email) {
    const first = await db
      .selectFrom('users')
      .select(['id', 'email'])
      .where('role', '=', 'admin')
      .where('kind', '=', 'person')
      .orderBy('id')
      .executeTakeFirst();
    const taken = await db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst();
    if (first && first.email === null && !taken)
      await db.updateTable('users').set({ email }).where('id', '=', first.id).execute();
  }
  return undefined;
}

/** The user with this id, or the first admin when that account is gone: on whose behalf the
 * platform finishes what a user started. */
export async function userOrFirstAdmin(db: Store, userId: number): Promise<User | undefined> {
  return (
    (await db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst()) ??
    (await db.selectFrom('users').selectAll().where('role', '=', 'admin').orderBy('id').executeTakeFirst())
  );
}

/** A user's name, if the account still exists. */
export async function userName(db: Store, userId: number): Promise<string | undefined> {
  const row = await db.selectFrom('users').select('name').where('id', '=', userId).executeTakeFirst();
  return row?.name;
}

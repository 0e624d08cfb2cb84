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

/** Makes a new token for the user and returns it in clear, the only time it exists so. */
export async function issueToken(db: Store, userId: number, description: string): Promise<string> {
  const token = `petri_${randomBytes(24).toString('base64url')}`;
  await db
    .insertInto('tokens')
    .values({ user_id: userId, hash: hashToken(token), description, created_at: now(), last_used_at: null })
    .execute();
  return token;
}

/** Who a bearer token belongs to, and the token's row. */
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
  const row = await db
    .selectFrom('tokens')
    .selectAll()
    .where('hash', '=', hashToken(token))
    .executeTakeFirst();
  const user =
    row && (await db.selectFrom('users').selectAll().where('id', '=', row.user_id).executeTakeFirst());
  if (!row || !user)
    throw new UserError('unauthorized', "invalid API token: log in again with 'petri login'");
  return { user, token: row };
}

/** On the very first start: an admin account and its token, which the caller writes out. */
export async function bootstrapAdmin(db: Store): Promise<string | undefined> {
  const existing = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (existing) return undefined;
  const admin = await createUser(db, 'admin', 'admin');
  return issueToken(db, admin.id, 'created at first start');
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

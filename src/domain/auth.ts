// Accounts and API tokens. Tokens are random, shown once, and stored only as sha256 hashes.
import { createHash, randomBytes } from 'node:crypto';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { User } from '../store/schema.js';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export async function createUser(db: Store, name: string, role: User['role']): Promise<User> {
  return db
    .insertInto('users')
    .values({ name, role, created_at: now() })
    .returningAll()
    .executeTakeFirstOrThrow();
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

export async function authenticate(db: Store, token: string | undefined): Promise<User> {
  if (!token) {
    throw new UserError(
      'unauthorized',
      "missing API token: send 'Authorization: Bearer TOKEN' (see 'petri login')",
    );
  }
  const row = await db
    .selectFrom('tokens')
    .innerJoin('users', 'users.id', 'tokens.user_id')
    .select(['users.id', 'users.name', 'users.role', 'users.created_at', 'tokens.id as token_id'])
    .where('tokens.hash', '=', hashToken(token))
    .executeTakeFirst();
  if (!row) throw new UserError('unauthorized', "invalid API token: log in again with 'petri login'");
  return { id: row.id, name: row.name, role: row.role, created_at: row.created_at };
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

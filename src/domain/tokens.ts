// `petri tokens`: a user's own API tokens (for scripts and CI), listed without their
// secret, made with an expiry, revoked by id. Admins may list and revoke anyone's, and make
// a bot a new token.
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { Token, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { mintToken } from './auth.js';
import { findUser, userLabel } from './users.js';

export const DEFAULT_TOKEN_EXPIRY = '90d';
/** The longest a member's token may live; only admins make tokens that never expire. */
export const MEMBER_MAX_DAYS = 365;
/** Revoked and expired tokens are kept this long (their next use is told why it fails). */
const KEEP_DEAD_TOKENS_MS = 30 * 86_400_000;

const UNIT_MS: Record<string, number> = {
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

/** `90d`, `12h`, `4w`, `1y` or `never` to the token's expiry (ISO) or null. Only admins may
 * ask for never or for more than MEMBER_MAX_DAYS. */
export function parseExpiry(text: string, user: Pick<User, 'role'>, from = Date.now()): string | null {
  const value = text.trim().toLowerCase();
  const admin = user.role === 'admin';
  if (value === 'never') {
    if (!admin)
      throw new UserError(
        'forbidden',
        `only an admin may make a token that never expires; give --expires up to ${MEMBER_MAX_DAYS}d`,
      );
    return null;
  }
  const match = /^(\d{1,6})([hdwy])$/.exec(value);
  const ms = match ? Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? 0) : 0;
  if (!match || ms < 3_600_000 || ms > 100 * UNIT_MS.y!)
    throw new UserError(
      'bad_request',
      `--expires takes a duration like 90d, 12h, 4w or 1y (at least 1h)${admin ? ', or never' : ''}; got '${text}'`,
    );
  if (!admin && ms > MEMBER_MAX_DAYS * UNIT_MS.d!)
    throw new UserError(
      'forbidden',
      `a token may live at most ${MEMBER_MAX_DAYS}d (only an admin may make longer ones); got '${text}'`,
    );
  return new Date(from + ms).toISOString();
}

/** Live tokens of a user (revoked ones left out, expired ones kept a while), newest first.
 * `of` (an e-mail or a bot's name): someone else's, for admins and auditors. */
export async function listTokens(
  db: Store,
  user: User,
  of?: string,
): Promise<{ owner: User; tokens: Token[] }> {
  const owner = of === undefined ? user : await othersTokensOwner(db, user, of, 'list');
  const tokens = await db
    .selectFrom('tokens')
    .selectAll()
    .where('user_id', '=', owner.id)
    .where('revoked_at', 'is', null)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
  return { owner, tokens };
}

async function othersTokensOwner(db: Store, user: User, of: string, what: 'list' | 'create'): Promise<User> {
  // Who may name another user is decided before anyone is looked up: a member naming an
  // address gets the same answer whether it has an account or not (the list of people is
  // for admins and auditors, and reads are not audited, so a lookup first would let anyone
  // walk a list of addresses unseen).
  const allowed = what === 'list' ? user.role === 'admin' || user.role === 'auditor' : user.role === 'admin';
  if (!allowed && !namesSelf(user, of))
    throw new UserError(
      'forbidden',
      what === 'list'
        ? "only admins and auditors see other users' tokens; leave out --user for yours"
        : 'only an admin makes tokens for a bot; leave out --bot for a token of your own',
    );
  const owner = await findUser(db, of);
  if (owner.id === user.id) return owner;
  if (what === 'create' && owner.kind !== 'bot')
    throw new UserError(
      'bad_request',
      `${userLabel(owner)} is a person: people make their own tokens after 'petri login'; --bot names a bot`,
    );
  return owner;
}

/** Whether `of` names the user themself, as findUser would find them: their e-mail (any
 * case) or their name. */
function namesSelf(user: User, of: string): boolean {
  const key = of.trim();
  return (user.email !== null && key.toLowerCase() === user.email) || key === user.name;
}

/** Shown in lists and the audit trail: no control or format characters (a right-to-left
 * override would make one token read as another). */
const NAME = /^[^\p{Cc}\p{Cf}]{1,64}$/u;

/** A new api token for the user (or, from an admin, for a bot: kind bot), answered in clear once. */
export async function createToken(
  db: Store,
  user: User,
  input: { name: string; expires?: string; bot?: string; metrics?: boolean },
  ip?: string,
): Promise<{ owner: User; token: Token; secret: string }> {
  const name = input.name.trim();
  if (!NAME.test(name))
    throw new UserError('bad_request', 'a token name is 1 to 64 characters without control characters');
  // A bot's token cannot make more of itself: a leaked one would otherwise outlive its
  // revocation in tokens it made. Admins make a bot's tokens.
  if (user.kind === 'bot')
    throw new UserError(
      'forbidden',
      `a bot's tokens are made by an admin ('petri tokens create NAME --bot ${user.name}')`,
    );
  const owner = input.bot === undefined ? user : await othersTokensOwner(db, user, input.bot, 'create');
  const expiresAt = parseExpiry(input.expires ?? DEFAULT_TOKEN_EXPIRY, user);
  if (owner.disabled_at !== null)
    throw new UserError(
      'conflict',
      `${userLabel(owner)} is disabled; enable it first ('petri users enable')`,
    );
  // A metrics token reads what its owner's role may read at GET /metrics (platform.read).
  if (input.metrics && owner.role !== 'admin' && owner.role !== 'auditor') {
    throw new UserError(
      'forbidden',
      `a metrics token reads GET /metrics, which only platform admins and auditors may read; ${userLabel(owner)} is a ${owner.role}: ask an admin or an auditor to make it`,
    );
  }
  return db.transaction().execute(async (tx) => {
    await pruneDeadTokens(tx);
    const { token, secret } = await mintToken(tx, owner.id, name, {
      kind: input.metrics ? 'metrics' : owner.kind === 'bot' ? 'bot' : 'api',
      expiresAt,
    });
    await recordAudit(tx, actorOf(user, ip), 'token.create', userLabel(owner), {
      token: token.id,
      name,
      expiresAt,
      ...(input.metrics ? { metrics: true } : {}),
    });
    return { owner, token, secret };
  });
}

/** Revokes a token of one's own (an admin: anyone's); it is refused from its next use on.
 * Someone else's token answers 404 to a non-admin, as if it did not exist. */
export async function revokeToken(db: Store, user: User, id: number, ip?: string): Promise<Token> {
  return db.transaction().execute(async (tx) => {
    const token = await tx
      .selectFrom('tokens')
      .selectAll()
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!token || (token.user_id !== user.id && user.role !== 'admin'))
      throw new UserError('not_found', `you have no token ${id}; list yours with 'petri tokens'`);
    const revoked = await tx
      .updateTable('tokens')
      .set({ revoked_at: now() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const owner = await tx
      .selectFrom('users')
      .select(['name', 'email'])
      .where('id', '=', token.user_id)
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actorOf(user, ip), 'token.revoke', userLabel(owner), {
      token: id,
      name: token.description,
    });
    return revoked;
  });
}

/** Forgets tokens revoked or expired more than a month ago. */
export async function pruneDeadTokens(db: Store): Promise<void> {
  const before = new Date(Date.now() - KEEP_DEAD_TOKENS_MS).toISOString();
  await db
    .deleteFrom('tokens')
    .where((eb) => eb.or([eb('revoked_at', '<', before), eb('expires_at', '<', before)]))
    .execute();
}

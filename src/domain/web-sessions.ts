// A browser's sign-in on the API host (the dashboard, the audience gate's SSO): the
// petri_session cookie, of which the store keeps only the sha256, with the session's CSRF
// token and two ends: idle (12 h without a request) and absolute (7 days). The gate's
// single-use tickets, which carry a signed-in person from the API host to an app's host, live
// here too: they are made from a web session.
import { createHash, randomBytes } from 'node:crypto';
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import type { User } from '../store/schema.js';

/** The cookie (HttpOnly, SameSite=Lax, Path=/, host-only on the API host) over plain http. */
export const SESSION_COOKIE = 'petri_session';
/** Its name over https: a `__Host-` cookie is Secure, Path=/ and host-only, which browsers
 * enforce, so no other host (an app's, under the same parent domain) can set one. */
export const SECURE_SESSION_COOKIE = '__Host-petri_session';

/** The session cookie's name for a request that came over https or not (only that name
 * is read then). */
export function sessionCookieName(https: boolean): string {
  return https ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
}
/** A session with no request for this long ends. */
export const SESSION_IDLE_MS = 12 * 3600_000;
/** Whatever its use, a session ends this long after the sign-in. */
export const SESSION_MAX_MS = 7 * 86_400_000;
/** The idle end moves with use; written at most this often (a write per request is waste). */
const TOUCH_EVERY_MS = 60_000;
/** A ticket carries a visitor to the app's host: it is used within a redirect or two. */
export const TICKET_TTL_MS = 60_000;

export interface WebSession {
  id: number;
  userId: number;
  csrf: string;
  createdAt: string;
  /** When it ends if unused (the idle end), and at the latest (the absolute end). */
  idleEndsAt: string;
  expiresAt: string;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A new session for the user: the cookie's value (answered once, never stored) and its
 * CSRF token. Exported for tests (the dashboard's journeys start signed in with it). */
export async function createWebSession(
  db: Store,
  userId: number,
  description = 'web sign-in',
): Promise<{ cookie: string; csrf: string; session: WebSession }> {
  const cookie = `ps_${randomBytes(32).toString('base64url')}`;
  const csrf = randomBytes(24).toString('base64url');
  const at = Date.now();
  const created = new Date(at).toISOString();
  const expires = new Date(at + SESSION_MAX_MS).toISOString();
  // Sessions nobody ended (a closed browser) pile up otherwise: each sign-in sweeps the dead
  // ones, everyone's.
  await db
    .deleteFrom('web_sessions')
    .where((eb) =>
      eb.or([
        eb('expires_at', '<=', created),
        eb('last_used_at', '<=', new Date(at - SESSION_IDLE_MS).toISOString()),
      ]),
    )
    .execute();
  const row = await db
    .insertInto('web_sessions')
    .values({
      user_id: userId,
      token_hash: sha256(cookie),
      csrf,
      description: description.slice(0, 200),
      created_at: created,
      last_used_at: created,
      expires_at: expires,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  // A sign-in is a sighting: requests touch last_seen_at once a minute only, so without this
  // `petri users` and the Users page said "never" of someone signed in a moment ago.
  await db.updateTable('users').set({ last_seen_at: created }).where('id', '=', userId).execute();
  return {
    cookie,
    csrf,
    session: {
      id: row.id,
      userId,
      csrf,
      createdAt: created,
      idleEndsAt: new Date(at + SESSION_IDLE_MS).toISOString(),
      expiresAt: expires,
    },
  };
}

/** The session and its user for a cookie's value, or a refusal that says why (unknown or
 * signed out, idle too long, past its end, a disabled account). Moves the idle end. */
export async function authenticateWebSession(
  db: Store,
  cookie: string,
  nowMs = Date.now(),
): Promise<{ user: User; session: WebSession }> {
  const joined = await db
    .selectFrom('web_sessions')
    .innerJoin('users', 'users.id', 'web_sessions.user_id')
    .selectAll('users')
    .select([
      'web_sessions.id as s_id',
      'web_sessions.csrf as s_csrf',
      'web_sessions.created_at as s_created_at',
      'web_sessions.last_used_at as s_last_used_at',
      'web_sessions.expires_at as s_expires_at',
    ])
    .where('web_sessions.token_hash', '=', sha256(cookie))
    .executeTakeFirst();
  if (!joined) {
    throw new UserError(
      'unauthorized',
      'you are signed out (or your session ended); sign in again at /login',
    );
  }
  const { s_id, s_csrf, s_created_at, s_last_used_at, s_expires_at, ...user } = joined;
  if (user.disabled_at !== null) {
    throw new UserError(
      'unauthorized',
      `your account was disabled by an admin on ${user.disabled_at.slice(0, 10)}; ask an admin to enable it ('petri users enable')`,
    );
  }
  const lastUsed = Date.parse(s_last_used_at);
  if (Date.parse(s_expires_at) <= nowMs || lastUsed + SESSION_IDLE_MS <= nowMs) {
    await db.deleteFrom('web_sessions').where('id', '=', s_id).execute();
    throw new UserError('unauthorized', 'your session ended; sign in again at /login');
  }
  let touched = lastUsed;
  if (nowMs - lastUsed >= TOUCH_EVERY_MS) {
    const stamp = new Date(nowMs).toISOString();
    await db.updateTable('web_sessions').set({ last_used_at: stamp }).where('id', '=', s_id).execute();
    await db.updateTable('users').set({ last_seen_at: stamp }).where('id', '=', user.id).execute();
    touched = nowMs;
  }
  return {
    user,
    session: {
      id: s_id,
      userId: user.id,
      csrf: s_csrf,
      createdAt: s_created_at,
      idleEndsAt: new Date(Math.min(touched + SESSION_IDLE_MS, Date.parse(s_expires_at))).toISOString(),
      expiresAt: s_expires_at,
    },
  };
}

/** Signs a browser out: its session is gone. */
export async function endWebSession(db: Store, cookie: string): Promise<void> {
  await db.deleteFrom('web_sessions').where('token_hash', '=', sha256(cookie)).execute();
}

/** Every web session of a user ends (their tokens were revoked, they were disabled). */
export async function endWebSessionsOf(db: Store, userId: number): Promise<number> {
  const res = await db.deleteFrom('web_sessions').where('user_id', '=', userId).executeTakeFirst();
  return Number(res.numDeletedRows);
}

/** A single-use ticket to the app for the signed-in user (the gate's SSO): the ticket in
 * clear, answered once; only its hash is kept, for TICKET_TTL_MS. The hash covers the app's
 * audience key version too: a ticket issued before a change that ends the app's cookies (an
 * invitee removed, the audience changed) is not redeemed after it. */
export async function issueGateTicket(
  db: Store,
  appId: number,
  userId: number,
  keyVersion: number,
  nowMs = Date.now(),
): Promise<string> {
  const ticket = randomBytes(32).toString('base64url');
  // Tickets nobody redeemed (a closed tab) are swept by the next one.
  await db.deleteFrom('gate_tickets').where('expires_at', '<=', new Date(nowMs).toISOString()).execute();
  await db
    .insertInto('gate_tickets')
    .values({
      hash: ticketHash(ticket, keyVersion),
      app_id: appId,
      user_id: userId,
      expires_at: new Date(nowMs + TICKET_TTL_MS).toISOString(),
    })
    .execute();
  return ticket;
}

/** Redeems a ticket for this app: the user it was made for, once. A replay, another app's
 * ticket or an expired one answers undefined (and an expired or other app's is not used up
 * by the attempt: it only ever works where it was meant to, within its minute). */
export async function redeemGateTicket(
  db: Store,
  app: { id: number; audience_key_version: number },
  ticket: string,
  nowMs = Date.now(),
): Promise<User | undefined> {
  const appId = app.id;
  if (!/^[A-Za-z0-9_-]{20,100}$/.test(ticket)) return undefined;
  const gone = await db
    .deleteFrom('gate_tickets')
    .where('hash', '=', ticketHash(ticket, app.audience_key_version))
    .where('app_id', '=', appId)
    .where('expires_at', '>', new Date(nowMs).toISOString())
    .returning('user_id')
    .executeTakeFirst();
  if (!gone) return undefined;
  return db.selectFrom('users').selectAll().where('id', '=', gone.user_id).executeTakeFirst();
}

function ticketHash(ticket: string, keyVersion: number): string {
  return sha256(`${ticket} kv ${keyVersion}`);
}

// Who may reach an app (issue 15): its audience (public, staff, invite), the people an
// invite app lets in by e-mail, its invite links, and the visitors' consents to its notice.
// The rules live here: the API and petri.toml (at deploy) change an audience through these
// functions, and the gate (src/gate/) asks them who may pass. Every change that must
// end the visitors' cookies raises apps.audience_key_version (the cookie names the version
// it was signed for); a change of what the notice says raises apps.notice_version too
// (domain/experiments.ts).
import { createHash, randomBytes } from 'node:crypto';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { App, Audience, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { type Actor, recordAudit } from './audit.js';
import { normalizeEmail } from './emails.js';
import { DAY_MS, parsePeriod } from './lifecycle.js';

export const AUDIENCES: readonly Audience[] = ['public', 'staff', 'invite'];
/** Data that makes going public an admin's decision. */
const PERSONAL = new Set(['personal', 'sensitive']);

/** E-mails one `petri audience invite` may add, and an app's list at most. */
export const INVITE_BATCH_MAX = 100;
export const INVITEES_MAX = 5000;
/** An invite link lets in at most this many people, for at most this long. */
export const LINK_USES_MAX = 10_000;
export const LINK_USES_DEFAULT = 50;
export const LINK_DAYS_MAX = 90;
export const LINK_EXPIRES_DEFAULT = '7d';
/** Live links per app: each is a way in, and the list must stay readable. */
export const LINKS_MAX = 100;
/** The visitors list answers the newest this many. */
export const VISITORS_MAX = 1000;

export function parseAudience(value: unknown, field = 'audience'): Audience {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (typeof text === 'string' && (AUDIENCES as readonly string[]).includes(text)) return text as Audience;
  const shown = typeof value === 'string' ? `'${value.slice(0, 40)}'` : JSON.stringify(value ?? null);
  throw new UserError('bad_request', `${field} must be one of staff, invite or public, got ${shown}`);
}

/** An invitee's e-mail: an address of printable ASCII only, since it travels to the app in
 * the X-Petri-User header (no control characters, no line breaks, no bidi tricks). */
export function parseInviteeEmail(raw: unknown): string {
  if (typeof raw !== 'string' || !/^[\x21-\x7e]+$/.test(raw.trim())) {
    const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 60)) : JSON.stringify(raw ?? null);
    throw new UserError(
      'bad_request',
      `${shown} is not an e-mail address like ana@example.org (plain ASCII, no spaces)`,
    );
  }
  return normalizeEmail(raw);
}

export function hashLinkSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export interface Invitee {
  email: string;
  invitedBy: string | null;
  invitedAt: string;
}

export interface AudienceView {
  app: string;
  audience: Audience;
  noticeVersion: number;
  keyVersion: number;
  invitees: Invitee[];
}

/** What `petri audience` shows: the audience and the people on its list. */
export async function audienceOf(db: Store, app: App): Promise<AudienceView> {
  const fresh = await db.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
  const invitees = await db
    .selectFrom('audience_invitees')
    .leftJoin('users', 'users.id', 'audience_invitees.invited_by')
    .select([
      'audience_invitees.email as email',
      'audience_invitees.created_at as invitedAt',
      'users.email as byEmail',
      'users.name as byName',
    ])
    .where('audience_invitees.app_id', '=', app.id)
    .orderBy('audience_invitees.email')
    .execute();
  return {
    app: fresh.name,
    audience: fresh.audience,
    noticeVersion: fresh.notice_version,
    keyVersion: fresh.audience_key_version,
    invitees: invitees.map((i) => ({
      email: i.email,
      invitedBy: i.byEmail ?? i.byName ?? null,
      invitedAt: i.invitedAt,
    })),
  };
}

async function freshApp(tx: Store, app: App): Promise<App> {
  const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
  if (fresh.stage === 'archived') {
    throw new UserError(
      'conflict',
      `'${app.name}' is archived: its name stays reserved to its team, nothing else changes`,
    );
  }
  return fresh;
}

function bumpKey(tx: Store, appId: number) {
  return tx
    .updateTable('apps')
    .set((eb) => ({ audience_key_version: eb('audience_key_version', '+', 1) }))
    .where('id', '=', appId)
    .execute();
}

/** Ends every gate cookie of the gated apps (an audience other than public, or awaiting an
 * admin's review), or of one team's: a person disabled or taken off a team is refused at
 * their next request rather than when their 12-hour cookie runs out. Everyone else with a
 * live web session (or an invite link's way back) comes through again in a few redirects.
 * The caller nudges the reconciler, which pushes the new keys to the router. */
export async function endGatePasses(tx: Store, teamId?: number): Promise<number> {
  let query = tx
    .updateTable('apps')
    .set((eb) => ({ audience_key_version: eb('audience_key_version', '+', 1) }))
    .where((eb) =>
      eb.or([
        eb('audience', '!=', 'public'),
        eb.and([
          eb('data_class', '=', 'sensitive'),
          eb.or([eb('approved_class', 'is', null), eb('approved_class', '!=', 'sensitive')]),
        ]),
      ]),
    );
  if (teamId !== undefined) query = query.where('team_id', '=', teamId);
  const res = await query.executeTakeFirst();
  return Number(res.numUpdatedRows);
}

/** Ends every gate cookie of one app (a visitor left: their pass in other browsers ends). */
export async function endAppPasses(db: Store, appId: number): Promise<void> {
  await bumpKey(db, appId);
}

const scope = (app: App) => ({ app: app.name, teamId: app.team_id });

/**
 * `petri audience set public|staff|invite`: a change ends every visitor's cookie. Going
 * public with personal or sensitive data is an admin's decision, given with approve (the
 * audit event says so).
 */
export async function setAudience(
  db: Store,
  user: User,
  app: App,
  value: unknown,
  opts: { approve?: boolean; ip?: string } = {},
): Promise<AudienceView> {
  const audience = parseAudience(value);
  if (opts.approve && user.role !== 'admin') {
    throw new UserError(
      'forbidden',
      `--approve is for platform admins; ask one to make '${app.name}' public`,
    );
  }
  await db.transaction().execute(async (tx) => {
    const fresh = await freshApp(tx, app);
    if (fresh.audience === audience) return;
    const personal = PERSONAL.has(fresh.data_class);
    if (audience === 'public' && personal && !opts.approve) {
      throw new UserError(
        'forbidden',
        user.role === 'admin'
          ? `'${app.name}' holds ${fresh.data_class} data: making it public is an admin's approval; run 'petri audience set public --approve --app ${app.name}' (audited)`
          : `'${app.name}' holds ${fresh.data_class} data: only an admin may make it public; ask one to run 'petri audience set public --approve --app ${app.name}'`,
      );
    }
    await tx
      .updateTable('apps')
      .set((eb) => ({ audience, audience_key_version: eb('audience_key_version', '+', 1) }))
      .where('id', '=', app.id)
      .execute();
    const detail: Record<string, unknown> = { from: fresh.audience, to: audience };
    if (audience === 'public' && personal) {
      detail.approved = true;
      detail.data = fresh.data_class;
    }
    await recordAudit(tx, actorOf(user, opts.ip), 'app.audience', app.name, detail, scope(app));
  });
  return audienceOf(db, app);
}

/** `petri audience invite EMAIL...`: adds the people not on the list yet. */
export async function inviteToAudience(
  db: Store,
  user: User,
  app: App,
  emails: unknown[],
  ip?: string,
): Promise<{ view: AudienceView; added: string[] }> {
  if (emails.length === 0) throw new UserError('bad_request', 'give at least one e-mail address to invite');
  if (emails.length > INVITE_BATCH_MAX) {
    throw new UserError(
      'bad_request',
      `${emails.length} addresses at once; invite at most ${INVITE_BATCH_MAX} per command`,
    );
  }
  const wanted = [...new Set(emails.map(parseInviteeEmail))];
  const added = await db.transaction().execute(async (tx) => {
    await freshApp(tx, app);
    const have = new Set(
      (
        await tx
          .selectFrom('audience_invitees')
          .select('email')
          .where('app_id', '=', app.id)
          .where('email', 'in', wanted)
          .execute()
      ).map((r) => r.email),
    );
    const fresh = wanted.filter((e) => !have.has(e));
    if (fresh.length === 0) return [];
    const count = await tx
      .selectFrom('audience_invitees')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('app_id', '=', app.id)
      .executeTakeFirst();
    if (Number(count?.n ?? 0) + fresh.length > INVITEES_MAX) {
      throw new UserError(
        'bad_request',
        `'${app.name}' would have more than ${INVITEES_MAX} invitees; remove some, or use an invite link ('petri audience links create')`,
      );
    }
    const at = now();
    await tx
      .insertInto('audience_invitees')
      .values(fresh.map((email) => ({ app_id: app.id, email, invited_by: user.id, created_at: at })))
      .execute();
    await recordAudit(tx, actorOf(user, ip), 'app.audience.invite', app.name, { emails: fresh }, scope(app));
    return fresh;
  });
  return { view: await audienceOf(db, app), added };
}

/** `petri audience invite EMAIL... --link`: each invitee's personal single-use sign-in link,
 * for people outside the organisation (no account needed): it lets in that e-mail only,
 * once, for 7 days, while they are on the list. The secrets are answered once. */
export async function personalLinks(
  db: Store,
  user: User,
  app: App,
  emails: unknown[],
  ip?: string,
): Promise<Array<{ email: string; secret: string; expiresAt: string }>> {
  const out: Array<{ email: string; secret: string; expiresAt: string }> = [];
  for (const email of new Set(emails.map(parseInviteeEmail))) {
    const { link, secret } = await createLink(db, user, app, { email }, ip);
    out.push({ email, secret, expiresAt: link.expiresAt });
  }
  return out;
}

/** `petri audience remove EMAIL`: off the list, and every cookie of the app ends (so theirs). */
export async function removeFromAudience(
  db: Store,
  user: User,
  app: App,
  raw: string,
  ip?: string,
): Promise<AudienceView> {
  const email = parseInviteeEmail(raw);
  await db.transaction().execute(async (tx) => {
    await freshApp(tx, app);
    const gone = await tx
      .deleteFrom('audience_invitees')
      .where('app_id', '=', app.id)
      .where('email', '=', email)
      .executeTakeFirst();
    if (Number(gone.numDeletedRows) === 0) {
      throw new UserError(
        'not_found',
        `${email} is not invited to '${app.name}'; list who is with 'petri audience --app ${app.name}'`,
      );
    }
    await bumpKey(tx, app.id);
    await recordAudit(tx, actorOf(user, ip), 'app.audience.remove', app.name, { email }, scope(app));
  });
  return audienceOf(db, app);
}

export type LinkState = 'active' | 'used up' | 'expired' | 'revoked';

export interface LinkView {
  id: number;
  maxUses: number;
  usesLeft: number;
  expiresAt: string;
  revokedAt: string | null;
  createdBy: string | null;
  createdAt: string;
  state: LinkState;
  /** A personal link's invitee (null: anyone who has the link). */
  email: string | null;
}

function linkState(
  link: { uses_left: number; expires_at: string; revoked_at: string | null },
  nowMs = Date.now(),
): LinkState {
  if (link.revoked_at !== null) return 'revoked';
  if (Date.parse(link.expires_at) <= nowMs) return 'expired';
  if (link.uses_left <= 0) return 'used up';
  return 'active';
}

async function linkViews(db: Store, appId: number, id?: number): Promise<LinkView[]> {
  let query = db
    .selectFrom('audience_links')
    .leftJoin('users', 'users.id', 'audience_links.created_by')
    .selectAll('audience_links')
    .select(['users.email as byEmail', 'users.name as byName'])
    .where('audience_links.app_id', '=', appId);
  if (id !== undefined) query = query.where('audience_links.id', '=', id);
  const rows = await query.orderBy('audience_links.id').execute();
  return rows.map((r) => ({
    id: r.id,
    maxUses: r.max_uses,
    usesLeft: r.uses_left,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    createdBy: r.byEmail ?? r.byName ?? null,
    createdAt: r.created_at,
    state: linkState(r),
    email: r.email,
  }));
}

/** `petri audience links`: every link of the app, live or not (never their secrets). */
export function listLinks(db: Store, app: App): Promise<LinkView[]> {
  return linkViews(db, app.id);
}

/**
 * `petri audience links create [--uses 50] [--expires 7d]`: a link that lets in up to
 * `uses` people until it expires. The secret is answered once; only its hash is kept.
 */
export async function createLink(
  db: Store,
  user: User,
  app: App,
  opts: { uses?: unknown; expires?: unknown; email?: string } = {},
  ip?: string,
): Promise<{ link: LinkView; secret: string }> {
  // A personal link lets its one invitee in, once.
  const uses = opts.email !== undefined ? 1 : opts.uses === undefined ? LINK_USES_DEFAULT : Number(opts.uses);
  if (!Number.isInteger(uses) || uses < 1 || uses > LINK_USES_MAX) {
    throw new UserError(
      'bad_request',
      `uses must be a whole number of people from 1 to ${LINK_USES_MAX}, got ${JSON.stringify(opts.uses)}`,
    );
  }
  const ms = parsePeriod(opts.expires ?? LINK_EXPIRES_DEFAULT, 'expires');
  if (ms > LINK_DAYS_MAX * DAY_MS) {
    throw new UserError(
      'bad_request',
      `expires may be at most ${LINK_DAYS_MAX}d; create a new link when this one runs out`,
    );
  }
  const secret = randomBytes(32).toString('base64url');
  const id = await db.transaction().execute(async (tx) => {
    await freshApp(tx, app);
    const at = now();
    const live = await tx
      .selectFrom('audience_links')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('app_id', '=', app.id)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', new Date().toISOString())
      .where('uses_left', '>', 0)
      .executeTakeFirst();
    if (Number(live?.n ?? 0) >= LINKS_MAX) {
      throw new UserError(
        'bad_request',
        `'${app.name}' has ${LINKS_MAX} live links already; revoke some first ('petri audience links revoke ID')`,
      );
    }
    const expiresAt = new Date(Date.now() + ms).toISOString();
    const row = await tx
      .insertInto('audience_links')
      .values({
        app_id: app.id,
        token_hash: hashLinkSecret(secret),
        max_uses: uses,
        uses_left: uses,
        expires_at: expiresAt,
        revoked_at: null,
        created_by: user.id,
        created_at: at,
        email: opts.email ?? null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await recordAudit(
      tx,
      actorOf(user, ip),
      'app.audience.link',
      app.name,
      { id: row.id, uses, expiresAt, ...(opts.email !== undefined ? { email: opts.email } : {}) },
      scope(app),
    );
    return row.id;
  });
  const [link] = await linkViews(db, app.id, id);
  return { link: link!, secret };
}

/** `petri audience links revoke ID`: the link lets nobody in any more, and the cookies of
 * those it let in end (the app's key version moves). */
export async function revokeLink(
  db: Store,
  user: User,
  app: App,
  id: number,
  ip?: string,
): Promise<LinkView> {
  await db.transaction().execute(async (tx) => {
    await freshApp(tx, app);
    const link = await tx
      .selectFrom('audience_links')
      .selectAll()
      .where('app_id', '=', app.id)
      .where('id', '=', id)
      .executeTakeFirst();
    if (!link) {
      throw new UserError(
        'not_found',
        `'${app.name}' has no invite link ${id}; list them with 'petri audience links --app ${app.name}'`,
      );
    }
    if (link.revoked_at !== null) return;
    await tx.updateTable('audience_links').set({ revoked_at: now() }).where('id', '=', id).execute();
    await bumpKey(tx, app.id);
    await recordAudit(tx, actorOf(user, ip), 'app.audience.link.revoke', app.name, { id }, scope(app));
  });
  const [view] = await linkViews(db, app.id, id);
  return view!;
}

export interface VisitorView {
  visitor: string;
  noticeVersion: number;
  /** Consented to the notice the app shows now. */
  current: boolean;
  consentedAt: string;
  withdrawnAt: string | null;
  lastVisitAt: string | null;
}

/** `petri audience visitors`: who consented when, to which notice version, their last visit
 * and whether they left; newest first. */
export async function listVisitors(db: Store, app: App): Promise<VisitorView[]> {
  const fresh = await db.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
  const rows = await db
    .selectFrom('audience_consents')
    .selectAll()
    .where('app_id', '=', app.id)
    .orderBy('consented_at', 'desc')
    .orderBy('visitor')
    .limit(VISITORS_MAX)
    .execute();
  return rows.map((r) => ({
    visitor: r.visitor,
    noticeVersion: r.notice_version,
    current: r.withdrawn_at === null && r.notice_version === fresh.notice_version,
    consentedAt: r.consented_at,
    withdrawnAt: r.withdrawn_at,
    lastVisitAt: r.last_visit_at,
  }));
}

// ---------------------------------------------------------------------------------------
// What the gate (src/gate/) asks and records.

/** Whether this e-mail is on the app's list. */
export async function isInvited(db: Store, appId: number, email: string): Promise<boolean> {
  const row = await db
    .selectFrom('audience_invitees')
    .select('email')
    .where('app_id', '=', appId)
    .where('email', '=', email.trim().toLowerCase())
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Takes one use of the invite link with this secret, for the app: the link's id, or a
 * refusal that says why (unknown, revoked, expired, used up). Atomic: two people racing for
 * the last use cannot both have it.
 */
export async function spendLink(
  db: Store,
  appId: number,
  secret: string,
): Promise<{ id: number; email: string | null }> {
  const hash = hashLinkSecret(secret);
  return db.transaction().execute(async (tx) => {
    const link = await tx
      .selectFrom('audience_links')
      .selectAll()
      .where('app_id', '=', appId)
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    if (!link) throw new UserError('not_found', 'this invite link is not one of this app; check the address');
    const state = linkState(link);
    if (state !== 'active') {
      throw new UserError(
        'forbidden',
        state === 'revoked'
          ? 'this invite link was revoked; ask whoever sent it for a new one'
          : state === 'expired'
            ? `this invite link expired on ${link.expires_at.slice(0, 10)}; ask whoever sent it for a new one`
            : 'this invite link has been used as many times as it may; ask whoever sent it for a new one',
      );
    }
    const taken = await tx
      .updateTable('audience_links')
      .set((eb) => ({ uses_left: eb('uses_left', '-', 1) }))
      .where('id', '=', link.id)
      .where('uses_left', '>', 0)
      .executeTakeFirst();
    if (Number(taken.numUpdatedRows) === 0) {
      throw new UserError(
        'forbidden',
        'this invite link has been used as many times as it may; ask whoever sent it for a new one',
      );
    }
    // A personal link works for its invitee while they are on the list.
    if (link.email !== null && !(await isInvited(tx, appId, link.email))) {
      throw new UserError(
        'forbidden',
        'this invite link was for someone who is no longer invited; ask whoever sent it',
      );
    }
    return { id: link.id, email: link.email };
  });
}

/** The visitor's consent as recorded, if any. */
export function consentOf(db: Store, appId: number, visitor: string) {
  return db
    .selectFrom('audience_consents')
    .selectAll()
    .where('app_id', '=', appId)
    .where('visitor', '=', visitor)
    .executeTakeFirst();
}

/** Records a visitor's consent to the notice of this version (again after a withdrawal or a
 * new notice). */
export async function recordConsent(
  db: Store,
  appId: number,
  visitor: string,
  noticeVersion: number,
): Promise<void> {
  const at = now();
  await db
    .insertInto('audience_consents')
    .values({
      app_id: appId,
      visitor,
      notice_version: noticeVersion,
      consented_at: at,
      withdrawn_at: null,
      last_visit_at: at,
    })
    .onConflict((oc) =>
      oc.columns(['app_id', 'visitor']).doUpdateSet({
        notice_version: noticeVersion,
        consented_at: at,
        withdrawn_at: null,
        last_visit_at: at,
      }),
    )
    .execute();
}

/** `/.petri/leave`: the visitor's consent is withdrawn (the owner sees when in `visitors`). */
export async function withdrawConsent(db: Store, appId: number, visitor: string): Promise<boolean> {
  const res = await db
    .updateTable('audience_consents')
    .set({ withdrawn_at: now() })
    .where('app_id', '=', appId)
    .where('visitor', '=', visitor)
    .where('withdrawn_at', 'is', null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** A visit the gate saw (a cookie issued again): kept for `visitors`. */
export async function touchVisit(db: Store, appId: number, visitor: string): Promise<void> {
  await db
    .updateTable('audience_consents')
    .set({ last_visit_at: now() })
    .where('app_id', '=', appId)
    .where('visitor', '=', visitor)
    .execute();
}

/**
 * petri.toml's `audience = "..."`, applied at deploy by the deploy's author. Going public
 * with personal or sensitive data is refused there (it is an admin's approval, given with
 * `petri audience set public --approve`); the build fails, naming it.
 */
export async function audienceFromManifest(
  db: Store,
  app: App,
  value: unknown,
  byUserId: number,
): Promise<void> {
  const audience = parseAudience(value, 'petri.toml: audience');
  await db.transaction().execute(async (tx) => {
    const fresh = await freshApp(tx, app);
    if (fresh.audience === audience) return;
    if (audience === 'public' && PERSONAL.has(fresh.data_class)) {
      throw new UserError(
        'forbidden',
        `petri.toml: audience = "public" for '${app.name}', which holds ${fresh.data_class} data, needs an admin's approval: ask one to run 'petri audience set public --approve --app ${app.name}'`,
      );
    }
    await tx
      .updateTable('apps')
      .set((eb) => ({ audience, audience_key_version: eb('audience_key_version', '+', 1) }))
      .where('id', '=', app.id)
      .execute();
    const by = await tx.selectFrom('users').select('name').where('id', '=', byUserId).executeTakeFirst();
    const actor: Actor = { name: by?.name ?? 'petri', userId: by ? byUserId : null };
    await recordAudit(
      tx,
      actor,
      'app.audience',
      app.name,
      { from: fresh.audience, to: audience, via: 'petri.toml' },
      scope(app),
    );
  });
}

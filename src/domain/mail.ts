// The mail relay's model (issue 17): each app's limits (the server's defaults, an admin's
// overrides), the quota reserved atomically with the message that uses it, the refusals in a
// row that pause an app's mail, whom an app may mail while its audience is closed, the
// durable queue of deliveries, the unsubscribed, and what `petri mail` shows.
import { sql } from 'kysely';
import type { MailConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { App, MailDeliveryStatus, MailStatus } from '../store/schema.js';
import { type Actor, recordAudit } from './audit.js';
import { mailLocalPart } from './mail-credentials.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The newest messages `petri mail --app` lists. */
export const MAIL_LAST_MAX = 20;

export interface MailLimits {
  perHour: number;
  perDay: number;
  recipients: number;
  maxBytes: number;
}

/** A limit an app ran into: said at SMTP time with when it resets. */
export interface MailRefusal {
  /** 4xx: try again later (a rate limit, a pause); 5xx: never (not allowed at all). */
  code: 450 | 451 | 452 | 550 | 552 | 553 | 554;
  /** Which limit: per-hour, per-day, recipients, size, audience, unsubscribed, from, paused, header. */
  limit: string;
  message: string;
}

export async function mailLimitsOf(db: Store, config: MailConfig, appId: number): Promise<MailLimits> {
  const row = await db.selectFrom('mail_apps').selectAll().where('app_id', '=', appId).executeTakeFirst();
  return {
    perHour: row?.per_hour ?? config.perHour,
    perDay: row?.per_day ?? config.perDay,
    recipients: row?.recipients ?? config.recipients,
    maxBytes: config.maxBytes,
  };
}

const clock = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** Whether the app may send one more message now: the pause, the hour's and the day's
 * counts. Read-only (RCPT time); reserveMessage decides for good. */
export async function rateRefusal(
  db: Store,
  appId: number,
  limits: MailLimits,
  nowMs = Date.now(),
): Promise<MailRefusal | undefined> {
  for (const [limit, windowMs, max] of [
    ['per-hour', HOUR_MS, limits.perHour],
    ['per-day', DAY_MS, limits.perDay],
  ] as const) {
    const since = new Date(nowMs - windowMs).toISOString();
    const row = await db
      .selectFrom('mail_messages')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('created_at').as('oldest')])
      .where('app_id', '=', appId)
      .where('status', '!=', 'refused')
      .where((eb) => eb.or([eb('reason', 'is', null), eb('reason', '!=', 'notice from petri')]))
      .where('created_at', '>', since)
      .executeTakeFirstOrThrow();
    if (Number(row.n) >= max) {
      const resets = Date.parse(String(row.oldest)) + windowMs;
      return {
        code: 451,
        limit,
        message: `${limit} limit of ${max} messages reached; it resets at ${clock(resets)}`,
      };
    }
  }
  const state = await db
    .selectFrom('mail_apps')
    .select('paused_until')
    .where('app_id', '=', appId)
    .executeTakeFirst();
  if (state?.paused_until && Date.parse(state.paused_until) > nowMs) {
    return {
      code: 451,
      limit: 'paused',
      message: `mail of this app is paused after repeated refusals until ${clock(Date.parse(state.paused_until))}; its owner was told`,
    };
  }
  return undefined;
}

export interface AcceptedMessage {
  id: string;
  recipients: string[];
  subject: string;
  raw: Buffer;
  /** No smarthost: the message is kept in the capture box instead of being delivered. */
  capture: boolean;
}

/** Reserves the quota and queues the message in one transaction: of any number of
 * concurrent senders exactly the limit get in (the store's transactions run one at a time). */
export async function reserveMessage(
  db: Store,
  app: Pick<App, 'id'>,
  limits: MailLimits,
  message: AcceptedMessage,
  nowMs = Date.now(),
): Promise<MailRefusal | undefined> {
  return db.transaction().execute(async (tx) => {
    const refusal = await rateRefusal(tx, app.id, limits, nowMs);
    if (refusal) return refusal;
    const at = new Date(nowMs).toISOString();
    const status: MailStatus = message.capture ? 'captured' : 'queued';
    await tx
      .insertInto('mail_messages')
      .values({
        id: message.id,
        app_id: app.id,
        created_at: at,
        status,
        recipients: JSON.stringify(message.recipients),
        subject: message.subject.slice(0, 200),
        size: message.raw.length,
        reason: null,
        raw: message.raw,
      })
      .execute();
    await tx
      .insertInto('mail_deliveries')
      .values(
        message.recipients.map((recipient) => ({
          message_id: message.id,
          recipient,
          status: (message.capture ? 'captured' : 'queued') as MailDeliveryStatus,
          next_attempt_at: at,
          last_error: null,
          done_at: message.capture ? at : null,
        })),
      )
      .execute();
    await tx
      .insertInto('mail_apps')
      .values({ app_id: app.id, per_hour: null, per_day: null, recipients: null, paused_until: null })
      .onConflict((oc) => oc.column('app_id').doUpdateSet({ refusal_streak: 0 }))
      .execute();
    return undefined;
  });
}

/** A refused message (or transaction) is counted; `pauseAfter` in a row pause the app's mail
 * and tell its owner (an audit event, and the pause in `petri mail`). Answers whether this
 * refusal paused it. */
export async function recordRefusal(
  db: Store,
  config: Pick<MailConfig, 'pauseAfterRefusals' | 'pauseMinutes'>,
  app: Pick<App, 'id' | 'name' | 'team_id'>,
  refused: { id: string; recipients: string[]; subject: string; size: number; refusal: MailRefusal },
  nowMs = Date.now(),
): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    await tx
      .insertInto('mail_messages')
      .values({
        id: refused.id,
        app_id: app.id,
        created_at: new Date(nowMs).toISOString(),
        status: 'refused',
        recipients: JSON.stringify(refused.recipients.slice(0, 20)),
        subject: refused.subject.slice(0, 200),
        size: refused.size,
        reason: `${refused.refusal.code} ${refused.refusal.message}`.slice(0, 300),
        raw: null,
      })
      .execute();
    // A paused app's refusals do not pause it again (nor tell the owner once more).
    if (refused.refusal.limit === 'paused') return false;
    const state = await tx
      .insertInto('mail_apps')
      .values({
        app_id: app.id,
        per_hour: null,
        per_day: null,
        recipients: null,
        paused_until: null,
        refusal_streak: 1,
      })
      .onConflict((oc) =>
        oc.column('app_id').doUpdateSet((eb) => ({ refusal_streak: eb('mail_apps.refusal_streak', '+', 1) })),
      )
      .returning(['refusal_streak'])
      .executeTakeFirstOrThrow();
    const streak = state.refusal_streak;
    if (streak < config.pauseAfterRefusals) return false;
    const until = new Date(nowMs + config.pauseMinutes * 60_000).toISOString();
    await tx
      .updateTable('mail_apps')
      .set({ paused_until: until, refusal_streak: 0 })
      .where('app_id', '=', app.id)
      .execute();
    await recordAudit(
      tx,
      { name: 'petri', via: 'system' },
      'mail.paused',
      app.name,
      { refusals: streak, until, last: refused.refusal.message },
      { app: app.name, teamId: app.team_id, outcome: 'denied' },
    );
    return true;
  });
}

/** The people an app may mail while its audience is invite or staff: staff is everyone who
 * may sign in to Petri; an invite app's invitees and its team. Public apps mail anyone. */
export async function mayMail(db: Store, app: Pick<App, 'id' | 'audience' | 'team_id'>, email: string) {
  const address = email.toLowerCase();
  if (app.audience === 'public') return true;
  if (app.audience === 'invite') {
    const invited = await db
      .selectFrom('audience_invitees')
      .select('email')
      .where('app_id', '=', app.id)
      .where('email', '=', address)
      .executeTakeFirst();
    if (invited) return true;
    const member = await db
      .selectFrom('team_members')
      .innerJoin('users', 'users.id', 'team_members.user_id')
      .select('users.id')
      .where('team_members.team_id', '=', app.team_id)
      .where(sql<string>`lower(users.email)`, '=', address)
      .where('users.disabled_at', 'is', null)
      .executeTakeFirst();
    return member !== undefined;
  }
  const person = await db
    .selectFrom('users')
    .select('id')
    .where(sql<string>`lower(email)`, '=', address)
    .where('kind', '=', 'person')
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  return person !== undefined;
}

/** The mailbox an address reaches: lowercased, without a +tag (bob+news@x is bob@x for
 * Postfix's recipient_delimiter, Gmail, Fastmail ...). */
export function mailbox(email: string): string {
  const address = email.toLowerCase();
  const at = address.lastIndexOf('@');
  const plus = address.indexOf('+');
  return plus > 0 && plus < at ? address.slice(0, plus) + address.slice(at) : address;
}

/** Whether the recipient's mailbox stopped this app's mail: compared without +tags on either
 * side, so another spelling of the same mailbox is refused too. */
export async function isUnsubscribed(db: Store, appId: number, email: string): Promise<boolean> {
  const box = mailbox(email);
  const at = box.lastIndexOf('@');
  const like = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
  const rows = await db
    .selectFrom('mail_unsubscribes')
    .select('email')
    .where('app_id', '=', appId)
    .where((eb) =>
      eb.or([
        eb('email', '=', box),
        eb('email', 'like', sql<string>`${`${like(box.slice(0, at))}+%${like(box.slice(at))}`} escape '\\'`),
      ]),
    )
    .execute();
  return rows.some((r) => mailbox(r.email) === box);
}

export async function unsubscribe(db: Store, appId: number, email: string): Promise<void> {
  await db
    .insertInto('mail_unsubscribes')
    .values({ app_id: appId, email: email.toLowerCase(), created_at: now() })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

// --- The queue ---

export interface DueDelivery {
  messageId: string;
  recipient: string;
  attempts: number;
  appId: number;
  appName: string;
  raw: Buffer;
  createdAt: string;
}

/** Deliveries a crash left half done go back to the queue: delivered at least once, never lost. */
export async function requeueInterrupted(db: Store): Promise<number> {
  const rows = await db
    .updateTable('mail_deliveries')
    .set({ status: 'queued' })
    .where('status', '=', 'sending')
    .executeTakeFirst();
  return Number(rows.numUpdatedRows);
}

/** Takes up to `limit` due deliveries, marking them sending in the same transaction. */
export async function takeDueDeliveries(
  db: Store,
  limit: number,
  nowMs = Date.now(),
): Promise<DueDelivery[]> {
  return db.transaction().execute(async (tx) => {
    const rows = await tx
      .selectFrom('mail_deliveries')
      .innerJoin('mail_messages', 'mail_messages.id', 'mail_deliveries.message_id')
      .innerJoin('apps', 'apps.id', 'mail_messages.app_id')
      .select([
        'mail_deliveries.message_id as messageId',
        'mail_deliveries.recipient as recipient',
        'mail_deliveries.attempts as attempts',
        'apps.id as appId',
        'apps.name as appName',
        'mail_messages.raw as raw',
        'mail_messages.created_at as createdAt',
      ])
      .where('mail_deliveries.status', 'in', ['queued', 'deferred'])
      .where('mail_deliveries.next_attempt_at', '<=', new Date(nowMs).toISOString())
      .orderBy('mail_deliveries.next_attempt_at')
      .limit(limit)
      .execute();
    for (const r of rows) {
      await tx
        .updateTable('mail_deliveries')
        .set({ status: 'sending' })
        .where('message_id', '=', r.messageId)
        .where('recipient', '=', r.recipient)
        .execute();
    }
    return rows.flatMap((r) => (r.raw ? [{ ...r, raw: r.raw }] : []));
  });
}

export interface DeliveryOutcome {
  messageId: string;
  recipient: string;
  status: 'sent' | 'deferred' | 'bounced';
  error?: string;
  retryAt?: string;
}

/** Deliveries' outcomes: sent, deferred (a 4xx or no answer: tried again at `retryAt`) or
 * bounced (a 5xx, or retries given up). A message's status follows its recipients'. One
 * transaction for a batch: one fsync for the lot, not one per message. */
export async function settleDeliveries(db: Store, outcomes: DeliveryOutcome[]): Promise<void> {
  if (outcomes.length === 0) return;
  await db.transaction().execute(async (tx) => {
    const at = now();
    for (const o of outcomes) {
      await tx
        .updateTable('mail_deliveries')
        .set((eb) => ({
          status: o.status,
          attempts: eb('attempts', '+', 1),
          last_error: o.error?.slice(0, 300) ?? null,
          next_attempt_at: o.retryAt ?? at,
          done_at: o.status === 'deferred' ? null : at,
        }))
        .where('message_id', '=', o.messageId)
        .where('recipient', '=', o.recipient)
        .execute();
    }
    for (const id of new Set(outcomes.map((o) => o.messageId))) {
      const left = await tx
        .selectFrom('mail_deliveries')
        .select(['status'])
        .where('message_id', '=', id)
        .execute();
      if (left.some((l) => l.status !== 'sent' && l.status !== 'bounced')) continue;
      const bounce = outcomes.find((o) => o.messageId === id && o.status === 'bounced');
      // Every recipient has it (or never will): the body goes, only the log stays.
      await tx
        .updateTable('mail_messages')
        .set((eb) => ({
          status: left.some((l) => l.status === 'bounced') ? 'bounced' : 'sent',
          raw: null,
          reason: bounce ? (bounce.error?.slice(0, 300) ?? 'bounced') : eb.ref('reason'),
        }))
        .where('id', '=', id)
        .execute();
    }
  });
}

// --- What people see ---

export interface MailCounts {
  sent: number;
  queued: number;
  deferred: number;
  bounced: number;
  refused: number;
  captured: number;
}

export interface MailMessageView {
  id: string;
  at: string;
  recipients: string[];
  subject: string;
  status: MailStatus | 'deferred';
  size: number;
  reason: string | null;
}

export interface MailSummary {
  app: string;
  address: string;
  limits: MailLimits & { restrictToAudience: boolean };
  pausedUntil: string | null;
  hour: MailCounts;
  day: MailCounts;
  month: MailCounts;
  last: MailMessageView[];
}

/** Each app's messages since a time by status (sent, queued, deferred, bounced, refused,
 * captured): two queries whatever the number of apps. */
export async function countsSince(
  db: Store,
  appIds: number[],
  sinceIso: string,
): Promise<Map<number, MailCounts>> {
  const out = new Map<number, MailCounts>();
  if (appIds.length === 0) return out;
  const rows = await db
    .selectFrom('mail_messages')
    .select((eb) => ['app_id', 'status', eb.fn.countAll<number>().as('n')])
    .where('app_id', 'in', appIds)
    .where('created_at', '>', sinceIso)
    .groupBy(['app_id', 'status'])
    .execute();
  const deferred = await db
    .selectFrom('mail_deliveries')
    .innerJoin('mail_messages', 'mail_messages.id', 'mail_deliveries.message_id')
    .select((eb) => [
      'mail_messages.app_id as app_id',
      eb.fn.count<number>('mail_messages.id').distinct().as('n'),
    ])
    .where('mail_messages.app_id', 'in', appIds)
    .where('mail_messages.created_at', '>', sinceIso)
    .where('mail_deliveries.status', '=', 'deferred')
    .groupBy('mail_messages.app_id')
    .execute();
  for (const id of appIds)
    out.set(id, { sent: 0, queued: 0, deferred: 0, bounced: 0, refused: 0, captured: 0 });
  for (const r of rows) {
    const c = out.get(r.app_id);
    if (c) c[r.status] += Number(r.n);
  }
  // A queued message with a deferred recipient shows as deferred (the smarthost said later).
  for (const r of deferred) {
    const c = out.get(r.app_id);
    if (c) {
      c.deferred = Number(r.n);
      c.queued = Math.max(0, c.queued - c.deferred);
    }
  }
  return out;
}

export async function mailSummary(
  db: Store,
  config: MailConfig,
  app: Pick<App, 'id' | 'name'>,
  nowMs = Date.now(),
): Promise<MailSummary> {
  const limits = await mailLimitsOf(db, config, app.id);
  const state = await db.selectFrom('mail_apps').selectAll().where('app_id', '=', app.id).executeTakeFirst();
  const at = (ms: number) => new Date(nowMs - ms).toISOString();
  const empty: MailCounts = { sent: 0, queued: 0, deferred: 0, bounced: 0, refused: 0, captured: 0 };
  const [hour, day, month] = await Promise.all(
    [HOUR_MS, DAY_MS, 30 * DAY_MS].map(
      async (ms) => (await countsSince(db, [app.id], at(ms))).get(app.id) ?? empty,
    ),
  );
  const last = await db
    .selectFrom('mail_messages')
    .select(['id', 'created_at', 'recipients', 'subject', 'status', 'size', 'reason'])
    .where('app_id', '=', app.id)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(MAIL_LAST_MAX)
    .execute();
  const deferredIds = new Set(
    (
      await db
        .selectFrom('mail_deliveries')
        .select('message_id')
        .where('message_id', 'in', last.map((l) => l.id).concat(['']))
        .where('status', '=', 'deferred')
        .execute()
    ).map((r) => r.message_id),
  );
  const paused = state?.paused_until && Date.parse(state.paused_until) > nowMs ? state.paused_until : null;
  return {
    app: app.name,
    address: mailAddress(config, app.name),
    limits: { ...limits, restrictToAudience: config.restrictToAudience },
    pausedUntil: paused,
    hour: hour ?? empty,
    day: day ?? empty,
    month: month ?? empty,
    last: last.map((m) => ({
      id: m.id,
      at: m.created_at,
      recipients: JSON.parse(m.recipients) as string[],
      subject: m.subject,
      status: m.status === 'queued' && deferredIds.has(m.id) ? 'deferred' : m.status,
      size: m.size,
      reason: m.reason,
    })),
  };
}

export interface MailReportRow extends MailCounts {
  app: string;
  /** Over the last 30 days. */
}

/** Every app that sent or tried to in the last 30 days, for `petri mail report`. */
export async function mailReport(db: Store, nowMs = Date.now()): Promise<MailReportRow[]> {
  const since = new Date(nowMs - 30 * DAY_MS).toISOString();
  const apps = await db
    .selectFrom('apps')
    .select(['id', 'name'])
    .where('id', 'in', db.selectFrom('mail_messages').select('app_id').where('created_at', '>', since))
    .orderBy('name')
    .execute();
  const counts = await countsSince(
    db,
    apps.map((a) => a.id),
    since,
  );
  return apps.map((a) => ({
    app: a.name,
    ...(counts.get(a.id) ?? { sent: 0, queued: 0, deferred: 0, bounced: 0, refused: 0, captured: 0 }),
  }));
}

/** A message of the app, with its body only while it is kept (capture mode, or queued). */
export async function findMailMessage(db: Store, appId: number, id: string) {
  const row = await db
    .selectFrom('mail_messages')
    .selectAll()
    .where('app_id', '=', appId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row)
    throw new UserError('not_found', `no message '${id}' of this app; 'petri mail --app NAME' lists them`);
  const deliveries = await db
    .selectFrom('mail_deliveries')
    .select(['recipient', 'status', 'attempts', 'last_error', 'next_attempt_at', 'done_at'])
    .where('message_id', '=', id)
    .orderBy('recipient')
    .execute();
  return { row, deliveries };
}

export function mailAddress(config: Pick<MailConfig, 'domain'>, appName: string): string {
  return `${mailLocalPart(appName)}@${config.domain}`;
}

export interface MailLimitChange {
  perHour?: number | null;
  perDay?: number | null;
  recipients?: number | null;
}

export async function setMailLimits(
  db: Store,
  actor: Actor,
  app: App,
  change: MailLimitChange,
): Promise<void> {
  for (const [key, v] of Object.entries(change)) {
    if (v !== null && v !== undefined && (!Number.isInteger(v) || v < 1 || v > 10_000_000)) {
      throw new UserError(
        'bad_request',
        `${key} must be a whole number from 1 to 10000000 (or 'default'), got ${v}`,
      );
    }
  }
  await db.transaction().execute(async (tx) => {
    const set = {
      ...(change.perHour !== undefined && { per_hour: change.perHour }),
      ...(change.perDay !== undefined && { per_day: change.perDay }),
      ...(change.recipients !== undefined && { recipients: change.recipients }),
    };
    await tx
      .insertInto('mail_apps')
      .values({
        app_id: app.id,
        per_hour: change.perHour ?? null,
        per_day: change.perDay ?? null,
        recipients: change.recipients ?? null,
        paused_until: null,
      })
      .onConflict((oc) => (Object.keys(set).length ? oc.column('app_id').doUpdateSet(set) : oc.doNothing()))
      .execute();
    await recordAudit(
      tx,
      actor,
      'mail.limits',
      app.name,
      { ...change },
      { app: app.name, teamId: app.team_id },
    );
  });
}

/** Ends the pause (an admin's `petri mail limits NAME --resume`). */
export async function resumeMail(db: Store, actor: Actor, app: App): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await tx
      .updateTable('mail_apps')
      .set({ paused_until: null, refusal_streak: 0 })
      .where('app_id', '=', app.id)
      .execute();
    await recordAudit(tx, actor, 'mail.resume', app.name, {}, { app: app.name, teamId: app.team_id });
  });
}

/** New SMTP and HTTP credentials: the old ones stop working at once. */
export async function rotateMailKey(db: Store, actor: Actor, app: App): Promise<App> {
  return db.transaction().execute(async (tx) => {
    await tx
      .updateTable('apps')
      .set((eb) => ({ mail_key_version: eb('mail_key_version', '+', 1) }))
      .where('id', '=', app.id)
      .execute();
    await recordAudit(tx, actor, 'mail.rotate', app.name, {}, { app: app.name, teamId: app.team_id });
    return tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
  });
}

/** The relay authenticates apps by name: the current row (its key version, audience). */
export function appForMail(db: Store, name: string): Promise<App | undefined> {
  return db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirst();
}

/** Apps whose owner is `userId`, for a notice to them. */
export async function ownerEmail(db: Store, app: Pick<App, 'owner_id'>): Promise<string | null> {
  const row = await db.selectFrom('users').select('email').where('id', '=', app.owner_id).executeTakeFirst();
  return row?.email ?? null;
}

/** A notice from Petri itself about an app (its expiry, its paused mail), queued like the
 * app's mail but outside its quota and audience: the owner must hear of it. */
export async function queueNotice(
  db: Store,
  appId: number,
  message: { id: string; to: string; subject: string; raw: Buffer; capture: boolean },
): Promise<void> {
  const at = now();
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('mail_messages')
      .values({
        id: message.id,
        app_id: appId,
        created_at: at,
        status: message.capture ? 'captured' : 'queued',
        recipients: JSON.stringify([message.to]),
        subject: message.subject.slice(0, 200),
        size: message.raw.length,
        // Marks it as Petri's: rateRefusal does not count it against the app.
        reason: 'notice from petri',
        raw: message.raw,
      })
      .execute();
    await tx
      .insertInto('mail_deliveries')
      .values({
        message_id: message.id,
        recipient: message.to,
        status: message.capture ? 'captured' : 'queued',
        next_attempt_at: at,
        last_error: null,
        done_at: message.capture ? at : null,
      })
      .execute();
  });
}

/** The app's name and owner, for a notice about it; undefined once it is gone. */
export async function appForNotice(
  db: Store,
  appId: number,
): Promise<{ id: number; name: string; owner_id: number } | undefined> {
  return db.selectFrom('apps').select(['id', 'name', 'owner_id']).where('id', '=', appId).executeTakeFirst();
}

export async function userEmail(db: Store, userId: number): Promise<string | null> {
  const row = await db.selectFrom('users').select('email').where('id', '=', userId).executeTakeFirst();
  return row?.email ?? null;
}

// The audit trail: every change, who made it (the user or bot, through which token), what,
// about which app and team, when, from which address, in which request, and how it ended.
// Append-only and chained: each event carries the hash of the one before it
// (store/audit-chain.ts), so verifyAudit finds a row that was changed, deleted or inserted.
//
// Callers name the actor and the change; the request the change happens in (its user and
// token, address, request id, API or git) comes from auditScope, which api/audit-hooks.ts
// opens around every request, so no route passes it along.
import { AsyncLocalStorage } from 'node:async_hooks';
import { type Selectable, sql } from 'kysely';
import { UserError } from '../lib/errors.js';
import { AUDIT_GENESIS, type ChainedFields, chainHash } from '../store/audit-chain.js';
import { now, type Store } from '../store/db.js';
import type { AuditEventsTable, AuditOutcome, AuditVia, User } from '../store/schema.js';
import { AnonymousRefusals, type RefusalBudget } from './audit-refusals.js';
import { hashToken } from './auth.js';

export type { AuditOutcome, AuditVia };

export interface Actor {
  /** The user's name, 'petri' for the platform itself, or who a refused sign-in claimed to be. */
  name: string;
  userId?: number | null;
  tokenId?: number | null;
  ip?: string | null;
  requestId?: string | null;
  via?: AuditVia;
}

/** What an event says beyond actor, action and target; each defaults from the request. */
export interface AuditExtra {
  /** The app the event is about (default: the route's app, or the target of an app's action). */
  app?: string | null;
  /** The team whose members see the event (default: the app's team, or the team's action's). */
  teamId?: number | null;
  outcome?: AuditOutcome;
  /** The HTTP status the request was answered with. */
  status?: number | null;
  /** Anyone can cause it without signing in (the API's generic event of an anonymous
   * request): past the budget of anonymous refusals it is counted, not recorded. Events
   * with no user and an outcome other than ok are so anyway. */
  anonymous?: boolean;
  /** Refused for a token that no longer works (revoked, expired, its user disabled): past a
   * budget per user it is counted, not recorded (see audit-refusals.ts). */
  deadToken?: boolean;
}

/** Who a request was authenticated as, once it was (the bearer check runs after the scope opens). */
export interface Principal {
  userId: number;
  name: string;
  tokenId: number | null;
}

/** The request an event is recorded in: opened by api/audit-hooks.ts for every request. */
export interface AuditScope {
  requestId: string;
  ip: string;
  via: 'api' | 'git';
  /** The app the route names (`:name`), if any. */
  app?: string;
  principal: () => Principal | undefined;
  /** The team of the app or team the route names, once the access check loaded it. */
  targetTeamId: () => number | undefined;
  /** The events recorded in this request: the hooks record a generic one when none was. */
  recorded: { hash: string; outcome: AuditOutcome }[];
}

export const auditScope = new AsyncLocalStorage<AuditScope>();

// Events recorded before teams named an app as their target; so do these actions now.
const APP_ACTION = /^(app|config|formation|ps|addon|deploy|release)\./;
const TEAM_ACTION = /^team\./;

/** Records an event. Inside a transaction it is part of it (gone if it rolls back); either
 * way, reading the last hash and appending happen in one transaction, so two events can
 * never claim the same predecessor. */
export async function recordAudit(
  db: Store,
  actor: Actor,
  action: string,
  target: string,
  detail: Record<string, unknown> = {},
  extra: AuditExtra = {},
): Promise<void> {
  const scope = auditScope.getStore();
  const principal = scope?.principal();
  // The request's user is the actor only when the event names them: the platform acting
  // during someone's request (say, waking an app) is still the platform.
  const isPrincipal =
    principal !== undefined &&
    (actor.userId == null ? actor.name === principal.name : actor.userId === principal.userId);
  const outcome = extra.outcome ?? 'ok';
  const actorId = actor.userId ?? (isPrincipal ? principal.userId : null);
  const ip = actor.ip ?? scope?.ip ?? null;
  if (
    actorId === null &&
    (outcome !== 'ok' || extra.anonymous) &&
    !anonymousRefusals.admit(ip, action, Date.now())
  )
    return;
  if (
    extra.deadToken &&
    actorId !== null &&
    !deadTokenRefusals.admit(`${actor.name} (user ${actorId})`, action, Date.now())
  )
    return;

  const inCallersTransaction = db.isTransaction;
  const write = async (tx: Store) => {
    // Not in the caller's transaction: were it rolled back, the count would be lost.
    if (!inCallersTransaction) await writeSuppressedSummary(tx, Date.now());
    // Taken in the transaction, so times follow the chain's order.
    const at = now();
    const app =
      extra.app !== undefined ? extra.app : (scope?.app ?? (APP_ACTION.test(action) ? target : null));
    const row = {
      at,
      actor: actor.name,
      actor_id: actorId,
      token_id: actor.tokenId ?? (isPrincipal ? principal.tokenId : null),
      via: actor.via ?? scope?.via ?? ('system' as const),
      action,
      target,
      app,
      team_id: extra.teamId !== undefined ? extra.teamId : await teamOf(tx, scope, app, action, target),
      outcome,
      status: extra.status ?? null,
      source_ip: ip,
      request_id: actor.requestId ?? scope?.requestId ?? null,
      detail: JSON.stringify(detail),
    };
    const hash = await append(tx, row);
    scope?.recorded.push({ hash, outcome });
  };
  await (inCallersTransaction ? write(db) : db.transaction().execute(write));
}

type NewEvent = Omit<ChainedFields, 'id' | 'via' | 'outcome'> & { via: AuditVia; outcome: AuditOutcome };

/** Appends a row to the chain; the caller holds the transaction. Answers its hash. */
async function append(tx: Store, row: NewEvent): Promise<string> {
  const last = await tx
    .selectFrom('audit_events')
    .select(['id', 'hash'])
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  // The next id is past every id ever given, deleted ones included: a new event does not
  // paper over a removed tail (verifyAudit sees the gap).
  const id = Math.max(last?.id ?? 0, await highestIdEver(tx)) + 1;
  const prev_hash = last?.hash ?? AUDIT_GENESIS;
  const hash = chainHash(prev_hash, { ...row, id });
  await tx
    .insertInto('audit_events')
    .values({ ...row, id, prev_hash, hash })
    .execute();
  return hash;
}

/** The largest id the table ever had (AUTOINCREMENT keeps it in sqlite_sequence). */
async function highestIdEver(db: Store): Promise<number> {
  const { rows } = await sql<{
    seq: number;
  }>`select seq from sqlite_sequence where name = 'audit_events'`.execute(db);
  return Number(rows[0]?.seq ?? 0);
}

async function teamOf(
  db: Store,
  scope: AuditScope | undefined,
  app: string | null,
  action: string,
  target: string,
): Promise<number | null> {
  if (app !== null) {
    // The route's app, as the access check loaded it: still known when the event is its removal.
    const loaded = scope?.app === app ? scope.targetTeamId() : undefined;
    if (loaded !== undefined) return loaded;
    const row = await db.selectFrom('apps').select('team_id').where('name', '=', app).executeTakeFirst();
    return row?.team_id ?? null;
  }
  if (TEAM_ACTION.test(action)) {
    const row = await db.selectFrom('teams').select('id').where('name', '=', target).executeTakeFirst();
    if (row) return row.id;
  }
  return scope?.targetTeamId() ?? null;
}

// Refusals nobody signed: recorded one by one up to a budget, then counted (audit-refusals.ts).
const anonymousRefusals = new AnonymousRefusals();
// Refusals of dead tokens (revoked, expired, a disabled user's): the same, per user.
const deadTokenRefusals = new AnonymousRefusals(
  { count: 'users', busiest: 'busiestUsers' },
  'refusals of revoked or expired tokens and disabled users',
);
const budgets = [anonymousRefusals, deadTokenRefusals];

/** Sets the budget of anonymous refusals recorded one by one (tests; the defaults otherwise). */
export function setAnonymousRefusalBudget(budget: Partial<RefusalBudget>): void {
  anonymousRefusals.budget = { ...anonymousRefusals.budget, ...budget };
}

async function writeSuppressedSummary(tx: Store, at: number, force = false): Promise<void> {
  for (const counted of budgets) {
    const summary = counted.takeSummary(at, force);
    if (!summary) continue;
    await append(tx, {
      at: new Date(at).toISOString(),
      actor: 'petri',
      actor_id: null,
      token_id: null,
      via: 'system',
      action: 'audit.suppressed',
      target: counted.target,
      app: null,
      team_id: null,
      outcome: 'denied',
      status: null,
      source_ip: null,
      request_id: null,
      detail: JSON.stringify(summary),
    });
  }
}

/** How many anonymous refusals are counted and not yet written as an 'audit.suppressed' event. */
export function pendingAnonymousRefusals(): number {
  return anonymousRefusals.suppressed.count;
}

/** How many refusals of dead tokens are counted and not yet written. */
export function pendingDeadTokenRefusals(): number {
  return deadTokenRefusals.suppressed.count;
}

/** Writes the counts of refusals not recorded one by one, now (the API's shutdown). */
export async function flushSuppressedRefusals(db: Store): Promise<void> {
  if (budgets.every((b) => b.suppressed.count === 0)) return;
  await db.transaction().execute((tx) => writeSuppressedSummary(tx, Date.now(), true));
}

/** Who holds this bearer token, whatever its state (revoked, expired, disabled user): a
 * refused request that came with one is theirs, not anonymous. */
export async function tokenHolder(db: Store, secret: string): Promise<Principal | undefined> {
  const row = await db
    .selectFrom('tokens')
    .innerJoin('users', 'users.id', 'tokens.user_id')
    .select(['users.id as userId', 'users.name as name', 'tokens.id as tokenId'])
    .where('tokens.hash', '=', hashToken(secret))
    .executeTakeFirst();
  return row;
}

/** Whether any of these events (by hash) is in the store: one recorded inside a
 * transaction that rolled back is not. */
export async function anyRecorded(db: Store, hashes: string[]): Promise<boolean> {
  if (hashes.length === 0) return false;
  const row = await db.selectFrom('audit_events').select('id').where('hash', 'in', hashes).executeTakeFirst();
  return row !== undefined;
}

// ---------------------------------------------------------------------------------------
// Reading the trail.

export interface AuditFilters {
  app?: string;
  /** A team's name. */
  team?: string;
  /** A user's e-mail or name (also matches refused sign-ins in that name). */
  user?: string;
  /** ISO times (see parseAuditTime). */
  since?: string;
  until?: string;
  /** An action (app.create), or its start up to a dot or space (app, POST). */
  action?: string;
  outcome?: AuditOutcome;
  /** At most 1000; 100 by default. */
  limit?: number;
  /** Events older than this id (the `next` of the previous page). */
  before?: number;
}

export interface AuditEventView {
  id: number;
  at: string;
  actor: string;
  actorId: number | null;
  tokenId: number | null;
  via: AuditVia;
  action: string;
  target: string;
  app: string | null;
  team: string | null;
  outcome: AuditOutcome;
  status: number | null;
  ip: string | null;
  requestId: string | null;
  detail: Record<string, unknown>;
}

export const AUDIT_LIMIT_DEFAULT = 100;
export const AUDIT_LIMIT_MAX = 1000;

function seesAll(user: User): boolean {
  return user.role === 'admin' || user.role === 'auditor';
}

/** Events the viewer may see, newest first: admins and auditors all of them; anyone else
 * their teams' events and their own actions. `next` pages on (as `before`). */
export async function listAudit(
  db: Store,
  viewer: User,
  filters: AuditFilters = {},
): Promise<{ events: AuditEventView[]; next: number | null }> {
  const limit = Math.min(Math.max(1, Math.trunc(filters.limit ?? AUDIT_LIMIT_DEFAULT)), AUDIT_LIMIT_MAX);
  const all = seesAll(viewer);
  const myTeams = all
    ? undefined
    : new Set(
        (
          await db.selectFrom('team_members').select('team_id').where('user_id', '=', viewer.id).execute()
        ).map((r) => r.team_id),
      );
  let query = db
    .selectFrom('audit_events')
    .leftJoin('teams', 'teams.id', 'audit_events.team_id')
    .selectAll('audit_events')
    .select('teams.name as team_name');
  if (myTeams) {
    query = query.where((eb) =>
      eb.or([
        eb(
          'audit_events.team_id',
          'in',
          eb
            .selectFrom('team_members')
            .select('team_members.team_id')
            .where('team_members.user_id', '=', viewer.id),
        ),
        eb('audit_events.actor_id', '=', viewer.id),
      ]),
    );
  }
  if (filters.app !== undefined) query = query.where('audit_events.app', '=', filters.app);
  if (filters.team !== undefined) {
    const team = await db
      .selectFrom('teams')
      .select('id')
      .where('name', '=', filters.team)
      .executeTakeFirst();
    // A team you are not in is no more there than one that does not exist (as its routes say).
    if (!team || (myTeams && !myTeams.has(team.id))) {
      throw new UserError('not_found', `no team '${filters.team}'; 'petri teams' lists yours`);
    }
    query = query.where('audit_events.team_id', '=', team.id);
  }
  if (filters.user !== undefined) {
    const who = filters.user;
    const users = (
      await db
        .selectFrom('users')
        .select('id')
        .where((eb) => eb.or([eb('email', '=', who.toLowerCase()), eb('name', '=', who)]))
        .execute()
    ).map((r) => r.id);
    query = query.where((eb) =>
      eb.or([
        ...(users.length > 0 ? [eb('audit_events.actor_id', 'in', users)] : []),
        eb.and([eb('audit_events.actor_id', 'is', null), eb('audit_events.actor', '=', who)]),
      ]),
    );
  }
  if (filters.since !== undefined) query = query.where('audit_events.at', '>=', filters.since);
  if (filters.until !== undefined) query = query.where('audit_events.at', '<', filters.until);
  if (filters.action !== undefined) {
    const action = filters.action;
    const prefix = action.replace(/[\\%_]/g, (c) => `\\${c}`);
    query = query.where((eb) =>
      eb.or([
        eb('audit_events.action', '=', action),
        sql<boolean>`audit_events.action like ${`${prefix}.%`} escape '\\'`,
        sql<boolean>`audit_events.action like ${`${prefix} %`} escape '\\'`,
      ]),
    );
  }
  if (filters.outcome !== undefined) query = query.where('audit_events.outcome', '=', filters.outcome);
  if (filters.before !== undefined) query = query.where('audit_events.id', '<', filters.before);
  const rows = await query
    .orderBy('audit_events.id', 'desc')
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit);
  return {
    events: page.map((row) => present(row, myTeams)),
    next: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
  };
}

function present(
  row: Selectable<AuditEventsTable> & { team_name: string | null },
  myTeams: Set<number> | undefined,
): AuditEventView {
  // An event shown only because the viewer made it keeps another team's name to itself: a
  // refused request for an app of a team they are not in must not tell them whose it is.
  const team = row.team_id !== null && myTeams && !myTeams.has(row.team_id) ? null : row.team_name;
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    actorId: row.actor_id,
    tokenId: row.token_id,
    via: row.via,
    action: row.action,
    target: row.target,
    app: row.app,
    team,
    outcome: row.outcome,
    status: row.status,
    ip: row.source_ip,
    requestId: row.request_id,
    detail: parseDetail(row.detail),
  };
}

function parseDetail(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : { value };
  } catch {
    return { text };
  }
}

const UNITS_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** A time the trail is filtered by: a duration back from now (30m, 12h, 7d, 2w) or a date
 * or time (2026-03-01, 2026-03-01T12:00:00Z). Answers an ISO time. */
export function parseAuditTime(field: string, text: string, nowMs = Date.now()): string {
  const duration = /^(\d{1,6})([mhdw])$/.exec(text.trim());
  if (duration) return new Date(nowMs - Number(duration[1]) * UNITS_MS[duration[2]!]!).toISOString();
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim())) {
    const ms = Date.parse(text.trim());
    if (!Number.isNaN(ms)) return new Date(ms).toISOString();
  }
  throw new UserError(
    'bad_request',
    `${field} must be a duration back from now (30m, 12h, 7d, 2w) or a date or time (2026-03-01, 2026-03-01T12:00:00Z), got '${text}'`,
  );
}

// ---------------------------------------------------------------------------------------
// Verifying the chain.

export interface AuditVerification {
  ok: boolean;
  /** How many events were checked. */
  checked: number;
  /** The newest event and its hash: note them elsewhere to catch a rewrite of the whole chain. */
  last: { id: number; hash: string } | null;
  firstBad?: { id: number; reason: string };
}

const VERIFY_BATCH = 2000;

/** Walks the chain from the first event: each must carry the hash of the one before it,
 * hash to what it says, and follow it by id (ids are never reused, so a gap is a deletion). */
export async function verifyAudit(db: Store): Promise<AuditVerification> {
  // Read first: every id up to here had been committed, so each must still be there.
  const highest = await highestIdEver(db);
  let prev: { id: number; hash: string } | null = null;
  let checked = 0;
  const bad = (id: number, reason: string): AuditVerification => ({
    ok: false,
    checked,
    last: prev,
    firstBad: { id, reason },
  });
  for (;;) {
    const rows: Selectable<AuditEventsTable>[] = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('id', '>', prev?.id ?? 0)
      .orderBy('id')
      .limit(VERIFY_BATCH)
      .execute();
    for (const row of rows) {
      const expectedPrev: string = prev?.hash ?? AUDIT_GENESIS;
      const expectedId: number = (prev?.id ?? 0) + 1;
      if (row.hash !== chainHash(row.prev_hash, row)) {
        return bad(
          row.id,
          `event ${row.id} was changed after it was recorded: its fields no longer match its hash`,
        );
      }
      if (row.prev_hash !== expectedPrev) {
        return bad(
          row.id,
          row.id === expectedId
            ? `event ${row.id} does not follow ${prev ? `event ${prev.id}` : 'the start of the trail'}: an event before it was changed, removed or inserted`
            : `event ${row.id} does not follow ${prev ? `event ${prev.id}` : 'the start of the trail'}: ${missing(expectedId, row.id)}`,
        );
      }
      if (row.id !== expectedId)
        return bad(row.id, `${missing(expectedId, row.id)} (before event ${row.id})`);
      prev = { id: row.id, hash: row.hash };
      checked += 1;
    }
    if (rows.length < VERIFY_BATCH) break;
  }
  const lastId = prev?.id ?? 0;
  if (highest > lastId) {
    return bad(lastId + 1, `${missing(lastId + 1, highest + 1)} (the newest ones)`);
  }
  return { ok: true, checked, last: prev };
}

function missing(from: number, to: number): string {
  return to - from === 1
    ? `event ${from} is missing (deleted)`
    : `events ${from} to ${to - 1} are missing (deleted)`;
}

// Every app is an experiment: what it is, what data it holds (and, for personal data, why
// and for how long), whether an admin reviewed a sensitive one, its stage and its expiry.
// The rules of describing, approving and moving between stages live here; the lifecycle
// loop (controllers/lifecycle.ts) acts on expiry. Values come as text from three places,
// `petri apps create`/`set`, the API and petri.toml, and are checked once, here, with
// errors that name the field.
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { App, Audience, DataClass, Stage, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { type AppNameWhere, validateNewAppName } from './names.js';

export const DATA_CLASSES: readonly DataClass[] = ['none', 'anonymous', 'personal', 'sensitive'];
export const STAGES: readonly Stage[] = ['experiment', 'graduating', 'graduated', 'archived'];

/** Classes that need a privacy note and a retention. */
const PERSONAL: ReadonlySet<DataClass> = new Set(['personal', 'sensitive']);

export const DESCRIPTION_MAX = 500;
export const PRIVACY_MAX = 2000;
export const REDIRECT_MAX = 2000;
/** Ten years: a retention beyond that is a typo, not a policy. */
export const RETENTION_MAX_DAYS = 3650;
/** How long an experiment lives when the configuration does not say (lifecycle.defaultDays). */
export const DEFAULT_LIFETIME_DAYS = 90;

/** The lifetime of a new (or returned) experiment in days, from the server's configuration. */
export function defaultLifetimeDays(config: object): number {
  const days = (config as { lifecycle?: { defaultDays?: number } }).lifecycle?.defaultDays;
  return typeof days === 'number' && days > 0 ? days : DEFAULT_LIFETIME_DAYS;
}

/** The audience of a new app: the server's audience.default (issue 15), staff if unset. */
function defaultAudience(config: object): Audience {
  const given = (config as { audience?: { default?: unknown } }).audience?.default;
  return given === 'public' || given === 'invite' ? given : 'staff';
}

/**
 * An app may be public with personal or sensitive data only by an admin's approval of that
 * (issue 15): a change of its class into one of them takes it off public, to staff, as a
 * change of class takes back an approval. The audit detail of that move, or undefined.
 */
function offPublicFor(
  app: Pick<App, 'audience' | 'data_class'>,
  next: DataClass | undefined,
): Record<string, unknown> | undefined {
  if (app.audience !== 'public' || next === undefined || next === app.data_class) return undefined;
  if (!PERSONAL.has(next)) return undefined;
  return {
    from: 'public',
    to: 'staff',
    reason: `data=${next} is public only with an admin's approval ('petri audience set public --approve')`,
  };
}

/** When an experiment made (or brought back) now ends. */
export function expiryFrom(config: object, fromMs = Date.now()): string {
  return new Date(fromMs + defaultLifetimeDays(config) * 86_400_000).toISOString();
}

/** Sensitive data not (yet) approved by an admin for that class: its URL answers a page
 * saying it awaits review instead of serving. */
export function awaitsReview(app: Pick<App, 'data_class' | 'approved_class'>): boolean {
  return app.data_class === 'sensitive' && app.approved_class !== 'sensitive';
}

/** Whether a change of description takes back an admin's approval: the approval is of a
 * class and, for personal and sensitive data, of the privacy note and retention reviewed
 * with it. */
export function withdrawsApproval(
  app: Pick<App, 'approved_class' | DescriptionKey>,
  change: Partial<Pick<App, DescriptionKey>>,
): boolean {
  if (app.approved_class === null) return false;
  const differs = (key: DescriptionKey) => change[key] !== undefined && change[key] !== app[key];
  return differs('data_class') || differs('privacy_note') || differs('retention_days');
}
type DescriptionKey = 'data_class' | 'privacy_note' | 'retention_days';

/** Whether an admin approved the class the app declares now. */
export function isApproved(app: Pick<App, 'data_class' | 'approved_class'>): boolean {
  return app.approved_class !== null && app.approved_class === app.data_class;
}

export function parseDataClass(value: unknown, field = 'data'): DataClass {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : value;
  if (typeof text === 'string' && (DATA_CLASSES as readonly string[]).includes(text)) {
    return text as DataClass;
  }
  throw new UserError(
    'bad_request',
    `${field} must be one of ${DATA_CLASSES.join(', ')}, got ${shown(value)}`,
  );
}

const DAYS_PER: Record<string, number> = { d: 1, w: 7, m: 30, y: 365 };

/** A retention in whole days: 30d, 12w, 6m (months of 30 days), 1y, or a number of days. */
export function parseRetention(value: unknown, field = 'retention'): number {
  let days = Number.NaN;
  if (typeof value === 'number') days = value;
  else if (typeof value === 'string') {
    const match = /^(\d{1,5})\s*([dwmy]?)$/.exec(value.trim().toLowerCase());
    if (match) days = Number(match[1]) * (DAYS_PER[match[2] || 'd'] ?? Number.NaN);
  }
  if (!Number.isInteger(days) || days < 1 || days > RETENTION_MAX_DAYS) {
    throw new UserError(
      'bad_request',
      `${field} must be a duration in days from 1 day to 10 years, like 30d, 12w, 6m or 1y, got ${shown(value)}`,
    );
  }
  return days;
}

/** One line of plain text: no control characters (a terminal or a CSV would take them). */
export function parseText(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string')
    throw new UserError('bad_request', `${field} must be text, got ${shown(value)}`);
  const text = value.trim();
  if (text.length > max) {
    throw new UserError('bad_request', `${field} is ${text.length} characters; keep it to ${max}`);
  }
  // Tabs and newlines read as spaces; other control characters are refused.
  const flat = text.replace(/[\t\r\n]+/g, ' ');
  if (/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u.test(flat)) {
    throw new UserError('bad_request', `${field} must be plain text without control characters`);
  }
  return flat;
}

/** A graduated app's new home: an absolute http(s) URL, without credentials. */
export function parseRedirect(value: unknown, field = 'redirect'): string {
  const text = typeof value === 'string' ? value.trim() : '';
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw new UserError(
      'bad_request',
      `${field} must be an http:// or https:// URL, like https://tool.example.org/, got ${shown(value)}`,
    );
  }
  if (url.username || url.password) {
    throw new UserError('bad_request', `${field} must not carry a user name or password`);
  }
  if (text.length > REDIRECT_MAX || /[\s\p{Cc}]/u.test(text)) {
    throw new UserError(
      'bad_request',
      `${field} must be a URL of at most ${REDIRECT_MAX} characters, without spaces`,
    );
  }
  return url.toString();
}

/** An exact expiry: an ISO date or time (2027-03-01, 2027-03-01T00:00:00Z). */
export function parseExpiry(value: unknown, field = 'expires'): string {
  const text = typeof value === 'string' ? value.trim() : '';
  const ms = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)
    ? Date.parse(text)
    : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new UserError(
      'bad_request',
      `${field} must be a date or time like 2027-03-01 or 2027-03-01T00:00:00Z, got ${shown(value)}`,
    );
  }
  return new Date(ms).toISOString();
}

function shown(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 60 ? `${value.slice(0, 60)}...` : value}'`;
  if (value === undefined) return 'nothing';
  return JSON.stringify(value)?.slice(0, 60) ?? String(value);
}

/** What describes an experiment, as given (text from the CLI, the API or petri.toml). */
export interface DescriptionInput {
  description?: unknown;
  data?: unknown;
  privacy?: unknown;
  retention?: unknown;
}

/** The columns a description sets. */
export interface DescriptionColumns {
  description?: string;
  data_class?: DataClass;
  privacy_note?: string | null;
  retention_days?: number | null;
}

/** Parses what was given, field by field (only those given). */
export function parseDescription(input: DescriptionInput, prefix = ''): DescriptionColumns {
  const out: DescriptionColumns = {};
  if (input.description !== undefined)
    out.description = parseText(input.description, `${prefix}description`, DESCRIPTION_MAX);
  if (input.data !== undefined) out.data_class = parseDataClass(input.data, `${prefix}data`);
  if (input.privacy !== undefined) {
    const note = input.privacy === null ? '' : parseText(input.privacy, `${prefix}privacy`, PRIVACY_MAX);
    out.privacy_note = note === '' ? null : note;
  }
  if (input.retention !== undefined) {
    out.retention_days =
      input.retention === null || input.retention === ''
        ? null
        : parseRetention(input.retention, `${prefix}retention`);
  }
  return out;
}

/**
 * The rule of the data classes, on the description as it would be: personal and sensitive
 * data need a privacy note (what is collected, why) and a retention. The error names what
 * is missing and the command that gives it.
 */
export function checkDescription(
  name: string,
  state: { data_class: DataClass; privacy_note: string | null; retention_days: number | null },
  how: 'set' | 'create' | 'toml' = 'set',
): void {
  if (!PERSONAL.has(state.data_class)) return;
  const missing = [
    state.privacy_note ? undefined : 'privacy',
    state.retention_days === null ? 'retention' : undefined,
  ].filter((m): m is string => m !== undefined);
  if (missing.length === 0) return;
  const privacy = missing.includes('privacy');
  const retention = missing.includes('retention');
  let fix: string;
  if (how === 'toml') {
    fix = `add ${[privacy && 'privacy = "what is collected, why"', retention && 'retention = "30d"'].filter(Boolean).join(' and ')} to petri.toml`;
  } else if (how === 'create') {
    fix = `petri apps create ${name} --data ${state.data_class}${privacy ? " --privacy 'what is collected, why'" : ''}${retention ? ' --retention 30d' : ''}`;
  } else {
    fix = `petri apps set ${name} data=${state.data_class}${privacy ? " privacy='what is collected, why'" : ''}${retention ? ' retention=30d' : ''}`;
  }
  throw new UserError(
    'bad_request',
    `data=${state.data_class} needs a privacy note and a retention (${missing.join(' and ')} missing); ${fix}`,
  );
}

/** The columns of a new app's description and expiry (petri apps create), checked before it
 * is made so that a refused description (or a reserved name) makes no app. */
export function describeNewApp(name: unknown, input: DescriptionInput, config: AppNameWhere) {
  const appName = validateNewAppName(name, config);
  const parsed = parseDescription(input);
  const columns = {
    description: parsed.description ?? '',
    data_class: parsed.data_class ?? 'none',
    privacy_note: parsed.privacy_note ?? null,
    retention_days: parsed.retention_days ?? null,
  };
  checkDescription(appName, columns, 'create');
  return { ...columns, expires_at: expiryFrom(config), audience: defaultAudience(config) };
}

/** The audit detail of a description's change, in the words of `petri apps set`. */
function describeDetail(described: DescriptionColumns): Record<string, unknown> {
  const detail: Record<string, unknown> = {};
  if (described.description !== undefined) detail.description = described.description;
  if (described.data_class !== undefined) detail.data = described.data_class;
  if (described.privacy_note !== undefined) detail.privacy = described.privacy_note;
  if (described.retention_days !== undefined) detail.retentionDays = described.retention_days;
  return detail;
}

/** What `petri apps set` may change here, as text (the other keys are settings and limits). */
export interface ExperimentChange extends DescriptionInput {
  expires?: unknown;
  stage?: unknown;
  redirect?: unknown;
}

export const EXPERIMENT_KEYS = [
  'description',
  'data',
  'privacy',
  'retention',
  'expires',
  'stage',
  'redirect',
] as const;

/**
 * `petri apps set NAME key=value ...` for the experiment's keys, in one transaction:
 * description, data, privacy, retention (the team's members); expires and stage (platform
 * admins); redirect (the team's admins and platform admins, graduated apps only). A change
 * of data class takes back an earlier approval. Each kind of change is audited on its own:
 * app.describe, app.expires, app.stage, app.redirect.
 */
export async function setExperiment(
  db: Store,
  user: User,
  app: App,
  change: ExperimentChange,
  opts: { teamRole: string | null; config: object; ip?: string },
): Promise<App> {
  const admin = user.role === 'admin';
  const teamAdmin = admin || opts.teamRole === 'admin';
  const described = parseDescription(change);
  const expires = change.expires === undefined ? undefined : parseExpiry(change.expires);
  let stage: Stage | undefined;
  if (change.stage !== undefined) {
    const text = typeof change.stage === 'string' ? change.stage.trim().toLowerCase() : '';
    if (text !== 'graduated' && text !== 'experiment') {
      throw new UserError(
        'bad_request',
        `stage must be graduated or experiment, got ${shown(change.stage)} ('petri graduate' starts a handoff; archiving is the lifecycle's)`,
      );
    }
    stage = text;
  }
  let redirect: string | null | undefined;
  if (change.redirect !== undefined) {
    redirect =
      change.redirect === null || change.redirect === '' || change.redirect === 'none'
        ? null
        : parseRedirect(change.redirect);
  }
  if (expires !== undefined && !admin) {
    throw new UserError(
      'forbidden',
      `expires is set by admins; to extend '${app.name}', run 'petri apps renew ${app.name}'`,
    );
  }
  if (stage !== undefined && !admin) {
    throw new UserError(
      'forbidden',
      `stage is set by admins; ask an admin to set stage=${stage} on '${app.name}'`,
    );
  }
  if (redirect !== undefined && !teamAdmin) {
    throw new UserError(
      'forbidden',
      `redirect is set by the team's admins; ask one of the admins of '${app.name}''s team`,
    );
  }

  return db.transaction().execute(async (tx) => {
    // Read again inside the transaction: two changes at once must each see the other's.
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
    if (fresh.stage === 'archived') {
      throw new UserError(
        'conflict',
        `'${app.name}' is archived: its name stays reserved to its team, nothing else changes`,
      );
    }
    const set: Partial<App> = {};
    const audits: [string, Record<string, unknown>][] = [];

    const next = {
      data_class: described.data_class ?? fresh.data_class,
      privacy_note: described.privacy_note !== undefined ? described.privacy_note : fresh.privacy_note,
      retention_days:
        described.retention_days !== undefined ? described.retention_days : fresh.retention_days,
    };
    if (Object.keys(described).length > 0) {
      checkDescription(app.name, next);
      Object.assign(set, described);
      // The notice visitors read says something new: they are asked again (issue 15).
      if (
        Object.entries(described).some(([key, value]) => fresh[key as keyof DescriptionColumns] !== value)
      ) {
        set.notice_version = fresh.notice_version + 1;
        set.audience_key_version = fresh.audience_key_version + 1;
      }
      const detail = describeDetail(described);
      if (described.data_class !== undefined && described.data_class !== fresh.data_class) {
        detail.dataWas = fresh.data_class;
      }
      // An approval is of what the admin reviewed: another class, note or retention needs a
      // review of its own.
      if (withdrawsApproval(fresh, described)) {
        set.approved_class = null;
        set.approved_by = null;
        set.approved_at = null;
        detail.approvalWithdrawn = fresh.approved_class;
      }
      audits.push(['app.describe', detail]);
      const offPublic = offPublicFor(fresh, described.data_class);
      if (offPublic) {
        set.audience = 'staff';
        audits.push(['app.audience', offPublic]);
      }
    }

    const stageNow = stage ?? fresh.stage;
    if (stage !== undefined && stage !== fresh.stage) {
      set.stage = stage;
      if (stage === 'graduated') {
        // Handed off: it serves (or redirects) until an admin retires it; no expiry.
        set.expires_at = null;
        set.expired_at = null;
      } else {
        // Back to an experiment: a fresh lifetime, and no redirect any more.
        set.expires_at = expiryFrom(opts.config);
        set.expired_at = null;
        set.redirect_url = null;
      }
      audits.push(['app.stage', { from: fresh.stage, to: stage }]);
    }

    if (expires !== undefined) {
      if (stageNow !== 'experiment') {
        throw new UserError(
          'conflict',
          `'${app.name}' is ${stageNow}: only an experiment expires (set stage=experiment first)`,
        );
      }
      set.expires_at = expires;
      // An exact time in the future brings an expired experiment back, as a renewal does.
      if (Date.parse(expires) > Date.now()) set.expired_at = null;
      audits.push(['app.expires', { from: fresh.expires_at, to: expires }]);
    }

    if (redirect !== undefined) {
      if (redirect !== null && stageNow !== 'graduated') {
        throw new UserError(
          'conflict',
          `redirect is for graduated apps; '${app.name}' is ${stageNow} (an admin sets stage=graduated once the handoff is done)`,
        );
      }
      set.redirect_url = redirect;
      audits.push(['app.redirect', { from: fresh.redirect_url, to: redirect }]);
    }

    if (Object.keys(set).length === 0) return fresh;
    const updated = await tx
      .updateTable('apps')
      .set(set)
      .where('id', '=', app.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    for (const [action, detail] of audits) {
      await recordAudit(tx, actorOf(user, opts.ip), action, app.name, detail, {
        app: app.name,
        teamId: app.team_id,
      });
    }
    return updated;
  });
}

/**
 * An admin's approval of the data class the app declares (audited as app.approve): a
 * sensitive experiment then serves beyond its team. Approving is for personal and sensitive
 * data; a later change of class takes it back.
 */
export async function approveApp(
  db: Store,
  user: User,
  app: App,
  ip?: string,
  /** What the admin reviewed: refused when the app says something else now. */
  reviewed: { data?: DataClass; privacyNote?: string | null; retentionDays?: number | null } = {},
): Promise<App> {
  return db.transaction().execute(async (tx) => {
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
    const changed = [
      reviewed.data !== undefined && reviewed.data !== fresh.data_class
        ? `data is now ${fresh.data_class}`
        : '',
      reviewed.privacyNote !== undefined && reviewed.privacyNote !== fresh.privacy_note
        ? 'the privacy note changed'
        : '',
      reviewed.retentionDays !== undefined && reviewed.retentionDays !== fresh.retention_days
        ? `retention is now ${fresh.retention_days === null ? 'none' : `${fresh.retention_days} days`}`
        : '',
    ].filter(Boolean);
    if (changed.length > 0) {
      throw new UserError(
        'conflict',
        `'${app.name}' changed since you reviewed it (${changed.join('; ')}): nothing approved; review it again (petri apps info ${app.name})`,
      );
    }
    if (!PERSONAL.has(fresh.data_class)) {
      throw new UserError(
        'conflict',
        `'${app.name}' declares data=${fresh.data_class}: only personal or sensitive data is reviewed`,
      );
    }
    if (fresh.approved_class === fresh.data_class) return fresh;
    const updated = await tx
      .updateTable('apps')
      .set({ approved_class: fresh.data_class, approved_by: user.id, approved_at: now() })
      .where('id', '=', app.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(
      tx,
      actorOf(user, ip),
      'app.approve',
      app.name,
      { data: fresh.data_class, privacy: fresh.privacy_note, retentionDays: fresh.retention_days },
      { app: app.name, teamId: app.team_id },
    );
    return updated;
  });
}

/**
 * petri.toml's description, data, privacy and retention, applied at deploy (before the
 * release is made). Only the keys the file gives change; the same rules as `petri apps set`
 * apply to the result, so a build whose petri.toml declares personal data without a privacy
 * note fails, naming it. Audited as app.describe by the deploy's author.
 */
export async function describeFromManifest(
  db: Store,
  stale: App,
  input: DescriptionInput,
  /** Who deployed (the deploy's author): the change is theirs in the audit trail. */
  byUserId: number,
): Promise<void> {
  const parsed = parseDescription(input, 'petri.toml: ');
  await db.transaction().execute(async (tx) => {
    // The row as it is now, not as the build loop read it before a build of many minutes:
    // a class changed meanwhile must be compared (and its approval withdrawn) against this.
    const app = (await tx.selectFrom('apps').selectAll().where('id', '=', stale.id).executeTakeFirst()) as
      | App
      | undefined;
    if (!app) return;
    const changed = Object.fromEntries(
      Object.entries(parsed).filter(([key, value]) => app[key as keyof DescriptionColumns] !== value),
    ) as DescriptionColumns;
    const next = {
      data_class: parsed.data_class ?? app.data_class,
      privacy_note: parsed.privacy_note !== undefined ? parsed.privacy_note : app.privacy_note,
      retention_days: parsed.retention_days !== undefined ? parsed.retention_days : app.retention_days,
    };
    checkDescription(app.name, next, 'toml');
    if (Object.keys(changed).length === 0) return;
    const set: Partial<App> = { ...changed };
    const withdrawn = withdrawsApproval(app, changed);
    if (withdrawn) {
      set.approved_class = null;
      set.approved_by = null;
      set.approved_at = null;
    }
    const offPublic = offPublicFor(app, changed.data_class);
    if (offPublic) set.audience = 'staff';
    await tx
      .updateTable('apps')
      .set((eb) => ({
        ...set,
        // The notice visitors read says something new: they are asked again (issue 15).
        notice_version: eb('notice_version', '+', 1),
        audience_key_version: eb('audience_key_version', '+', 1),
      }))
      .where('id', '=', app.id)
      .execute();
    const by = await tx.selectFrom('users').select('name').where('id', '=', byUserId).executeTakeFirst();
    await recordAudit(
      tx,
      { name: by?.name ?? 'petri', userId: by ? byUserId : null },
      'app.describe',
      app.name,
      {
        ...describeDetail(changed),
        ...(withdrawn ? { approvalWithdrawn: app.approved_class } : {}),
        via: 'petri.toml',
      },
      { app: app.name, teamId: app.team_id },
    );
    if (offPublic) {
      await recordAudit(
        tx,
        { name: by?.name ?? 'petri', userId: by ? byUserId : null },
        'app.audience',
        app.name,
        { ...offPublic, via: 'petri.toml' },
        { app: app.name, teamId: app.team_id },
      );
    }
  });
}

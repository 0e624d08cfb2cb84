// An experiment's life after its birth: renewals, the warnings before it expires, expiry (its
// processes stop, its URL answers 410), and archiving after the grace period (final backups,
// then its history and files go; the row and its name stay with its team). Desired state in
// the store, acted on by the lifecycle loop (controllers/lifecycle.ts): every step is a
// guarded update, so a restart at any point takes up where it stopped, and a warning is one
// row and one audit event in one transaction, so it is never sent twice.
import type { LifecycleConfig, Quotas } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { redirectLocation } from '../lib/redirect-location.js';
import { now, type Store } from '../store/db.js';
import type { App, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { type Actor, recordAudit } from './audit.js';
import { userName } from './auth.js';
import { assertWithinQuota, desiredInstances } from './quotas.js';

export const DAY_MS = 86_400_000;
/** The platform, as the actor of what the loop does. */
export const PLATFORM: Actor = { name: 'petri' };
/** The longest renewal even an admin may give: a century is a typo. */
const MAX_PERIOD_DAYS = 36_500;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS };

/** A renewal period: 90d, 12h, 2w, 30m, 45s, or a number of days; in ms. */
export function parsePeriod(value: unknown, field = 'for'): number {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  const match = /^(\d{1,6}(?:\.\d{1,6})?)\s*([smhdw]?)$/i.exec(text);
  const ms = match ? Number(match[1]) * (UNIT_MS[(match[2] || 'd').toLowerCase()] ?? Number.NaN) : Number.NaN;
  if (!Number.isFinite(ms) || ms < 1000 || ms > MAX_PERIOD_DAYS * DAY_MS) {
    const shown = typeof value === 'string' ? `'${value.slice(0, 40)}'` : String(value);
    throw new UserError(
      'bad_request',
      `${field} must be a period like 90d, 2w, 12h or 30m (at least 1s, at most ${MAX_PERIOD_DAYS} days), got ${shown}`,
    );
  }
  return ms;
}

/** 90 days, 1 day, 12 hours, 30 minutes, 45 seconds: the largest unit the period is a whole
 * number of, else the largest of which it is at least two, to a tenth. */
export function formatPeriod(ms: number): string {
  const abs = Math.abs(ms);
  const units: [string, number][] = [
    ['day', DAY_MS],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1000],
  ];
  const [unit, size] =
    units.find(([, size]) => abs >= size && abs % size === 0) ??
    units.find(([, size]) => abs >= 2 * size) ??
    units[units.length - 1]!;
  const n = Math.round((abs / size) * 10) / 10;
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** 2027-03-01 00:00 UTC. */
export function readableTime(iso: string): string {
  return `${new Date(iso).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Where the app is in its life, as the loop and the answers see it. */
export type LifeState = 'live' | 'expired' | 'archiving' | 'archived' | 'no-expiry';

export function lifeState(app: Pick<App, 'stage' | 'expires_at' | 'expired_at' | 'archived_at'>): LifeState {
  if (app.stage === 'archived') return app.archived_at === null ? 'archiving' : 'archived';
  if (app.stage !== 'experiment' || app.expires_at === null) return 'no-expiry';
  return app.expired_at === null ? 'live' : 'expired';
}

/** Whether the app's processes must not run: it expired (until renewed) or was archived. */
export function stoppedByLifecycle(
  app: Pick<App, 'stage' | 'expires_at' | 'expired_at' | 'archived_at'>,
): boolean {
  const state = lifeState(app);
  return state === 'expired' || state === 'archiving' || state === 'archived';
}

/**
 * The warning shown with every answer about the app (the Petri-Warning header, printed by the
 * CLI on stderr) while it expires within the first warning's period (14 days), once it has
 * expired, and once it is archived; undefined otherwise.
 */
export function expiryWarning(
  app: Pick<App, 'name' | 'stage' | 'expires_at' | 'expired_at' | 'archived_at'>,
  config: Pick<LifecycleConfig, 'warnDays' | 'archiveAfterDays'>,
  at = Date.now(),
): string | undefined {
  const state = lifeState(app);
  const renew = `'petri apps renew ${app.name}'`;
  if (state === 'archived' || state === 'archiving') {
    return `'${app.name}' was archived${app.archived_at ? ` on ${readableTime(app.archived_at)}` : ''}: it no longer runs, its add-ons' final backups are kept for a while, and ${renew} brings the name back as a new, empty experiment`;
  }
  if (state !== 'live' && state !== 'expired') return undefined;
  const expires = Date.parse(app.expires_at!);
  if (state === 'expired' || expires <= at) {
    const since = app.expired_at ?? app.expires_at!;
    const archive = new Date(Date.parse(since) + config.archiveAfterDays * DAY_MS).toISOString();
    return `'${app.name}' expired on ${readableTime(since)}: it is stopped and its URL answers 410; ${renew} brings it back with its data (it is archived on ${readableTime(archive)} otherwise)`;
  }
  const window = (config.warnDays[0] ?? 0) * DAY_MS;
  if (expires - at > window) return undefined;
  return `'${app.name}' expires in ${formatPeriod(expires - at)} (${readableTime(app.expires_at!)}); renew it with ${renew}`;
}

/**
 * `petri apps renew NAME [--for 90d]`: the experiment ends `for` from now (default
 * lifecycle.defaultDays). Its team may renew for up to lifecycle.maxDays; platform admins for
 * any period. An expired app comes back with its data (the reconciler starts it); an archived
 * one comes back as a new, empty experiment under its name (deploy it again; its add-ons'
 * final backups can be restored into new add-ons). Audited as app.renew.
 */
export async function renewApp(
  db: Store,
  user: User,
  app: App,
  period: unknown,
  /** The renewal periods, and the team quotas that an archived app's return must fit. */
  config: Pick<LifecycleConfig, 'defaultDays' | 'maxDays'> & { quotas: Quotas },
  ip?: string,
): Promise<App> {
  const admin = user.role === 'admin';
  const maxMs = config.maxDays * DAY_MS;
  let ms: number;
  if (period === undefined || period === null) {
    ms = admin ? config.defaultDays * DAY_MS : Math.min(config.defaultDays * DAY_MS, maxMs);
  } else {
    ms = parsePeriod(period);
    if (!admin && ms > maxMs) {
      throw new UserError(
        'bad_request',
        `for: ${String(period).trim()} is beyond the maximum renewal of ${formatPeriod(maxMs)} (lifecycle.maxDays); renew for ${formatPeriod(maxMs)} or less, or ask a Petri admin for longer`,
      );
    }
  }
  return db.transaction().execute(async (tx) => {
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
    const state = lifeState(fresh);
    if (fresh.stage === 'graduating') {
      throw new UserError(
        'conflict',
        `'${app.name}' is graduating: its expiry is suspended until the handoff ends (an admin sets stage=graduated, or stage=experiment to take it back) or its deadline${fresh.expires_at ? `, ${fresh.expires_at},` : ''} comes near`,
      );
    }
    if (fresh.stage === 'graduated') {
      throw new UserError(
        'conflict',
        `'${app.name}' has graduated: it no longer expires, there is nothing to renew`,
      );
    }
    if (state === 'archiving') {
      throw new UserError(
        'conflict',
        `'${app.name}' is being archived now (its add-ons' final backups are being taken); try again in a minute`,
      );
    }
    if (state === 'archived') {
      // An archived app counted for nothing in its team's quota: coming back, it is a new app.
      const instances = await desiredInstances(tx, fresh.id);
      await assertWithinQuota(tx, fresh.team_id, config.quotas, {
        apps: 1,
        memoryMiB: instances * fresh.memory_mib,
        what: `bringing back the archived '${app.name}'`,
      });
    }
    const expiresAt = new Date(Date.now() + ms).toISOString();
    const updated = await tx
      .updateTable('apps')
      .set({
        expires_at: expiresAt,
        expired_at: null,
        ...(state === 'archived' ? { stage: 'experiment' as const, archived_at: null } : {}),
      })
      .where('id', '=', app.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(
      tx,
      actorOf(user, ip),
      'app.renew',
      app.name,
      {
        for: formatPeriod(ms),
        expiresAt,
        previous: fresh.expires_at,
        ...(state === 'expired' ? { wasExpired: fresh.expired_at } : {}),
        ...(state === 'archived' ? { wasArchived: fresh.archived_at } : {}),
      },
      { app: app.name, teamId: app.team_id },
    );
    return updated;
  });
}

// ---- The loop's questions and steps ------------------------------------------------------

/** Experiments within the first warning's period of their expiry, not yet expired. */
export function appsNearExpiry(db: Store, at: number, windowDays: number): Promise<App[]> {
  return db
    .selectFrom('apps')
    .selectAll()
    .where('stage', '=', 'experiment')
    .where('expired_at', 'is', null)
    .where('expires_at', 'is not', null)
    .where('expires_at', '<=', new Date(at + windowDays * DAY_MS).toISOString())
    .execute();
}

/** The thresholds already warned of, per app, for the app's current expiry. */
export async function warningsSent(db: Store, apps: App[]): Promise<Map<number, Set<number>>> {
  const sent = new Map<number, Set<number>>();
  if (apps.length === 0) return sent;
  const rows = await db
    .selectFrom('app_warnings')
    .select(['app_id', 'expires_at', 'days'])
    .where(
      'app_id',
      'in',
      apps.map((a) => a.id),
    )
    .execute();
  const expiry = new Map(apps.map((a) => [a.id, a.expires_at]));
  for (const row of rows) {
    if (expiry.get(row.app_id) !== row.expires_at) continue;
    const set = sent.get(row.app_id) ?? new Set<number>();
    set.add(row.days);
    sent.set(row.app_id, set);
  }
  return sent;
}

export interface ExpiryWarning {
  app: string;
  appId: number;
  teamId: number;
  owner: number;
  days: number;
  expiresAt: string;
}

/**
 * Records the warning of `days` before the app's expiry: its row and its audit event
 * (app.expiry.warning) in one transaction, and only if the app still expires then and the
 * row is new. Returns the warning when this call sent it, so it can also go out by mail.
 */
export async function sendWarning(db: Store, app: App, days: number): Promise<ExpiryWarning | undefined> {
  return db.transaction().execute(async (tx) => {
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirst();
    if (!fresh || lifeState(fresh) !== 'live' || fresh.expires_at !== app.expires_at) return undefined;
    const inserted = await tx
      .insertInto('app_warnings')
      .values({ app_id: app.id, expires_at: fresh.expires_at!, days, sent_at: now() })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return undefined;
    const left = Date.parse(fresh.expires_at!) - Date.now();
    await recordAudit(
      tx,
      PLATFORM,
      'app.expiry.warning',
      app.name,
      { days, expiresAt: fresh.expires_at, left: formatPeriod(Math.max(0, left)) },
      { app: app.name, teamId: app.team_id },
    );
    return {
      app: app.name,
      appId: app.id,
      teamId: app.team_id,
      owner: app.owner_id,
      days,
      expiresAt: fresh.expires_at!,
    };
  });
}

/** Experiments whose expiry has passed and that still run. */
export function appsToExpire(db: Store, at: number): Promise<App[]> {
  return db
    .selectFrom('apps')
    .selectAll()
    .where('stage', '=', 'experiment')
    .where('expired_at', 'is', null)
    .where('expires_at', '<=', new Date(at).toISOString())
    .execute();
}

/** Graduating apps whose handoff deadline (expires_at) falls within the first warning's
 * period, or has passed: the lifecycle takes them back. */
export function handoffsDue(db: Store, at: number, windowDays: number): Promise<App[]> {
  return db
    .selectFrom('apps')
    .selectAll()
    .where('stage', '=', 'graduating')
    .where('expires_at', 'is not', null)
    .where('expires_at', '<=', new Date(at + windowDays * DAY_MS).toISOString())
    .execute();
}

/** A handoff no admin closed by its deadline: the app is an experiment again that expires at
 * the deadline (warned as any other), audited as app.stage. Guarded: an admin's change of
 * stage in between wins. True when this call moved it. */
export async function endHandoff(db: Store, app: App): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const result = await tx
      .updateTable('apps')
      .set({ stage: 'experiment' })
      .where('id', '=', app.id)
      .where('stage', '=', 'graduating')
      .where('expires_at', '=', app.expires_at)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return false;
    await recordAudit(
      tx,
      PLATFORM,
      'app.stage',
      app.name,
      {
        from: 'graduating',
        to: 'experiment',
        reason: `no admin closed the handoff (stage=graduated): it expires at its deadline, ${app.expires_at}, unless renewed`,
      },
      { app: app.name, teamId: app.team_id },
    );
    return true;
  });
}

/** Marks the app expired (the reconciler then stops it; its formation stays). Guarded: a
 * renewal in between wins. True when this call expired it. */
export async function expireApp(db: Store, app: App): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const at = now();
    const result = await tx
      .updateTable('apps')
      .set({ expired_at: at })
      .where('id', '=', app.id)
      .where('stage', '=', 'experiment')
      .where('expired_at', 'is', null)
      .where('expires_at', '<=', at)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return false;
    await recordAudit(
      tx,
      PLATFORM,
      'app.expired',
      app.name,
      { expiresAt: app.expires_at },
      { app: app.name, teamId: app.team_id },
    );
    return true;
  });
}

/** Expired longer than the grace period (to archive), and archives a restart cut off. */
export function appsToArchive(db: Store, at: number, archiveAfterDays: number): Promise<App[]> {
  const before = new Date(at - archiveAfterDays * DAY_MS).toISOString();
  return db
    .selectFrom('apps')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb.and([eb('stage', '=', 'experiment'), eb('expired_at', '<=', before)]),
        eb.and([eb('stage', '=', 'archived'), eb('archived_at', 'is', null)]),
      ]),
    )
    .execute();
}

/** Starts the archive: stage archived, not yet done (renewals wait). Undefined when a
 * renewal came first. */
export async function beginArchive(db: Store, app: App): Promise<App | undefined> {
  if (app.stage === 'archived') return app;
  return db
    .updateTable('apps')
    .set({ stage: 'archived' })
    .where('id', '=', app.id)
    .where('stage', '=', 'experiment')
    .where('expired_at', '=', app.expired_at)
    .returningAll()
    .executeTakeFirst();
}

/** A final backup failed: nothing was removed; the app is an expired experiment again, and
 * the audit trail says why (app.archive.failed). The loop tries again later. */
export async function abandonArchive(db: Store, app: App, error: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await tx
      .updateTable('apps')
      .set({ stage: 'experiment' })
      .where('id', '=', app.id)
      .where('stage', '=', 'archived')
      .where('archived_at', 'is', null)
      .execute();
    await recordAudit(
      tx,
      PLATFORM,
      'app.archive.failed',
      app.name,
      { error, kept: 'everything: no data is removed without its final backup' },
      { app: app.name, teamId: app.team_id, outcome: 'failed' },
    );
  });
}

/** Every final backup was taken: the app is archived (its releases and files go next). */
export async function finishArchive(
  db: Store,
  app: App,
  backups: { addon: string; backup: string }[],
): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const result = await tx
      .updateTable('apps')
      .set({ archived_at: now(), desired_release_id: null, serving_release_id: null, sleeping_since: null })
      .where('id', '=', app.id)
      .where('stage', '=', 'archived')
      .where('archived_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return;
    await recordAudit(
      tx,
      PLATFORM,
      'app.archived',
      app.name,
      { expiredAt: app.expired_at, finalBackups: backups },
      { app: app.name, teamId: app.team_id },
    );
  });
}

/** The final backups taken of the app's add-ons since `since` (for the audit event), newest
 * per add-on. */
export async function finalBackupsOf(
  db: Store,
  appId: number,
  since: string,
): Promise<{ addon: string; backup: string }[]> {
  const rows = await db
    .selectFrom('addon_backups')
    .innerJoin('addons', 'addons.id', 'addon_backups.addon_id')
    .select(['addons.name as addon', 'addon_backups.id as id'])
    .where('addons.app_id', '=', appId)
    .where('addon_backups.kind', '=', 'final')
    .where('addon_backups.status', '=', 'succeeded')
    .where('addon_backups.created_at', '>=', since)
    .orderBy('addon_backups.id')
    .execute();
  const newest = new Map(rows.map((r) => [r.addon, `b${r.id}`]));
  return [...newest].map(([addon, backup]) => ({ addon, backup }));
}

/** Archived apps, each with whether it still has releases or deploys (what removeHistory
 * takes): one query however many apps were ever archived. */
export async function archivedApps(db: Store): Promise<(App & { has_history: boolean })[]> {
  const rows = await db
    .selectFrom('apps')
    .selectAll('apps')
    .select((eb) =>
      eb
        .or([
          eb.exists(
            eb.selectFrom('releases').select('releases.id').whereRef('releases.app_id', '=', 'apps.id'),
          ),
          eb.exists(eb.selectFrom('deploys').select('deploys.id').whereRef('deploys.app_id', '=', 'apps.id')),
        ])
        .as('has_history'),
    )
    .where('stage', '=', 'archived')
    .where('archived_at', 'is not', null)
    .execute();
  return rows.map((r) => ({ ...r, has_history: Boolean(r.has_history) }));
}

/** The names of these users, in one query (the router's answers name apps' owners). */
export async function userNames(db: Store, ids: readonly number[]): Promise<Map<number, string>> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return new Map();
  const rows = await db.selectFrom('users').select(['id', 'name']).where('id', 'in', unique).execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}

/**
 * Removes an archived app's releases and deploys once none of its processes is left and no
 * build of it runs; true when there is nothing (left) to remove. Its row, formation, config
 * and audit trail stay.
 */
export async function removeHistory(db: Store, appId: number): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const app = await tx.selectFrom('apps').selectAll().where('id', '=', appId).executeTakeFirst();
    if (!app || lifeState(app) !== 'archived') return false;
    const running = await tx
      .selectFrom('instances')
      .select('id')
      .where('app_id', '=', appId)
      .executeTakeFirst();
    const building = await tx
      .selectFrom('deploys')
      .select('id')
      .where('app_id', '=', appId)
      .where('status', 'in', ['queued', 'building', 'releasing'])
      .executeTakeFirst();
    if (running || building) return false;
    await tx.deleteFrom('releases').where('app_id', '=', appId).execute();
    await tx.deleteFrom('deploys').where('app_id', '=', appId).execute();
    return true;
  });
}

// ---- What the router answers for the app ------------------------------------------------

/** What the router answers instead of the app (the router's RouteAnswer, by shape). */
export type AppAnswer =
  | { kind: 'expired'; owner: string; since: string }
  | { kind: 'archived'; owner: string; since: string }
  | { kind: 'redirect'; location: string };

/**
 * What the router answers instead of the app: an experiment that expired or was archived
 * (410, naming it, its owner and how to renew), a graduated app with a new home (308 there).
 * Undefined: it serves (one awaiting review too: the router gates it, see route-gate.ts).
 */
export async function routeAnswerOf(
  db: Store,
  app: App,
  ownerName: (userId: number) => Promise<string | undefined> = (id) => userName(db, id),
): Promise<AppAnswer | undefined> {
  const state = lifeState(app);
  const owner = async () => (await ownerName(app.owner_id)) ?? 'a former user';
  if (state === 'archived' || state === 'archiving') {
    return { kind: 'archived', owner: await owner(), since: app.archived_at ?? app.expired_at ?? now() };
  }
  if (state === 'expired') return { kind: 'expired', owner: await owner(), since: app.expired_at! };
  if (app.stage === 'graduated' && app.redirect_url) {
    const location = redirectLocation(app.redirect_url);
    if (location !== undefined) return { kind: 'redirect', location };
  }
  return undefined;
}

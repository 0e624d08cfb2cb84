// The lifecycle loop: every lifecycle.checkMs it moves each experiment along its life, from
// what the store says alone, so a restart at any point neither skips nor repeats a step:
// - warnings lifecycle.warnDays before expiry: each once (its row and audit event are one
//   transaction), including those that fell due while the control plane was down;
// - expiry: expired_at set, the reconciler stops the processes (the formation stays) and the
//   router answers 410;
// - archiving lifecycle.archiveAfterDays after expiry: a final backup of every add-on first
//   (as on destroy); if one fails nothing is removed, the audit trail says why and the loop
//   tries again later; then the add-ons' data, the releases, deploys, build cache, slugs and
//   repository go. The app's row stays (stage archived), so its name stays with its team.

import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  abandonArchive,
  appsNearExpiry,
  appsToArchive,
  appsToExpire,
  archivedApps,
  beginArchive,
  DAY_MS,
  type ExpiryWarning,
  endHandoff,
  expireApp,
  finalBackupsOf,
  finishArchive,
  handoffsDue,
  removeHistory,
  sendWarning,
  warningsSent,
} from '../domain/lifecycle.js';
import { Backoff } from '../lib/backoff.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { Loop } from '../lib/loop.js';
import type { DataPaths } from '../lib/paths.js';
import { removeTree } from '../lib/remove-tree.js';
import type { Store } from '../store/db.js';
import type { App, User } from '../store/schema.js';

/** The platform as the "user" of the add-on service's final backups and removals: 'petri' in
 * the backups' created_by and in the audit trail, with no account (a null id: its events are
 * the platform's, not some user's). The service reads only its name and id on this path. */
const PLATFORM_USER = {
  id: null,
  name: 'petri',
  role: 'admin',
  kind: 'bot',
  disabled_at: null,
} as unknown as User;

/** A failed archive is tried again after this, doubling up to an hour: each failure is an
 * audit event, and a backup that cannot be taken now will not be a second later. */
const ARCHIVE_RETRY_MS = 60_000;
const ARCHIVE_RETRY_MAX_MS = 3_600_000;
/** Archives at a time: each one's final backups load the add-on servers. */
const ARCHIVE_CONCURRENCY = 2;

export interface LifecycleDeps {
  db: Store;
  config: PetriConfig;
  paths: DataPaths;
  /** Final backups, then removal, of every add-on of an app (services/addons.ts). */
  addons: { destroyAllOf(user: User, app: App): Promise<void> };
  logger: Logger;
  /** What should run changed (an app expired or was archived): the reconciler looks now. */
  nudge: () => void;
  /**
   * Called once for each warning sent, after its row and audit event are stored: the seam
   * for mail once Petri has a mail relay. A failure is logged and not retried (the warning
   * is in the audit trail and in every CLI answer about the app).
   */
  notify?: (warning: ExpiryWarning) => Promise<void>;
}

export class LifecycleLoop {
  private readonly loop: Loop;
  private readonly retries = new Backoff({ initialMs: ARCHIVE_RETRY_MS, maxMs: ARCHIVE_RETRY_MAX_MS });
  /** Archives running in the background, by app id. */
  private readonly archiving = new Map<number, Promise<void>>();
  private archived = false;

  constructor(private readonly deps: LifecycleDeps) {
    this.loop = new Loop({
      what: 'moving experiments along their lifecycle',
      pass: () => this.pass(),
      intervalMs: deps.config.lifecycle.checkMs,
      logger: deps.logger,
    });
  }

  start(): void {
    this.loop.start();
  }

  /** Stops the loop and waits for the archives in flight (a kill instead is safe too: an
   * archive cut off is taken up again at the next start). */
  async stop(): Promise<void> {
    await this.loop.stop();
    await this.settled();
  }

  /** One pass now and the archives it started (tests; a change that should not wait for
   * the interval); a second pass removes what those archives left. */
  async tick(): Promise<void> {
    this.archived = false;
    await this.loop.runNow();
    await this.settled();
    if (this.archived) await this.loop.runNow();
  }

  private async settled(): Promise<void> {
    while (this.archiving.size > 0) await Promise.allSettled([...this.archiving.values()]);
  }

  private async pass(): Promise<void> {
    const at = Date.now();
    await this.endHandoffs(at);
    await this.warn(at);
    await this.expire(at);
    await this.archive(at);
    await this.removeArchived();
  }

  /** Handoffs left open near their deadline: experiments again, warned and expired as any. */
  private async endHandoffs(at: number): Promise<void> {
    const { db, config, logger } = this.deps;
    for (const app of await handoffsDue(db, at, config.lifecycle.warnDays[0] ?? 0)) {
      if (await endHandoff(db, app))
        logger.info({ app: app.name, deadline: app.expires_at }, 'handoff not closed: an experiment again');
    }
  }

  /** Every warning due and not yet sent, largest threshold first; runs before expire(), so
   * an app that expired while the control plane was down gets the warnings it missed first. */
  private async warn(at: number): Promise<void> {
    const { db, config } = this.deps;
    const thresholds = config.lifecycle.warnDays;
    if (thresholds.length === 0) return;
    const apps = await appsNearExpiry(db, at, thresholds[0]!);
    const sent = await warningsSent(db, apps);
    for (const app of apps) {
      const left = Date.parse(app.expires_at!) - at;
      for (const days of thresholds) {
        // Past its expiry too (the control plane was down): still sent, before the expiry.
        if (left > days * DAY_MS || sent.get(app.id)?.has(days)) continue;
        const warning = await sendWarning(db, app, days);
        if (warning) await this.notify(warning);
      }
    }
  }

  private async notify(warning: ExpiryWarning): Promise<void> {
    if (!this.deps.notify) return;
    try {
      await this.deps.notify(warning);
    } catch (err) {
      this.deps.logger.warn({ err, app: warning.app }, 'sending an expiry warning failed');
    }
  }

  private async expire(at: number): Promise<void> {
    let expired = false;
    for (const app of await appsToExpire(this.deps.db, at)) {
      if (await expireApp(this.deps.db, app)) {
        expired = true;
        this.deps.logger.info({ app: app.name }, 'experiment expired: its processes stop');
      }
    }
    if (expired) this.deps.nudge();
  }

  /** Starts the archives that are due, at most ARCHIVE_CONCURRENCY at a time, in the
   * background: a final backup may take an hour (or hang), and warnings and expiries of
   * every other app must not wait for it. Apps waiting for a slot stay expired experiments
   * (a renewal still brings them back); an archive a crash cut off is found again here. */
  private async archive(at: number): Promise<void> {
    const { db, config } = this.deps;
    for (const due of await appsToArchive(db, at, config.lifecycle.archiveAfterDays)) {
      if (this.archiving.size >= ARCHIVE_CONCURRENCY) return;
      if (this.archiving.has(due.id) || !this.retries.ready(`archive ${due.id}`)) continue;
      const job = this.archiveOne(due)
        .catch((err) => this.deps.logger.error({ err, app: due.name }, 'archiving failed'))
        .finally(() => this.archiving.delete(due.id));
      this.archiving.set(due.id, job);
    }
  }

  private async archiveOne(due: App): Promise<void> {
    const { db, addons, logger } = this.deps;
    const key = `archive ${due.id}`;
    // Stage archived first: a renewal now waits until the backups are taken or failed.
    const app = await beginArchive(db, due);
    if (!app) return;
    this.deps.nudge();
    try {
      await addons.destroyAllOf(PLATFORM_USER, app);
    } catch (err) {
      this.retries.failed(key);
      logger.warn({ err, app: app.name }, 'archiving stopped: a final backup failed; nothing was removed');
      await abandonArchive(db, app, errorMessage(err));
      return;
    }
    this.retries.succeeded(key);
    await finishArchive(db, app, await finalBackupsOf(db, app.id, app.expired_at ?? app.created_at));
    logger.info({ app: app.name }, 'experiment archived');
    this.archived = true;
    this.deps.nudge();
  }

  /** Archived apps' releases, deploys and files, once none of their processes is left. */
  private async removeArchived(): Promise<void> {
    const { db, paths } = this.deps;
    for (const app of await archivedApps(db)) {
      const dir = paths.app(app.id);
      if (!app.has_history && !existsSync(dir)) continue;
      if (!(await removeHistory(db, app.id))) continue;
      // Not fs.rm: see lib/remove-tree (a build cache image, the repository, the slugs).
      await removeTree(dir);
    }
  }
}

// The add-ons' housekeeping, level-triggered like the other loops: scheduled backups when
// the last one is too old, expired backups deleted, rotated-out logins revoked once no
// release uses them, and operations a crash cut off finished or undone.
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import {
  backedUpRecently,
  deleteBackup,
  expiredBackups,
  failedBackupsBefore,
  failInterruptedBackups,
} from '../domain/addon-backups.js';
import { listLiveAddons } from '../domain/addons.js';
import { userOrFirstAdmin } from '../domain/auth.js';
import type { PetriConfig } from '../lib/config.js';
import { Loop, type PassOutcome } from '../lib/loop.js';
import type { DataPaths } from '../lib/paths.js';
import type { AddonService } from '../services/addons.js';
import type { Store } from '../store/db.js';
import type { Addon } from '../store/schema.js';

/** Nudges closer together than this wait (see Loop's nudgeGapMs). */
const NUDGE_GAP_MS = 1000;
const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;
const PASS_MS = 2000;
const QUIET_MAX_MS = 60_000;

export class AddonUpkeep {
  private readonly loop: Loop;
  private stopped = false;
  /** Failures are logged once per add-on and reason, not every tick. */
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly deps: {
      db: Store;
      service: AddonService;
      paths: DataPaths;
      config: PetriConfig;
      logger: Logger;
    },
  ) {
    // Every 2 s while an add-on is between states; otherwise what is left is due by the
    // clock (backups, expiry), and passes back off to a tenth of the backup interval, at
    // most a minute: a backup comes that much late, never missed.
    const { backupIntervalHours, backupRetentionDays } = deps.config.addons;
    this.loop = new Loop({
      what: 'add-on upkeep',
      pass: () => this.pass(),
      intervalMs: PASS_MS,
      quietMaxMs: Math.min(
        QUIET_MAX_MS,
        (backupIntervalHours * HOUR_MS) / 10,
        (backupRetentionDays * DAY_MS) / 10,
      ),
      // Nudged by every API write: at most one pass a second however many come.
      nudgeGapMs: NUDGE_GAP_MS,
      logger: deps.logger,
    });
  }

  /** Backups cut off by a restart are failed: their files may be partial. */
  async recover(): Promise<void> {
    const { db, paths } = this.deps;
    for (const b of await failInterruptedBackups(db)) {
      // A partial dump is still a copy of the app's data: it goes.
      await rm(paths.addonBackup(b.addon_id, b.id), { force: true });
      await rm(`${paths.addonBackup(b.addon_id, b.id)}.partial`, { force: true });
    }
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
  }

  /** An add-on changed (a rotation, a restore): a pass soon, at the interval again. */
  nudge(): void {
    this.loop.nudge();
  }

  /** One pass; a pass already under way is joined rather than doubled. */
  tick(): Promise<void> {
    return this.loop.runNow();
  }

  /** Quiet when every add-on is settled (ready, no login being rotated out) and no step
   * failed: nothing then changes but by the clock. */
  private async pass(): Promise<PassOutcome | undefined> {
    const { db } = this.deps;
    const addons = await listLiveAddons(db);
    for (const addon of addons) {
      if (this.stopped) return;
      await this.step(addon, 'finish', () => this.finishInterrupted(addon));
      await this.step(addon, 'rotate', () => this.retireLogin(addon));
      await this.step(addon, 'backup', () => this.scheduledBackup(addon));
    }
    await this.step(undefined, 'purge', () => this.purgeExpired());
    const settled = addons.every(
      (a) => a.status === 'ready' && !a.retiring_slot && !this.deps.service.busy(a.id),
    );
    return settled && this.reported.size === 0 ? 'quiet' : undefined;
  }

  private async step(addon: Addon | undefined, what: string, fn: () => Promise<void>): Promise<void> {
    const key = `${addon?.id ?? '-'}:${what}`;
    try {
      await fn();
      this.reported.delete(key);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (this.reported.get(key) !== why) {
        this.deps.logger.warn(
          { err, addon: addon?.name, app: addon?.app_name, step: what },
          'add-on upkeep step failed',
        );
        this.reported.set(key, why);
      }
    }
  }

  private async finishInterrupted(addon: Addon): Promise<void> {
    const { service, db } = this.deps;
    if (service.busy(addon.id)) return;
    if (addon.status !== 'provisioning' && addon.status !== 'destroying') return;
    // On behalf of whoever created it, or an admin if that account is gone.
    const user = await userOrFirstAdmin(db, addon.created_by);
    if (user) await service.resume(addon.id, user);
  }

  private async retireLogin(addon: Addon): Promise<void> {
    if (addon.status !== 'ready' || !addon.retiring_slot || this.deps.service.busy(addon.id)) return;
    if (await this.deps.service.retireLoginIfUnused(addon.id)) {
      this.deps.logger.info({ app: addon.app_name, addon: addon.name }, 'rotated-out add-on login revoked');
    }
  }

  private async scheduledBackup(addon: Addon): Promise<void> {
    const { db, config, service } = this.deps;
    if (addon.status !== 'ready' || service.busy(addon.id)) return;
    const since = new Date(Date.now() - config.addons.backupIntervalHours * HOUR_MS).toISOString();
    // A new add-on's first scheduled backup comes one interval after its creation.
    if (addon.created_at > since) return;
    // A failed scheduled backup is tried again after a tenth of the interval, not every tick.
    const retryAfter = new Date(
      Date.now() - (config.addons.backupIntervalHours * HOUR_MS) / 10,
    ).toISOString();
    if (await backedUpRecently(db, addon.id, since, retryAfter)) return;
    const expires = new Date(Date.now() + config.addons.backupRetentionDays * DAY_MS).toISOString();
    await service.scheduledBackup(addon.id, expires);
  }

  private async purgeExpired(): Promise<void> {
    const { db, paths } = this.deps;
    for (const b of await expiredBackups(db)) {
      await rm(paths.addonBackup(b.addon_id, b.id), { force: true });
      await deleteBackup(db, b.id);
      this.deps.logger.info({ backup: `b${b.id}`, kind: b.kind }, 'expired add-on backup deleted');
    }
    // Failed backups have no file worth keeping; their rows go after a day.
    for (const b of await failedBackupsBefore(db, new Date(Date.now() - DAY_MS).toISOString())) {
      await rm(`${paths.addonBackup(b.addon_id, b.id)}.partial`, { force: true });
      await rm(paths.addonBackup(b.addon_id, b.id), { force: true });
      await deleteBackup(db, b.id);
    }
  }
}

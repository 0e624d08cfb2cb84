// What `petri addons` does: provision and attach, rotate, back up, restore, destroy. Each
// step that talks to an engine is recorded in the store before and after, so a crash in
// between leaves a row that AddonUpkeep finishes or cleans up; a failure halfway removes
// what was made and leaves the app serving as it did.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AddonEngines, ServerState } from '../addons/engines.js';
import { type AddonProvider, EngineUnavailableError, type LoginSlot } from '../addons/provider.js';
import { backupFor, backupLabel, finishBackup, insertBackup, listBackups } from '../domain/addon-backups.js';
import {
  ADDON_TYPE_NAMES,
  type AddonType,
  addonById,
  assertAppCanRelease,
  attachAddon,
  attachmentOf,
  clearRetiringLogin,
  forgetAddon,
  getAddon,
  insertProvisioningAddon,
  listAddons,
  markDestroying,
  parseAddonType,
  readCredentials,
  recordDestroyed,
  recordRotation,
  retiredLoginUnused,
  type StoredCredentials,
} from '../domain/addons.js';
import { actorOf } from '../domain/apps.js';
import { recordAudit } from '../domain/audit.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage, UserError } from '../lib/errors.js';
import type { DataPaths } from '../lib/paths.js';
import type { SecretBox } from '../lib/secrets.js';
import type { Store } from '../store/db.js';
import type { Addon, AddonBackup, App, BackupKind, Release, User } from '../store/schema.js';
import { AddonLocks } from './addon-locks.js';

const DAY_MS = 24 * 3600_000;
/** Usage is shown in listings; a slow server must not hold the listing up. */
const USAGE_TIMEOUT_MS = 3000;

export interface AddonUsageView {
  bytes: number | null;
  connections: number | null;
  /** Why the numbers are missing (the server is down). */
  error?: string;
}

export class AddonService {
  /** One engine operation at a time per add-on; upkeep leaves busy ones alone. */
  private readonly locks = new AddonLocks();
  readonly resourcePrefix: string;

  constructor(
    private readonly deps: {
      db: Store;
      engines: AddonEngines;
      paths: DataPaths;
      config: PetriConfig;
      logger: Logger;
      secrets: SecretBox;
      /** Desired state changed: the reconciler should look now. */
      nudge: () => void;
    },
  ) {
    this.resourcePrefix = `petri_${installId(deps.paths.installId)}`;
  }

  get types(): AddonType[] {
    return ADDON_TYPE_NAMES.filter((t) => this.deps.engines.types.includes(t));
  }

  async create(
    user: User,
    app: App,
    input: { type: string; as?: string },
    ip?: string,
  ): Promise<{ addon: Addon; release: Release | null }> {
    const { db, secrets, engines } = this.deps;
    const type = parseAddonType(input.type, this.types);
    const { name, envVar } = attachmentOf(type, input.as);
    await assertAppCanRelease(db, app.id);
    const provider = await this.provider(type);
    await this.reachable(provider, `nothing was created and '${app.name}' is unchanged`);
    const addon = await insertProvisioningAddon(
      db,
      secrets,
      user,
      app,
      {
        type,
        name,
        envVar,
        mode: engines.get(type).mode,
        resourcePrefix: this.resourcePrefix,
      },
      this.deps.config.ceilings.addonsPerOwner,
      this.deps.config.quotas,
    );
    return this.locked(addon.id, async () => {
      let credentials: StoredCredentials;
      try {
        credentials = { slot: 'a', ...(await provider.provision(addon.resource)) };
      } catch (err) {
        const cleaned = await this.forget(provider, addon);
        throw engineError(
          err,
          cleaned
            ? `nothing was created and '${app.name}' is unchanged`
            : `'${app.name}' is unchanged; what was made is removed as soon as the server answers`,
        );
      }
      try {
        const url = provider.url(credentials, engines.appEndpoint(type));
        const result = await attachAddon(db, secrets, user, addon, credentials, url, ip);
        this.deps.nudge();
        return result;
      } catch (err) {
        await this.forget(provider, addon);
        throw err;
      }
    });
  }

  /** Final backup, then the data goes; the config var goes in a new release. */
  async destroy(
    user: User,
    app: App,
    name: string,
    ip?: string,
  ): Promise<{ backup: AddonBackup; release: Release | null }> {
    const found = await getAddon(this.deps.db, app, name);
    await assertAppCanRelease(this.deps.db, app.id);
    return this.locked(found.id, async () => {
      const addon = await this.fresh(found.id, ['ready', 'destroying']);
      const backup = await this.finalBackup(user, addon);
      return { backup, release: await this.purge(user, addon, backup, ip) };
    });
  }

  /** Before an app goes: every add-on's final backup and removal; refuses (and keeps the
   * app) if one of them cannot be backed up. */
  async destroyAllOf(user: User, app: App, ip?: string): Promise<void> {
    const addons = await listAddons(this.deps.db, app);
    // Busy from the first backup to the last purge: between the two rounds an add-on is
    // 'destroying' and unlocked, and upkeep must not take it for a destroy a crash cut off.
    for (const a of addons) this.locks.hold(a.id, +1);
    try {
      // Every final backup first: if one cannot be taken, nothing is purged and the app stays.
      const backups = new Map<number, AddonBackup>();
      for (const a of addons) {
        backups.set(
          a.id,
          await this.locked(a.id, async () =>
            this.finalBackup(user, await this.fresh(a.id, ['ready', 'destroying']), false),
          ),
        );
      }
      // Only once every backup is taken does any add-on become 'destroying' (which upkeep
      // would finish after a crash): a failed backup above leaves every add-on as it was.
      for (const a of addons) {
        await this.locked(a.id, async () =>
          markDestroying(this.deps.db, await this.fresh(a.id, ['ready', 'destroying'])),
        );
      }
      for (const a of addons) {
        await this.locked(a.id, async () => {
          const addon = await this.fresh(a.id, ['ready', 'destroying']);
          await this.purge(user, addon, backups.get(a.id) as AddonBackup, ip, false);
        });
      }
    } finally {
      for (const a of addons) this.locks.hold(a.id, -1);
    }
  }

  async rotate(
    user: User,
    app: App,
    name: string,
    ip?: string,
  ): Promise<{ addon: Addon; release: Release | null }> {
    const { db, secrets, engines } = this.deps;
    const found = await getAddon(db, app, name);
    return this.locked(found.id, async () => {
      const addon = await getAddon(db, app, name);
      this.assertReady(addon);
      await assertAppCanRelease(db, app.id);
      if (addon.retiring_slot) {
        throw new UserError(
          'conflict',
          `the last rotation of '${addon.name}' is still finishing: the old password goes once a release with the new one serves (see petri releases; deploy or roll back if that release failed)`,
        );
      }
      const provider = await this.provider(addon.type);
      const current = readCredentials(secrets, addon);
      const slot: LoginSlot = current.slot === 'a' ? 'b' : 'a';
      let fresh: StoredCredentials;
      try {
        fresh = { slot, ...(await provider.createLogin(addon.resource, slot)) };
      } catch (err) {
        throw engineError(err, 'the password is unchanged');
      }
      const url = provider.url(fresh, engines.appEndpoint(addon.type));
      const result = await recordRotation(db, secrets, user, addon, fresh, url, ip);
      this.deps.nudge();
      return result;
    });
  }

  async backup(user: User, app: App, name: string, ip?: string): Promise<AddonBackup> {
    const found = await getAddon(this.deps.db, app, name);
    this.assertReady(found);
    const backup = await this.locked(found.id, async () =>
      this.runBackup(await this.fresh(found.id, ['ready']), 'manual', user.name, null),
    );
    const addon = found;
    await recordAudit(this.deps.db, actorOf(user, ip), 'addon.backup', app.name, {
      addon: addon.name,
      backup: backupLabel(backup.id),
    });
    return backup;
  }

  /** Replaces the add-on's data with a backup; what was there is backed up first. */
  async restore(
    user: User,
    app: App,
    name: string,
    backupId: number,
    ip?: string,
  ): Promise<{ restored: AddonBackup; safety: AddonBackup }> {
    const { db } = this.deps;
    const found = await getAddon(db, app, name);
    this.assertReady(found);
    const { backup, source } = await backupFor(db, user, found, backupId);
    return this.locked(found.id, async () => {
      const addon = await this.fresh(found.id, ['ready']);
      const safety = await this.runBackup(
        addon,
        'manual',
        `${user.name} (before restoring ${backupLabel(backupId)})`,
        null,
      );
      const provider = await this.provider(addon.type);
      try {
        await provider.restore(addon.resource, this.deps.paths.addonBackup(backup.addon_id, backup.id));
      } catch (err) {
        throw engineError(err, `the data before the restore is in backup ${backupLabel(safety.id)}`);
      }
      await recordAudit(db, actorOf(user, ip), 'addon.restore', app.name, {
        addon: addon.name,
        backup: backupLabel(backupId),
        from: `${source.app_name}/${source.name}`,
        safety: backupLabel(safety.id),
      });
      return { restored: backup, safety };
    });
  }

  /** The dump file of a backup the user may read. */
  async backupFile(user: User, app: App | undefined, name: string | undefined, backupId: number) {
    const addon = app && name ? await getAddon(this.deps.db, app, name) : undefined;
    const { backup, source } = await backupFor(this.deps.db, user, addon, backupId);
    const file = this.deps.paths.addonBackup(backup.addon_id, backup.id);
    if (!existsSync(file)) throw new UserError('not_found', `backup ${backupLabel(backupId)} has expired`);
    // Reading a copy of an app's data is worth a line in the audit trail.
    await recordAudit(this.deps.db, actorOf(user), 'addon.download', source.app_name, {
      addon: source.name,
      backup: backupLabel(backup.id),
    });
    return { file, backup, source };
  }

  async backups(app: App, name: string): Promise<AddonBackup[]> {
    const addon = await getAddon(this.deps.db, app, name);
    return listBackups(this.deps.db, addon.id);
  }

  async usage(addon: Addon): Promise<AddonUsageView> {
    if (addon.status !== 'ready') return { bytes: null, connections: null };
    try {
      // Under one deadline: a managed server still starting must not hold the listing up.
      return await withTimeout(
        this.provider(addon.type).then((p) => p.usage(addon.resource)),
        USAGE_TIMEOUT_MS,
      );
    } catch (err) {
      return { bytes: null, connections: null, error: errorMessage(err) };
    }
  }

  /** The engine's client, connected as the app (run in the app's sandbox). */
  async shellCommand(addon: Addon): Promise<string[]> {
    this.assertReady(addon);
    return (await this.provider(addon.type)).shellCommand(addon.env_var);
  }

  /** Takes a backup now; upkeep uses it for scheduled and final backups. */
  async runBackup(
    addon: Addon,
    kind: BackupKind,
    createdBy: string,
    expiresAt: string | null,
  ): Promise<AddonBackup> {
    const { db, paths } = this.deps;
    const row = await insertBackup(db, addon, kind, createdBy, expiresAt);
    const file = paths.addonBackup(addon.id, row.id);
    try {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      const provider = await this.provider(addon.type);
      await provider.backup(addon.resource, file);
      return await finishBackup(db, row.id, { sizeBytes: (await stat(file)).size });
    } catch (err) {
      await rm(file, { force: true });
      await finishBackup(db, row.id, { error: errorMessage(err) });
      throw engineError(err, `backup ${backupLabel(row.id)} failed`);
    }
  }

  /** Upkeep: revokes a rotated-out login once nothing uses it. */
  async retireLoginIfUnused(addonId: number): Promise<boolean> {
    return this.locked(addonId, async () => {
      const addon = await this.fresh(addonId, ['ready']);
      if (!addon.retiring_slot || !(await retiredLoginUnused(this.deps.db, addon))) return false;
      await (await this.provider(addon.type)).revokeLogin(addon.resource, addon.retiring_slot);
      await clearRetiringLogin(this.deps.db, addon.id);
      return true;
    });
  }

  /** Upkeep: a scheduled backup, unless the add-on went meanwhile. */
  async scheduledBackup(addonId: number, expiresAt: string): Promise<void> {
    await this.locked(addonId, async () => {
      const addon = await this.fresh(addonId, ['ready']);
      await this.runBackup(addon, 'scheduled', 'petri', expiresAt);
    });
  }

  /** Upkeep: finishes a destroy cut off by a crash, or removes a provisioning cut off by one. */
  async resume(addonId: number, user: User): Promise<void> {
    await this.locked(addonId, async () => {
      // Someone else in this process holds it (an app destroy between its rounds): theirs.
      if (this.locks.count(addonId) > 1) return;
      const addon = await this.fresh(addonId);
      if (addon.status === 'provisioning') await this.forget(await this.provider(addon.type), addon);
      if (addon.status === 'destroying') await this.purge(user, addon, await this.finalBackup(user, addon));
    });
  }

  /** Whether an operation on the add-on is running or waiting in this process. */
  busy(addonId: number): boolean {
    return this.locks.count(addonId) > 0;
  }

  locked<T>(addonId: number, fn: () => Promise<T>): Promise<T> {
    return this.locks.locked(addonId, fn);
  }

  /** The add-on as it is now (inside the lock), in one of the states the caller can act on. */
  private async fresh(addonId: number, states?: Addon['status'][]): Promise<Addon> {
    const addon = await addonById(this.deps.db, addonId);
    if (!addon || addon.status === 'destroyed') {
      throw new UserError('not_found', `the add-on was destroyed meanwhile`);
    }
    if (states && !states.includes(addon.status)) {
      throw new UserError(
        'conflict',
        `add-on '${addon.name}' is ${addon.status}; try again when it is ready`,
      );
    }
    return addon;
  }

  /** The final backup (kept for the retention period), or the one an interrupted destroy
   * already took. No data is removed without it. */
  private async finalBackup(user: User, addon: Addon, mark = true): Promise<AddonBackup> {
    const { db, config } = this.deps;
    if (addon.status === 'destroying') {
      const earlier = (await listBackups(db, addon.id)).find(
        (b) => b.kind === 'final' && b.status === 'succeeded',
      );
      if (earlier) return earlier;
    }
    const expires = new Date(Date.now() + config.addons.finalBackupRetentionDays * DAY_MS).toISOString();
    try {
      const backup = await this.runBackup(addon, 'final', user.name, expires);
      if (mark) await markDestroying(db, addon);
      return backup;
    } catch (err) {
      throw err instanceof UserError
        ? new UserError(
            err.code,
            `${err.message}; '${addon.name}' is not destroyed (no data is removed without a final backup)`,
          )
        : err;
    }
  }

  /** After the final backup: the data goes, then the config vars (in a new release unless
   * the app goes too or has a release on its way, in which case the next release drops them). */
  private async purge(
    user: User,
    addon: Addon,
    backup: AddonBackup,
    ip?: string,
    withRelease = true,
  ): Promise<Release | null> {
    const { db, secrets, config } = this.deps;
    const provider = await this.provider(addon.type);
    try {
      await provider.deprovision(addon.resource);
    } catch (err) {
      throw engineError(
        err,
        `'${addon.name}' will be removed when the server answers (its final backup is ${backupLabel(backup.id)})`,
      );
    }
    const retentionMs = config.addons.finalBackupRetentionDays * DAY_MS;
    const release = await recordDestroyed(db, secrets, user, addon, retentionMs, ip, withRelease);
    this.deps.nudge();
    return release;
  }

  /** Removes whatever a failed or cut-off provisioning made, and its row. */
  private async forget(provider: AddonProvider, addon: Addon): Promise<boolean> {
    try {
      await provider.deprovision(addon.resource);
    } catch (err) {
      // The row stays 'provisioning': upkeep tries again when the server is back.
      this.deps.logger.warn(
        { err, addon: addon.resource },
        'removing a half-provisioned add-on failed; will retry',
      );
      return false;
    }
    await forgetAddon(this.deps.db, addon.id);
    return true;
  }

  /** Each engine's server and whether it answers (GET /v1/addon-servers). */
  servers(): Promise<ServerState[]> {
    return this.deps.engines.servers();
  }

  private async provider(type: AddonType): Promise<AddonProvider> {
    return this.deps.engines.provider(type);
  }

  private async reachable(provider: AddonProvider, consequence: string): Promise<void> {
    try {
      await provider.ping();
    } catch (err) {
      throw engineError(err, consequence);
    }
  }

  private assertReady(addon: Addon): void {
    if (addon.status !== 'ready') {
      throw new UserError(
        'conflict',
        `add-on '${addon.name}' is ${addon.status}; try again when it is ready`,
      );
    }
  }
}

/** An engine that is down is the operator's to fix, and says so; anything else passes. */
function engineError(err: unknown, consequence: string): Error {
  if (err instanceof EngineUnavailableError) {
    return new UserError(
      'unavailable',
      `${err.message}; ${consequence}. Try again later or tell the operator`,
    );
  }
  if (err instanceof UserError) return err;
  // The engines' messages carry no secrets (the providers strip them): the user sees why.
  return new UserError('engine_failed', `${errorMessage(err)}; ${consequence}`);
}

function installId(file: string): string {
  if (!existsSync(file))
    writeFileSync(file, `${randomBytes(3).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  const id = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{6}$/.test(id)) throw new Error(`${file} does not hold a 6-hex-digit installation id`);
  return id;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

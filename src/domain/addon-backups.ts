// Add-on backups as the store sees them: scheduled, manual and final backups of an add-on's
// data, who may restore or download which, and what upkeep retries, expires and removes.
// Taking and restoring a dump is the caller's part (services/addons).
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { Addon, AddonBackup, BackupKind, User } from '../store/schema.js';
import { allows } from './access.js';

export async function insertBackup(
  db: Store,
  addon: Addon,
  kind: BackupKind,
  createdBy: string,
  expiresAt: string | null,
): Promise<AddonBackup> {
  return db
    .insertInto('addon_backups')
    .values({
      addon_id: addon.id,
      kind,
      status: 'running',
      size_bytes: null,
      error: null,
      created_by: createdBy,
      created_at: now(),
      finished_at: null,
      expires_at: expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function finishBackup(
  db: Store,
  id: number,
  result: { sizeBytes: number } | { error: string },
): Promise<AddonBackup> {
  return db
    .updateTable('addon_backups')
    .set(
      'error' in result
        ? { status: 'failed', error: result.error, finished_at: now() }
        : { status: 'succeeded', size_bytes: result.sizeBytes, finished_at: now() },
    )
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export function listBackups(db: Store, addonId: number): Promise<AddonBackup[]> {
  return db
    .selectFrom('addon_backups')
    .selectAll()
    .where('addon_id', '=', addonId)
    .orderBy('id', 'desc')
    .execute();
}

/** 'b12' or '12' → 12. */
export function parseBackupId(text: string): number {
  const m = /^b?([1-9][0-9]{0,12})$/.exec(text);
  if (!m)
    throw new UserError(
      'bad_request',
      `backup id must look like b12 (see petri addons backups NAME), got '${text}'`,
    );
  return Number(m[1]);
}

export function backupLabel(id: number): string {
  return `b${id}`;
}

/** A backup the user may restore or download: one of this add-on's, or, for an admin, any
 * backup of the same engine (a destroyed add-on's or app's final backup included). */
export async function backupFor(
  db: Store,
  user: User,
  addon: Addon | undefined,
  backupId: number,
): Promise<{ backup: AddonBackup; source: Addon }> {
  const row = await db.selectFrom('addon_backups').selectAll().where('id', '=', backupId).executeTakeFirst();
  const source =
    row && (await db.selectFrom('addons').selectAll().where('id', '=', row.addon_id).executeTakeFirst());
  const mine = row && source && addon && source.app_id === addon.app_id && source.id === addon.id;
  if (!row || !source || (!mine && !allows(user, 'platform.admin'))) {
    throw new UserError(
      'not_found',
      `backup ${backupLabel(backupId)} not found${addon ? ` for add-on '${addon.name}'; list them with 'petri addons backups ${addon.name}'` : ''}`,
    );
  }
  if (row.status !== 'succeeded') {
    throw new UserError(
      'conflict',
      `backup ${backupLabel(backupId)} ${row.status === 'running' ? 'is still running' : 'failed'}; pick another`,
    );
  }
  if (addon && source.type !== addon.type) {
    throw new UserError(
      'bad_request',
      `backup ${backupLabel(backupId)} is of a ${source.type} add-on; '${addon.name}' is ${addon.type}`,
    );
  }
  return { backup: row, source };
}

/** Every backup, with the add-on and app it came from (admin: destroyed ones too). */
export function listAllBackups(db: Store) {
  return db
    .selectFrom('addon_backups')
    .innerJoin('addons', 'addons.id', 'addon_backups.addon_id')
    .selectAll('addon_backups')
    .select(['addons.app_name', 'addons.name as addon_name', 'addons.type', 'addons.status as addon_status'])
    .orderBy('addon_backups.id', 'desc')
    .execute();
}

/** Backups a restart cut off are failed (their files may be partial); returns them, so the
 * caller removes their files. */
export async function failInterruptedBackups(db: Store): Promise<AddonBackup[]> {
  return db.transaction().execute(async (tx) => {
    const cut = await tx.selectFrom('addon_backups').selectAll().where('status', '=', 'running').execute();
    await tx
      .updateTable('addon_backups')
      .set({ status: 'failed', error: 'interrupted by a restart of the control plane', finished_at: now() })
      .where('status', '=', 'running')
      .execute();
    return cut;
  });
}

/** True when the add-on has a backup since `since` that did not fail, or one that failed
 * since `failedSince` (a failed scheduled backup is tried again later, not every tick). */
export async function backedUpRecently(
  db: Store,
  addonId: number,
  since: string,
  failedSince: string,
): Promise<boolean> {
  const recent = await db
    .selectFrom('addon_backups')
    .select('id')
    .where('addon_id', '=', addonId)
    .where('created_at', '>', since)
    .where('status', '!=', 'failed')
    .executeTakeFirst();
  const recentFailure = await db
    .selectFrom('addon_backups')
    .select('id')
    .where('addon_id', '=', addonId)
    .where('status', '=', 'failed')
    .where('created_at', '>', failedSince)
    .executeTakeFirst();
  return recent !== undefined || recentFailure !== undefined;
}

/** Backups past their expiry date. */
export function expiredBackups(db: Store): Promise<AddonBackup[]> {
  return db
    .selectFrom('addon_backups')
    .selectAll()
    .where('expires_at', 'is not', null)
    .where('expires_at', '<', now())
    .execute();
}

/** Failed backups made before `before`. */
export function failedBackupsBefore(db: Store, before: string): Promise<AddonBackup[]> {
  return db
    .selectFrom('addon_backups')
    .selectAll()
    .where('status', '=', 'failed')
    .where('created_at', '<', before)
    .execute();
}

/** A backup's row, once its file is gone. */
export async function deleteBackup(db: Store, backupId: number): Promise<void> {
  await db.deleteFrom('addon_backups').where('id', '=', backupId).execute();
}

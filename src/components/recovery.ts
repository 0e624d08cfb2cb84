// Part of the composition root: what a start repairs of the run before it, before any loop or
// request acts: the admin account of a first start, builds a restart cut off (failed in the
// store, then their tasks and directories reclaimed).
import { writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { reclaimBuilds } from '../controllers/builds.js';
import { bootstrapAdmin } from '../domain/auth.js';
import { failInterruptedBuilds } from '../domain/deploys.js';
import type { DataPaths } from '../lib/paths.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';

/** Right after the store opens. Returns the admin token when this start created it.
 * `adminEmail` (identity.adminEmail) is given to the first admin, so their sign-in finds them. */
export async function recoverStore(
  db: Store,
  paths: DataPaths,
  log: Logger,
  adminEmail?: string,
): Promise<string | undefined> {
  const adminToken = await bootstrapAdmin(db, { adminEmail });
  if (adminToken) writeFileSync(paths.adminToken, `${adminToken}\n`, { mode: 0o600 });
  const interrupted = await failInterruptedBuilds(db);
  if (interrupted.length > 0)
    log.warn({ deploys: interrupted.map((d) => d.id) }, 'failed builds cut off by a restart');
  return adminToken;
}

/** Before the API takes uploads: every deploy dir not queued is then a leftover. */
export async function reclaimLeftovers(deps: {
  db: Store;
  driver: RuntimeDriver;
  paths: DataPaths;
  logger: Logger;
}): Promise<void> {
  const reclaimed = [...(await deps.driver.reclaimTasks()), ...(await reclaimBuilds(deps))];
  if (reclaimed.length > 0)
    deps.logger.warn({ reclaimed }, 'reclaimed what builds cut off by a restart left');
}

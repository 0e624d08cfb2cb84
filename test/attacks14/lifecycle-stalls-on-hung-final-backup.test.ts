// The lifecycle loop archives apps one after another inside its pass, awaiting each app's
// final backups (AddonService.destroyAllOf) with no deadline of its own. A backup that hangs
// (a real pg_dump/mariadb-dump may take up to its 1-hour DUMP_TIMEOUT_MS; an add-on lock
// held by a long restore; an engine that accepts and never answers) holds the whole pass:
// meanwhile no other experiment is warned, expired (it keeps serving past its expiry) or
// archived. One member's add-on stalls the lifecycle of every team.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { LifecycleLoop } from '../../src/controllers/lifecycle.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { DAY_MS } from '../../src/domain/lifecycle.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';

let dir: string;
let db: Store;
let loop: LifecycleLoop | undefined;
let release: () => void = () => {};

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack14-stall-'));
  db = await openStore(new DataPaths(dir).store);
});
after(async () => {
  release();
  await loop?.stop();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('an add-on whose final backup hangs does not stop other apps from expiring', async () => {
  const mallory: User = await createUser(db, 'mallory', 'member', {});
  const ana: User = await createUser(db, 'ana', 'member', {});
  // Mallory's experiment expired long ago: it is due for archiving, and its backup hangs.
  await createApp(db, mallory, 'hangs', { memoryMiB: 64, cpus: 1, pids: 32 });
  const long = new Date(Date.now() - 40 * DAY_MS).toISOString();
  await db
    .updateTable('apps')
    .set({ expires_at: long, expired_at: long })
    .where('name', '=', 'hangs')
    .execute();
  // Ana's experiment expires in 1 s.
  await createApp(db, ana, 'other', { memoryMiB: 64, cpus: 1, pids: 32 });
  await db
    .updateTable('apps')
    .set({ expires_at: new Date(Date.now() + 1000).toISOString() })
    .where('name', '=', 'other')
    .execute();

  const hung = new Promise<void>((resolve) => {
    release = resolve;
  });
  const config = loadConfig({
    dataDir: dir,
    lifecycle: { checkMs: 100, warnDays: [], archiveAfterDays: 30 },
  });
  loop = new LifecycleLoop({
    db,
    config,
    paths: new DataPaths(dir),
    // The final backup of 'hangs' takes as long as the engine takes (here: until the test ends).
    addons: { destroyAllOf: async (_u: User, app: App) => (app.name === 'hangs' ? hung : undefined) },
    logger: createLogger('silent'),
    nudge: () => {},
  });
  loop.start();

  // 1 s for the expiry plus 3 s, i.e. 30 intervals of the loop.
  const why =
    "'other' was never expired: the loop is stuck in the archive of 'hangs' and 'other' keeps serving past its expiry";
  const other = await until(
    async () => {
      const row = (await db
        .selectFrom('apps')
        .selectAll()
        .where('name', '=', 'other')
        .executeTakeFirst()) as App;
      return row.expired_at !== null && row;
    },
    { timeout: 4000, interval: 100, message: why },
  );
  assert.notEqual(other.expired_at, null, why);
});

// petri.toml's data class is applied at deploy by describeFromManifest, which the build loop
// calls with the app row it read *before the build* (controllers/builds.ts: findApp, then
// buildSlug for up to buildTimeoutMs, then describeFromManifest(db, app, ...)). It changes
// only the keys that differ from that stale row. If the class changed meanwhile (a teammate's
// `petri apps set data=none` during a long build), the file's `data = "sensitive"` equals the
// stale row and is dropped: the release whose petri.toml declares sensitive data then serves
// to everyone, with no admin review and no app.describe event saying so.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { awaitsReview, describeFromManifest, setExperiment } from '../../src/domain/experiments.js';
import { loadConfig } from '../../src/lib/config.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App } from '../../src/store/schema.js';

let dir: string;
let db: Store;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack14-toml-'));
  db = await openStore(new DataPaths(dir).store);
});
after(async () => {
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('a deploy whose petri.toml declares sensitive data leaves the app awaiting review', async () => {
  const config = loadConfig({ dataDir: dir });
  const bob = await createUser(db, 'bob', 'member');
  await createApp(
    db,
    bob,
    'clinic',
    { memoryMiB: 64, cpus: 1, pids: 32 },
    undefined,
    undefined,
    undefined,
    {},
    {
      data_class: 'sensitive',
      privacy_note: 'patients’ symptoms, to triage them',
      retention_days: 30,
    },
  );
  const row = async () =>
    (await db.selectFrom('apps').selectAll().where('name', '=', 'clinic').executeTakeFirstOrThrow()) as App;

  // The build loop reads the app, then builds (minutes).
  const readAtBuildStart = await row();
  assert.ok(awaitsReview(readAtBuildStart));
  // Meanwhile the class is lowered (the owner, a teammate, a script): it serves to everyone.
  await setExperiment(db, bob, await row(), { data: 'none' }, { teamRole: 'admin', config });
  // The build ends; its petri.toml says the data is sensitive.
  await describeFromManifest(
    db,
    readAtBuildStart,
    { data: 'sensitive', privacy: 'patients’ symptoms, to triage them', retention: '30d' },
    bob.id,
  );
  const now = await row();
  assert.equal(now.data_class, 'sensitive', "the deployed petri.toml's class is the app's class");
  assert.ok(awaitsReview(now), 'and the release declaring sensitive data awaits review');
});

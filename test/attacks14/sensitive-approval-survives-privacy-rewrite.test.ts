// An admin's review of sensitive data is a review of what the app says it collects, why, and
// for how long: `petri apps approve` records exactly that (app.approve with data, privacy and
// retentionDays). But the approval is only tied to the class: once approved, the team may
// rewrite the privacy note and stretch the retention to ten years (`petri apps set`, or
// petri.toml at the next deploy) and the app keeps serving everyone, with no new review.
// The same hole makes `approve` racy: it takes no statement of what the admin reviewed, so a
// note or class changed between the admin's `petri apps info` and `approve` is what gets
// approved.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { approveApp, awaitsReview, setExperiment } from '../../src/domain/experiments.js';
import { loadConfig } from '../../src/lib/config.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App } from '../../src/store/schema.js';

let dir: string;
let db: Store;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack14-approve-'));
  db = await openStore(new DataPaths(dir).store);
});
after(async () => {
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('rewriting the privacy note or retention of an approved sensitive app needs a new review', async () => {
  const config = loadConfig({ dataDir: dir });
  const root = await createUser(db, 'root', 'admin');
  const bob = await createUser(db, 'bob', 'member');
  await createApp(
    db,
    bob,
    'triage',
    { memoryMiB: 64, cpus: 1, pids: 32 },
    undefined,
    undefined,
    undefined,
    {},
    {
      data_class: 'sensitive',
      privacy_note: 'counts of symptoms per day, no identifiers',
      retention_days: 7,
    },
  );
  const row = async () =>
    (await db.selectFrom('apps').selectAll().where('name', '=', 'triage').executeTakeFirstOrThrow()) as App;
  await approveApp(db, root, await row());
  assert.equal(awaitsReview(await row()), false);

  await setExperiment(
    db,
    bob,
    await row(),
    { privacy: 'full names, diagnoses and prescriptions of every patient', retention: '10y' },
    { teamRole: 'admin', config },
  );
  const now = await row();
  assert.equal(
    awaitsReview(now),
    true,
    `still approved after the note became '${now.privacy_note}' and the retention ${now.retention_days} days`,
  );
});

test('an approval names what the admin reviewed: a note changed since then is not approved', async () => {
  const root = await createUser(db, 'root2', 'admin');
  const bob = await createUser(db, 'bob2', 'member');
  await createApp(
    db,
    bob,
    'intake',
    { memoryMiB: 64, cpus: 1, pids: 32 },
    undefined,
    undefined,
    undefined,
    {},
    {
      data_class: 'sensitive',
      privacy_note: 'counts only',
      retention_days: 7,
    },
  );
  const row = async () =>
    (await db.selectFrom('apps').selectAll().where('name', '=', 'intake').executeTakeFirstOrThrow()) as App;
  const seen = { data: 'sensitive' as const, privacyNote: 'counts only', retentionDays: 7 };
  // Between the admin's look and the approval, the team rewrites the note.
  await db
    .updateTable('apps')
    .set({ privacy_note: 'names and diagnoses' })
    .where('name', '=', 'intake')
    .execute();
  await assert.rejects(
    approveApp(db, root, await row(), undefined, seen),
    /changed since you reviewed it \(the privacy note changed\)/,
  );
  assert.equal(awaitsReview(await row()), true);
  await approveApp(db, root, await row(), undefined, { ...seen, privacyNote: 'names and diagnoses' });
  assert.equal(awaitsReview(await row()), false);
});

// Expiry is what makes experiments die young: the team renews for at most lifecycle.maxDays
// at a time, only admins give more. But `petri graduate` is open to team admins, and every
// user is the admin of their personal team: any member can graduate their own experiment,
// which clears expires_at *and* expired_at (an expired app serves again) and moves it to
// `graduating`, a stage that never expires, never gets a warning, is never archived and
// that only a platform admin can end. Nothing checks that a handoff is real or bounds how
// long it lasts: one POST is a renewal without a maximum, and it also resurrects an app that
// expired weeks ago (even one the lifecycle is about to archive).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/domain/apps.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { DAY_MS, stoppedByLifecycle } from '../../src/domain/lifecycle.js';
import { insertRelease } from '../../src/domain/releases.js';
import { sealConfig } from '../../src/domain/sealed-config.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App } from '../../src/store/schema.js';
import { buildTestApi, testSecrets } from '../api/test-api.js';

let dir: string;
let db: Store;
let api: FastifyInstance;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack14-graduate-'));
  db = await openStore(new DataPaths(dir).store);
  api = await buildTestApi(dir, db, { lifecycle: { maxDays: 90, defaultDays: 90 } });
});
after(async () => {
  await api?.close();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('a member cannot make their expired experiment live forever with petri graduate', async () => {
  const mallory = await createUser(db, 'mallory', 'member', { email: 'mallory@example.org' });
  const token = await issueToken(db, mallory.id, 'test');
  // In Mallory's personal team, where `petri apps create` puts it.
  const app = await createApp(db, mallory, 'forever', { memoryMiB: 64, cpus: 1, pids: 32 });
  const slug = path.join(dir, 'slug');
  mkdirSync(slug);
  writeFileSync(path.join(slug, 'server.js'), 'x\n');
  const release = await insertRelease(db, app.id, mallory.id, {
    slug_dir: slug,
    process_types: JSON.stringify({ web: 'node server.js' }),
    runtime_env: '{}',
    config_sealed: sealConfig(testSecrets(), {}),
    release_command: null,
    health_path: null,
    egress: '[]',
    kind: 'deploy',
    description: 'Deploy',
    deploy_id: null,
  });
  await db.updateTable('releases').set({ status: 'succeeded' }).where('id', '=', release.id).execute();
  // It expired 29 days ago: stopped, answering 410, archived tomorrow.
  const expired = new Date(Date.now() - 29 * DAY_MS).toISOString();
  await db
    .updateTable('apps')
    .set({ serving_release_id: release.id, expires_at: expired, expired_at: expired })
    .where('id', '=', app.id)
    .execute();

  // A member may not renew beyond the maximum ...
  const renew = await api.inject({
    method: 'POST',
    url: '/v1/apps/forever/renew',
    headers: { authorization: `Bearer ${token}` },
    payload: { for: '3650d' },
  });
  assert.equal(renew.statusCode, 400, renew.body);

  // ... but graduating is one POST away.
  const res = await api.inject({
    method: 'POST',
    url: '/v1/apps/forever/graduate',
    headers: { authorization: `Bearer ${token}` },
  });
  const row = (await db
    .selectFrom('apps')
    .selectAll()
    .where('id', '=', app.id)
    .executeTakeFirstOrThrow()) as App;
  const bound = Date.now() + 90 * DAY_MS + 60_000;
  assert.ok(
    res.statusCode !== 200 ||
      (row.expires_at !== null && Date.parse(row.expires_at) <= bound) ||
      stoppedByLifecycle(row),
    `graduate answered ${res.statusCode}; the app is now stage=${row.stage}, expires_at=${row.expires_at}, expired_at=${row.expired_at}: it serves again and never expires`,
  );
});

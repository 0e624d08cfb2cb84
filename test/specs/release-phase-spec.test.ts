// A release command ends when its command does, like an app instance: a `release:` line that
// leaves a background job behind (`sleep 1000 &`) must not keep the release phase running
// until the build timeout. Through the spec builder and the real local driver (root).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DataPaths } from '../../src/lib/paths.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { until } from '../../src/lib/until.js';
import { appUid, instanceSpec, releasePhaseSpec, type SpecContext } from '../../src/specs/sandbox-specs.js';
import type { App, Release } from '../../src/store/schema.js';
import { APP_UID, makeWorld, type World } from '../runtime/world.js';

let world: World;
let ctx: SpecContext;
const app: App = {
  id: 1,
  name: 'probe',
  owner_id: 1,
  created_at: '2026-01-01T00:00:00.000Z',
  memory_mib: 256,
  cpus: 1,
  pids: 64,
  team_id: 1,
  desired_release_id: 1,
  serving_release_id: null,
  config_sealed: '',
  boot_timeout_ms: null,
  disk_mib: 256,
  idle_timeout_s: null,
  sleeping_since: null,
  active_at: null,
  woke_at: null,
  description: '',
  data_class: 'none',
  privacy_note: null,
  retention_days: null,
  approved_class: null,
  approved_by: null,
  approved_at: null,
  stage: 'experiment',
  expires_at: null,
  expired_at: null,
  archived_at: null,
  redirect_url: null,
  audience: 'public',
  audience_key_version: 1,
  notice_version: 1,
  mail_key_version: 1,
};
const release = (command: string): Release => ({
  id: 1,
  app_id: 1,
  version: 1,
  deploy_id: null,
  slug_dir: world.slugDir,
  process_types: JSON.stringify({ web: 'node server.mjs' }),
  runtime_env: '{}',
  description: 'Deploy',
  created_by: 1,
  created_at: '2026-01-01T00:00:00.000Z',
  config_sealed: '',
  kind: 'deploy',
  status: 'pending',
  error: null,
  release_command: command,
  health_path: null,
  phase_status: 'pending',
  phase_instance: null,
  phase_started_at: null,
  egress: '[]',
  node_version: null,
});

before(async () => {
  world = await makeWorld('release-spec');
  // The world's app runs as APP_UID: the spec builder gives app 1 that uid.
  ctx = {
    config: { uidBase: APP_UID - app.id, buildTimeoutMs: 60_000, buildCacheMiB: 64 },
    paths: new DataPaths(path.join(world.root, 'data')),
    secrets: SecretBox.withKey(randomBytes(32)),
  };
});
after(async () => {
  await world?.cleanup();
});

test('a release command that leaves a background job behind finishes with its exit status', async () => {
  const spec = releasePhaseSpec(ctx, {
    app,
    release: release('sleep 1000 & echo migrated; exit 3'),
    id: 'release-probe-v1-a',
  });
  assert.equal(spec.uid, appUid(ctx.config, app));
  const started = Date.now();
  await world.driver.start(spec);
  await until(async () => !(await world.driver.status(spec.id)).running, {
    timeout: 10_000,
    message: 'the release command to finish (its background job must not keep it running)',
  });
  assert.ok(Date.now() - started < 10_000);
  const status = await world.driver.status(spec.id);
  assert.equal(status.exitCode, 3, 'the exit status is the command’s, not the cleanup’s');
  await world.driver.flushOutput();
  await world.driver.stop(spec.id, 0);
  await world.driver.removeFiles(spec);
});

test('instances and the release phase end their commands the same way', () => {
  const r = release('node migrate.js');
  const phase = releasePhaseSpec(ctx, { app, release: r, id: 'release-probe-v1-b' });
  const web = instanceSpec(ctx, {
    app,
    release: r,
    id: 'probe-web-1-x',
    type: 'web',
    index: 1,
    command: 'node migrate.js',
  });
  assert.deepEqual(phase.command, web.command);
  assert.equal(phase.labels.kind, 'release');
  assert.equal(web.labels.process, 'web.1');
  assert.equal(web.env.PORT, undefined, "an instance's PORT is the driver's to set");
  assert.equal(web.env.PETRI_PROCESS, 'web.1');
  assert.equal(phase.env.PETRI_PROCESS, 'release.1');
});

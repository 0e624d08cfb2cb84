// The lifecycle loop over a real store and the real add-on service (its engine a fake that
// can be told to fail its backups): warnings sent once each across a restart, none skipped;
// expiry; an archive stopped by a failed final backup (nothing removed, the audit trail says
// why, not retried at once); an archive that completes (final backups, history and files
// gone, row and name kept), also when a crash cut it off halfway.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it, test } from 'node:test';
import type { AddonEngines } from '../../src/addons/engines.js';
import type { AddonProvider } from '../../src/addons/provider.js';
import { LifecycleLoop } from '../../src/controllers/lifecycle.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { DAY_MS, renewApp } from '../../src/domain/lifecycle.js';
import { insertRelease, markReleaseServing } from '../../src/domain/releases.js';
import { loadConfig, type PetriConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { AddonService } from '../../src/services/addons.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';
import { testSecrets } from '../api/test-api.js';

const SECOND_DAYS = 1 / 86_400;
/** Renewal periods, and quotas that no test here reaches. */
const RENEWALS = { defaultDays: 90, maxDays: 90, quotas: { apps: 1000, memoryMiB: 1_000_000, addons: 1000 } };

/** A Redis-like engine in memory: backups write a file, or fail while `failing` is set. */
class FakeProvider {
  readonly type = 'redis' as const;
  failing = false;
  backups = 0;
  deprovisioned: string[] = [];
  async ping() {}
  async provision(resource: string) {
    return { user: resource, password: 'pw', database: `${resource}:` };
  }
  async createLogin(resource: string) {
    return this.provision(resource);
  }
  async revokeLogin() {}
  async deprovision(resource: string) {
    this.deprovisioned.push(resource);
  }
  async backup(_resource: string, file: string) {
    if (this.failing) throw new Error('the server is not answering');
    this.backups++;
    writeFileSync(file, 'dump');
  }
  async restore() {}
  async usage() {
    return { bytes: 0, connections: 0 };
  }
  url() {
    return 'redis://u:pw@127.0.0.1:6379';
  }
  shellCommand() {
    return [];
  }
  async secureServer() {
    return undefined;
  }
  async close() {}
}

describe('the lifecycle loop', () => {
  let dir: string;
  let db: Store;
  let paths: DataPaths;
  let ana: User;
  let provider: FakeProvider;
  let addons: AddonService;
  let nudges = 0;
  const loops: LifecycleLoop[] = [];

  const configWith = (lifecycle: Partial<PetriConfig['lifecycle']>) =>
    loadConfig({ dataDir: dir, lifecycle: { checkMs: 60_000, ...lifecycle } });

  const loop = (lifecycle: Partial<PetriConfig['lifecycle']> = {}) => {
    const config = configWith(lifecycle);
    const l = new LifecycleLoop({
      db,
      config,
      paths,
      addons,
      logger: createLogger('silent'),
      nudge: () => nudges++,
    });
    loops.push(l);
    return l;
  };

  const events = (action: string, target?: string) =>
    db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', action)
      .$if(target !== undefined, (q) => q.where('target', '=', target!))
      .orderBy('id')
      .execute();

  const app = (name: string) =>
    db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirstOrThrow() as Promise<App>;

  const setApp = (name: string, values: Partial<App>) =>
    db.updateTable('apps').set(values).where('name', '=', name).execute();

  /** An app with a release, a directory of files and a ready add-on. */
  async function experiment(name: string): Promise<App> {
    const made = await createApp(db, ana, name, { memoryMiB: 64, cpus: 1, pids: 32 });
    const release = await insertRelease(db, made.id, ana.id, {
      slug_dir: path.join(dir, 'slug'),
      process_types: '{"web":"node server.js"}',
      runtime_env: '{}',
      config_sealed: '',
      release_command: null,
      health_path: null,
      egress: '[]',
      kind: 'deploy',
      description: 'test',
      deploy_id: null,
    });
    // It serves: the add-on's release comes on top of it.
    await db.updateTable('apps').set({ desired_release_id: release.id }).where('id', '=', made.id).execute();
    await markReleaseServing(db, made.id, release.id);
    mkdirSync(path.join(paths.app(made.id), 'repo.git'), { recursive: true });
    writeFileSync(path.join(paths.app(made.id), 'repo.git', 'HEAD'), 'ref: refs/heads/main\n');
    await addons.create(ana, made, { type: 'redis' });
    return app(name);
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-lifecycle-'));
    paths = new DataPaths(dir);
    db = await openStore(paths.store);
    ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    provider = new FakeProvider();
    const engines = {
      types: ['redis'],
      get: () => ({ type: 'redis', mode: 'external', endpoint: { host: '127.0.0.1', port: 6379 } }),
      provider: async () => provider as unknown as AddonProvider,
      appEndpoint: () => ({ host: '127.0.0.1', port: 6379 }),
    } as unknown as AddonEngines;
    addons = new AddonService({
      db,
      engines,
      paths,
      config: loadConfig({ dataDir: dir }),
      logger: createLogger('silent'),
      secrets: testSecrets(),
      nudge: () => {},
    });
  });
  beforeEach(() => {
    provider.failing = false;
  });
  after(async () => {
    for (const l of loops) await l.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('each warning once, across a restart, and none skipped while the loop was down', async () => {
    // Thresholds of 3, 2 and 1 seconds before an expiry 3.5 s away.
    const warnDays = [3 * SECOND_DAYS, 2 * SECOND_DAYS, 1 * SECOND_DAYS];
    await createApp(db, ana, 'warned', { memoryMiB: 64, cpus: 1, pids: 32 });
    const expires = Date.now() + 3500;
    await setApp('warned', { expires_at: new Date(expires).toISOString() });
    const first = loop({ warnDays });
    await first.tick();
    assert.equal((await events('app.expiry.warning', 'warned')).length, 0, 'none is due 3.5 s before');
    await until(() => Date.now() >= expires - 3000, { timeout: 5000 });
    await first.tick();
    await first.tick();
    assert.deepEqual(
      (await events('app.expiry.warning', 'warned')).map((e) => JSON.parse(e.detail).days),
      [warnDays[0]],
    );
    // The control plane stops, and is away while both the 2 s and the 1 s marks pass.
    await first.stop();
    await until(() => Date.now() >= expires - 900, { timeout: 5000 });
    const second = loop({ warnDays });
    await second.tick();
    await second.tick();
    const sent = await events('app.expiry.warning', 'warned');
    assert.deepEqual(
      sent.map((e) => JSON.parse(e.detail).days),
      warnDays,
      'each threshold once, in order, the missed ones sent late',
    );
    for (const e of sent) {
      assert.equal(e.actor, 'petri');
      assert.equal(e.app, 'warned');
      assert.equal(JSON.parse(e.detail).expiresAt, new Date(expires).toISOString());
    }
    // A renewal is a new period: its warnings are new.
    const renewed = await renewApp(db, ana, await app('warned'), '2s', RENEWALS);
    await second.tick();
    const after = await events('app.expiry.warning', 'warned');
    assert.equal(after.length, 5, 'the 2 s and 1 s warnings of the new expiry (2 s away)');
    assert.equal(JSON.parse(after[4]!.detail).expiresAt, renewed.expires_at);
  });

  test('an app that expired while the loop was down gets the warnings it missed, then expires', async () => {
    await createApp(db, ana, 'missed', { memoryMiB: 64, cpus: 1, pids: 32 });
    await setApp('missed', { expires_at: new Date(Date.now() - 5000).toISOString() });
    const l = loop({ warnDays: [14, 7, 1] });
    await l.tick();
    const trail = await db
      .selectFrom('audit_events')
      .select(['action', 'detail'])
      .where('target', '=', 'missed')
      .where('action', 'like', 'app.exp%')
      .orderBy('id')
      .execute();
    assert.deepEqual(
      trail.map((e) => [e.action, JSON.parse(e.detail).days]),
      [
        ['app.expiry.warning', 14],
        ['app.expiry.warning', 7],
        ['app.expiry.warning', 1],
        ['app.expired', undefined],
      ],
    );
    await l.tick();
    assert.equal((await events('app.expiry.warning', 'missed')).length, 3, 'not again once expired');
  });

  test('at expiry the app is marked expired (once) and the reconciler nudged', async () => {
    await createApp(db, ana, 'ends', { memoryMiB: 64, cpus: 1, pids: 32 });
    await setApp('ends', { expires_at: new Date(Date.now() - 1000).toISOString() });
    const before = nudges;
    const l = loop({ warnDays: [] });
    await l.tick();
    await l.tick();
    const ended = await app('ends');
    assert.ok(ended.expired_at !== null);
    assert.equal(ended.stage, 'experiment');
    assert.equal((await events('app.expired', 'ends')).length, 1);
    assert.ok(nudges > before);
    // A graduating app does not expire before its handoff deadline ...
    await createApp(db, ana, 'handoff', { memoryMiB: 64, cpus: 1, pids: 32 });
    await setApp('handoff', { stage: 'graduating', expires_at: new Date(Date.now() + 60_000).toISOString() });
    await l.tick();
    assert.equal((await app('handoff')).expired_at, null);
    assert.equal((await app('handoff')).stage, 'graduating');
    // ... and past it, with no admin closing the handoff, it is an experiment again and expires.
    await setApp('handoff', { expires_at: new Date(Date.now() - 1000).toISOString() });
    await l.tick();
    const lapsed = await app('handoff');
    assert.equal(lapsed.stage, 'experiment');
    assert.notEqual(lapsed.expired_at, null);
    const [moved] = await events('app.stage', 'handoff');
    assert.match(JSON.parse(moved!.detail).reason, /no admin closed the handoff/);
  });

  test('a handoff left open comes back to the lifecycle when its first warning is due', async () => {
    await createApp(db, ana, 'slow-handoff', { memoryMiB: 64, cpus: 1, pids: 32 });
    const deadline = new Date(Date.now() + 10 * DAY_MS).toISOString();
    await setApp('slow-handoff', { stage: 'graduating', expires_at: deadline });
    const l = loop({ warnDays: [14, 7, 1] });
    await l.tick();
    const now = await app('slow-handoff');
    assert.equal(now.stage, 'experiment');
    assert.equal(now.expires_at, deadline, 'it expires at the deadline, not later');
    assert.equal(now.expired_at, null);
    assert.deepEqual(
      (await events('app.expiry.warning', 'slow-handoff')).map((e) => JSON.parse(e.detail).days),
      [14],
      'warned as any experiment',
    );
  });

  test('a failed final backup stops the archive: nothing is removed and the audit trail says why', async () => {
    const made = await experiment('fragile');
    await setApp('fragile', {
      expires_at: new Date(Date.now() - 2 * DAY_MS).toISOString(),
      expired_at: new Date(Date.now() - 2 * DAY_MS).toISOString(),
    });
    const releasesBefore = await db
      .selectFrom('releases')
      .select('id')
      .where('app_id', '=', made.id)
      .execute();
    provider.failing = true;
    const l = loop({ archiveAfterDays: 1, warnDays: [] });
    await l.tick();
    const kept = await app('fragile');
    assert.equal(kept.stage, 'experiment', 'still an expired experiment');
    assert.equal(kept.archived_at, null);
    const failed = await events('app.archive.failed', 'fragile');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.outcome, 'failed');
    assert.match(JSON.parse(failed[0]!.detail).error, /not answering/);
    assert.ok(existsSync(path.join(paths.app(made.id), 'repo.git')), 'the repository stays');
    const releases = await db.selectFrom('releases').select('id').where('app_id', '=', made.id).execute();
    assert.equal(releases.length, releasesBefore.length, 'the releases stay');
    const addon = await db
      .selectFrom('addons')
      .selectAll()
      .where('app_id', '=', made.id)
      .executeTakeFirstOrThrow();
    assert.equal(addon.status, 'ready', 'the add-on and its data stay');
    assert.deepEqual(provider.deprovisioned, []);
    // Not tried again at the next pass (each try is an audit event): after a delay.
    provider.failing = false;
    await l.tick();
    assert.equal((await events('app.archive.failed', 'fragile')).length, 1);
    assert.equal((await app('fragile')).stage, 'experiment');
  });

  test('archiving: final backups first, then history and files go; the row and name stay', async () => {
    const made = await experiment('done');
    const expiredAt = new Date(Date.now() - 2 * DAY_MS).toISOString();
    await setApp('done', { expires_at: expiredAt, expired_at: expiredAt });
    const l = loop({ archiveAfterDays: 1, warnDays: [] });
    await l.tick();
    await l.tick();
    const archived = await app('done');
    assert.equal(archived.stage, 'archived');
    assert.ok(archived.archived_at !== null);
    assert.equal(archived.desired_release_id, null);
    const finals = await db
      .selectFrom('addon_backups')
      .innerJoin('addons', 'addons.id', 'addon_backups.addon_id')
      .select([
        'addon_backups.id',
        'addon_backups.addon_id',
        'addon_backups.kind',
        'addon_backups.expires_at',
        'addons.status',
      ])
      .where('addons.app_id', '=', made.id)
      .execute();
    assert.equal(finals.length, 1, 'one final backup');
    assert.equal(finals[0]!.kind, 'final');
    assert.equal(finals[0]!.status, 'destroyed');
    const keptDays = (Date.parse(finals[0]!.expires_at!) - Date.now()) / DAY_MS;
    assert.ok(keptDays > 29 && keptDays <= 30, `final backup kept 30 days: ${keptDays}`);
    assert.ok(existsSync(paths.addonBackup(finals[0]!.addon_id, finals[0]!.id)), 'the dump is kept');
    const event = await events('app.archived', 'done');
    assert.equal(event.length, 1);
    assert.deepEqual(JSON.parse(event[0]!.detail).finalBackups, [
      { addon: 'redis', backup: `b${finals[0]!.id}` },
    ]);
    assert.equal(existsSync(paths.app(made.id)), false, 'repository, build cache and slugs are gone');
    assert.equal(
      (await db.selectFrom('releases').select('id').where('app_id', '=', made.id).execute()).length,
      0,
    );
    // The name stays taken: nobody (not even its owner) can create it again.
    await assert.rejects(createApp(db, ana, 'done', { memoryMiB: 64, cpus: 1, pids: 32 }), /already exists/);
  });

  test('an archive cut off by a crash is finished by the next start', async () => {
    const made = await experiment('cutoff');
    const expiredAt = new Date(Date.now() - 2 * DAY_MS).toISOString();
    // The previous control plane had begun (stage archived) and died before the backups.
    await setApp('cutoff', { expires_at: expiredAt, expired_at: expiredAt, stage: 'archived' });
    // Meanwhile a renewal is refused: the backups are being taken.
    await assert.rejects(renewApp(db, ana, await app('cutoff'), undefined, RENEWALS), /being archived/);
    const l = loop({ archiveAfterDays: 1, warnDays: [] });
    await l.tick();
    const archived = await app('cutoff');
    assert.ok(archived.archived_at !== null);
    assert.equal(existsSync(paths.app(made.id)), false);
  });
});

describe('the lifecycle configuration', () => {
  it('has the documented defaults; periods may be fractional; warnings are sorted', () => {
    const config = loadConfig({ dataDir: '/tmp/x' });
    assert.deepEqual(config.lifecycle, {
      defaultDays: 90,
      maxDays: 90,
      warnDays: [14, 7, 1],
      archiveAfterDays: 30,
      checkMs: 60_000,
    });
    const short = loadConfig({
      dataDir: '/tmp/x',
      lifecycle: { defaultDays: 0.5, warnDays: [1, 7, 7, 0.25] },
    });
    assert.equal(short.lifecycle.defaultDays, 0.5);
    assert.deepEqual(short.lifecycle.warnDays, [7, 1, 0.25]);
    assert.equal(short.lifecycle.maxDays, 90, 'the other keys keep their defaults');
  });

  it('refuses typos and impossible values, naming the key', () => {
    for (const [lifecycle, message] of [
      [{ maxdays: 30 }, /'lifecycle\.maxdays' is unknown; the keys are defaultDays, maxDays/],
      [{ defaultDays: 0 }, /lifecycle\.defaultDays/],
      [{ maxDays: 'ninety' }, /lifecycle\.maxDays/],
      [{ warnDays: [14, -1] }, /lifecycle\.warnDays/],
      [{ warnDays: '14' }, /lifecycle\.warnDays/],
      [{ archiveAfterDays: -1 }, /lifecycle\.archiveAfterDays/],
      [{ checkMs: 10 }, /lifecycle\.checkMs/],
      ['often', /lifecycle/],
    ] as const) {
      assert.throws(() => loadConfig({ dataDir: '/tmp/x', lifecycle }), message, JSON.stringify(lifecycle));
    }
  });
});

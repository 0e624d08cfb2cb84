// POST /v1/apps/:name/graduate (`petri graduate`): a team admin gets the handoff bundle of an
// app whose release, slug, formation, config, egress and add-on exist in the store and on
// disk (a fake slug; the add-on's backups written by a fake engine). The bundle is read back
// as a production team would, with the system's tar: its Dockerfile starts what the release
// starts, its manifests are valid Kubernetes objects, its NetworkPolicy opens what the
// release declared, no config var's value is anywhere in it, the slug is in it as it is
// (links as links: nothing outside the slug comes along), and the app is graduating.
import assert from 'node:assert/strict';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../src/api/context.js';
import { finishBackup, insertBackup } from '../../src/domain/addon-backups.js';
import { getAddon } from '../../src/domain/addons.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { recordEgressAttempts } from '../../src/domain/egress.js';
import { DAY_MS, stoppedByLifecycle } from '../../src/domain/lifecycle.js';
import { insertRelease } from '../../src/domain/releases.js';
import { sealConfig } from '../../src/domain/sealed-config.js';
import { createTeam, setMember } from '../../src/domain/teams.js';
import { loadConfig } from '../../src/lib/config.js';
import { UserError } from '../../src/lib/errors.js';
import { execOk } from '../../src/lib/exec.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, Release, User } from '../../src/store/schema.js';
import { readManifest, validateManifest } from '../graduation/kubernetes-schemas.js';
import { buildTestApi, testSecrets } from './test-api.js';
import { unusedAddons } from './unused.js';

// Values no renderer could make up: if one is in the bundle, it came from the config.
const CONFIG = {
  STRIPE_KEY: 'sk_live_9fQ2xXSECRETstripe',
  DATABASE_URL: 'postgres://shop_a:Pw7hUNIQUEdbpass@10.9.8.7:5432/petri_shop',
  GREETING: 'hello-config-value-3141',
};
const OUTSIDE_SECRET = 'root-only-text-outside-the-slug-2718';
const RUNTIME_ENV = {
  NODE_ENV: 'production',
  PATH: '/opt/node/bin:/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin',
};
const PROCESS_TYPES = { web: 'node server.js', worker: 'node worker.js' };
const EGRESS = ['api.stripe.com:443', '203.0.113.7:5432'];

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from YAML, walked by path in assertions
type Json = any;

describe('POST /v1/apps/:name/graduate', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let paths: DataPaths;
  const tokens: Record<string, string> = {};
  const users: Record<string, User> = {};
  let backupFails = false;
  let backupsTaken = 0;

  const graduate = (who: string | undefined, app = 'shop') =>
    api.inject({
      method: 'POST',
      url: `/v1/apps/${app}/graduate`,
      headers: who ? { authorization: `Bearer ${tokens[who]}` } : {},
    });

  const appRow = (name: string): Promise<App> =>
    db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirstOrThrow();

  /** A slug as a build leaves it: code, node_modules with a .bin link, a long path, an
   * executable; and what a hostile build could leave: links out of the slug. */
  function makeSlug(root: string, outside: string): string {
    const slug = path.join(root, 'slug');
    mkdirSync(path.join(slug, 'node_modules/left-pad/bin'), { recursive: true });
    writeFileSync(path.join(slug, 'server.js'), 'require("http").createServer().listen(process.env.PORT)\n');
    writeFileSync(path.join(slug, 'worker.js'), 'setInterval(() => {}, 1000)\n');
    writeFileSync(path.join(slug, 'node_modules/left-pad/bin/cli.js'), '#!/usr/bin/env node\n');
    chmodSync(path.join(slug, 'node_modules/left-pad/bin/cli.js'), 0o755);
    mkdirSync(path.join(slug, 'node_modules/.bin'));
    symlinkSync('../left-pad/bin/cli.js', path.join(slug, 'node_modules/.bin/left-pad'));
    const deep = path.join(slug, 'a'.repeat(60), 'b'.repeat(60));
    mkdirSync(deep, { recursive: true });
    writeFileSync(path.join(deep, 'long-name.txt'), 'a path past ustar’s 100 bytes\n');
    writeFileSync(path.join(slug, 'empty'), '');
    writeFileSync(
      path.join(slug, 'package.json'),
      JSON.stringify({ dependencies: { 'left-pad': '^1.3.0' }, devDependencies: { tsx: '^4' } }),
    );
    // The lockfile is a link to a file outside: the paperwork must not read it (root would).
    symlinkSync(path.join(outside, 'lock.json'), path.join(slug, 'package-lock.json'));
    symlinkSync(path.join(outside, 'secret.txt'), path.join(slug, 'leak'));
    symlinkSync(outside, path.join(slug, 'outside-dir'));
    return slug;
  }

  async function addRelease(app: App, slug: string, user: User): Promise<Release> {
    const release = await insertRelease(db, app.id, user.id, {
      slug_dir: slug,
      process_types: JSON.stringify(PROCESS_TYPES),
      runtime_env: JSON.stringify(RUNTIME_ENV),
      config_sealed: sealConfig(testSecrets(), CONFIG),
      release_command: 'node migrate.js',
      health_path: '/healthz',
      egress: JSON.stringify(EGRESS),
      kind: 'deploy',
      description: 'Deploy',
      deploy_id: null,
      node_version: '22.23.5',
    });
    await db.updateTable('releases').set({ status: 'succeeded' }).where('id', '=', release.id).execute();
    await db
      .updateTable('apps')
      .set({ serving_release_id: release.id, config_sealed: sealConfig(testSecrets(), CONFIG) })
      .where('id', '=', app.id)
      .execute();
    return release;
  }

  async function addAddon(app: App, user: User): Promise<void> {
    await db
      .insertInto('addons')
      .values({
        app_id: app.id,
        app_name: app.name,
        name: 'postgres',
        type: 'postgres',
        env_var: 'DATABASE_URL',
        mode: 'managed',
        resource: `petri_test_${app.id}`,
        status: 'ready',
        retiring_slot: null,
        retire_after_release_id: null,
        created_by: user.id,
        created_at: new Date().toISOString(),
        destroyed_at: null,
        error: null,
      })
      .execute();
  }

  /** The engine's part: a dump file written where the add-on service keeps them. */
  const addons: ApiContext['addons'] = new Proxy(unusedAddons(), {
    get: (target, name) =>
      name === 'backup'
        ? async (user: User, app: App, addonName: string) => {
            if (backupFails)
              throw new UserError('engine_failed', 'postgres at 127.0.0.1:5432 is not answering');
            const addon = await getAddon(db, app, addonName);
            const row = await insertBackup(db, addon, 'manual', user.name, null);
            const file = paths.addonBackup(addon.id, row.id);
            mkdirSync(path.dirname(file), { recursive: true });
            const dump = `PGDMP table orders of ${app.name}, backup ${row.id}\n`;
            writeFileSync(file, dump, { mode: 0o600 });
            backupsTaken += 1;
            return finishBackup(db, row.id, { sizeBytes: Buffer.byteLength(dump) });
          }
        : Reflect.get(target, name),
  });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-graduate-'));
    paths = new DataPaths(dir);
    db = await openStore(paths.store);
    for (const [name, role] of [
      ['root', 'admin'],
      ['ana', 'member'],
      ['bob', 'member'],
      ['vic', 'member'],
      ['eve', 'member'],
    ] as const) {
      users[name] = await createUser(db, name, role, { email: `${name}@example.org` });
      tokens[name] = await issueToken(db, users[name].id, 'test');
    }
    const team = await createTeam(db, users.ana!, 'growth');
    await setMember(db, users.ana!, team, 'bob@example.org', 'member');
    await setMember(db, users.ana!, team, 'vic@example.org', 'viewer');
    const outside = path.join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret.txt'), `${OUTSIDE_SECRET}\n`);
    writeFileSync(
      path.join(outside, 'lock.json'),
      JSON.stringify({ packages: { 'node_modules/left-pad': { version: `9.9.9-${OUTSIDE_SECRET}` } } }),
    );
    const slug = makeSlug(dir, outside);
    const limits = { memoryMiB: 256, cpus: 0.5, pids: 64 };
    for (const name of ['shop', 'sleepy', 'gone']) {
      const app = await createApp(db, users.ana!, name, limits, undefined, Infinity, Infinity, {
        team: 'growth',
      });
      await db
        .updateTable('apps')
        .set({
          description: `The ${name} experiment`,
          data_class: 'personal',
          privacy_note: 'e-mails of buyers',
          retention_days: 30,
        })
        .where('id', '=', app.id)
        .execute();
      await addRelease(app, slug, users.ana!);
      await addAddon(app, users.ana!);
    }
    const shop = await appRow('shop');
    await db.updateTable('formations').set({ quantity: 2 }).where('app_id', '=', shop.id).execute();
    await db.insertInto('formations').values({ app_id: shop.id, type: 'worker', quantity: 1 }).execute();
    await recordEgressAttempts(db, [
      {
        app: 'shop',
        host: 'api.stripe.com',
        port: 443,
        allowed: true,
        count: 12,
        lastSeen: new Date().toISOString(),
      },
      {
        app: 'shop',
        host: 'tracker.example.com',
        port: 443,
        allowed: false,
        count: 2,
        lastSeen: new Date().toISOString(),
      },
    ]);
    // Never deployed.
    await createApp(db, users.ana!, 'empty', limits, undefined, Infinity, Infinity, { team: 'growth' });
    api = await buildTestApi(dir, db, {}, { addons });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Unpacks the bundle with the system's tar, as its reader would. */
  async function unpack(body: Buffer, name: string): Promise<string> {
    const target = mkdtempSync(path.join(dir, `unpacked-${name}-`));
    const file = path.join(target, 'bundle.tar.gz');
    writeFileSync(file, body);
    await execOk('tar', ['-xzf', file, '-C', target]);
    return path.join(target, `${name}-handoff`);
  }

  function filesUnder(root: string, rel = ''): string[] {
    return readdirSync(path.join(root, rel), { withFileTypes: true }).flatMap((e) => {
      const child = rel ? `${rel}/${e.name}` : e.name;
      return e.isDirectory() ? [`${child}/`, ...filesUnder(root, child)] : [child];
    });
  }

  test('a team admin gets a bundle that runs the release, names no config value and moves the app to graduating', async () => {
    const res = await graduate('ana');
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['content-type'], 'application/gzip');
    assert.equal(res.headers['content-disposition'], 'attachment; filename="shop-handoff.tar.gz"');
    assert.equal(res.headers['petri-release'], 'v1');
    assert.equal(res.headers['petri-stage'], 'graduating');
    assert.match(String(res.headers['petri-backups']), /^postgres=b\d+ fresh$/);
    const root = await unpack(res.rawPayload, 'shop');
    const files = filesUnder(root);
    for (const f of [
      'HANDOFF.md',
      'Dockerfile',
      '.dockerignore',
      'data.md',
      'manifests/secret.yaml',
      'manifests/deployment-web.yaml',
      'manifests/deployment-worker.yaml',
      'manifests/service-web.yaml',
      'manifests/ingress-web.yaml',
      'manifests/networkpolicy.yaml',
      'manifests/job-release.yaml',
      'slug/server.js',
      'slug/node_modules/.bin/left-pad',
    ])
      assert.ok(files.includes(f), `${f} is in the bundle: ${files.join(', ')}`);
    const backup = files.find((f) => /^backups\/postgres-b\d+\.pgdump$/.test(f));
    assert.ok(backup, 'the fresh backup is in backups/');
    assert.match(readFileSync(path.join(root, backup), 'utf8'), /PGDMP table orders of shop/);
    assert.equal((await lstat(path.join(root, backup))).mode & 0o777, 0o600, 'a dump is for its reader only');

    // The Dockerfile starts the release's web command as Petri did, on its Node.js.
    const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const cmd = dockerfile.split('\n').find((l) => l.startsWith('CMD '));
    assert.deepEqual(JSON.parse(cmd?.slice(4) ?? 'null'), ['sh', '-c', PROCESS_TYPES.web]);
    assert.match(dockerfile, /^FROM node:22\.23\.5-/m);
    assert.match(dockerfile, /^COPY slug\/ \/app\/$/m);

    // Every manifest is a valid Kubernetes object; each process type runs its command.
    for (const f of files.filter((f) => f.startsWith('manifests/') && f.endsWith('.yaml'))) {
      validateManifest(readManifest(readFileSync(path.join(root, f), 'utf8')));
    }
    const manifest = (f: string): Json => readManifest(readFileSync(path.join(root, 'manifests', f), 'utf8'));
    for (const [type, command] of Object.entries(PROCESS_TYPES)) {
      const d = manifest(`deployment-${type}.yaml`);
      assert.deepEqual(d.spec.template.spec.containers[0].command, ['sh', '-c', command]);
      assert.equal(d.spec.replicas, type === 'web' ? 2 : 1, `${type}: the formation's replicas`);
      assert.deepEqual(d.spec.template.spec.containers[0].resources.limits, {
        cpu: '500m',
        memory: '256Mi',
        'ephemeral-storage': '1024Mi',
      });
    }
    assert.equal(
      manifest('deployment-web.yaml').spec.template.spec.containers[0].readinessProbe.httpGet.path,
      '/healthz',
    );

    // The NetworkPolicy: DNS, the release's declared egress (an address as a /32), the add-on.
    const policy = manifest('networkpolicy.yaml');
    assert.deepEqual(
      policy.spec.egress.map((r: Json) => [
        r.to?.[0]?.ipBlock?.cidr ?? '*',
        r.ports.map((p: Json) => `${p.protocol}/${p.port}`).join(' '),
      ]),
      [
        ['*', 'UDP/53 TCP/53'],
        ['*', 'TCP/443'],
        ['203.0.113.7/32', 'TCP/5432'],
        ['*', 'TCP/5432'],
      ],
    );
    const policyText = readFileSync(path.join(root, 'manifests/networkpolicy.yaml'), 'utf8');
    for (const host of EGRESS) assert.ok(policyText.includes(`# ${host}`), `${host} is named in a comment`);

    // The Secret names the release's config vars, with placeholders.
    assert.deepEqual(Object.keys(manifest('secret.yaml').stringData).sort(), Object.keys(CONFIG).sort());

    // No config var's value anywhere: not in a file (slug and backup included), not in a
    // name or a header of the archive.
    const raw = gunzipSync(res.rawPayload).toString('latin1');
    // Links are checked below: they stay links, and reading one here would follow it.
    const links = new Set([
      'slug/node_modules/.bin/left-pad',
      'slug/leak',
      'slug/outside-dir',
      'slug/package-lock.json',
    ]);
    for (const value of Object.values(CONFIG)) {
      assert.ok(!raw.includes(value), `${value} is not in the archive`);
      for (const f of files.filter((f) => !f.endsWith('/') && !links.has(f)))
        assert.ok(!readFileSync(path.join(root, f), 'latin1').includes(value), `${value} is not in ${f}`);
    }

    // The slug as it is: bytes, modes, links as links; nothing from outside it.
    assert.equal(
      readFileSync(path.join(root, 'slug/server.js'), 'utf8'),
      readFileSync(path.join(dir, 'slug/server.js'), 'utf8'),
    );
    assert.equal((await lstat(path.join(root, 'slug/node_modules/left-pad/bin/cli.js'))).mode & 0o777, 0o755);
    assert.equal(
      await readlink(path.join(root, 'slug/node_modules/.bin/left-pad')),
      '../left-pad/bin/cli.js',
    );
    assert.ok(
      files.some((f) => f.endsWith('long-name.txt') && f.length > 100),
      'a path past 100 bytes (pax)',
    );
    assert.ok((await lstat(path.join(root, 'slug/leak'))).isSymbolicLink());
    assert.ok((await lstat(path.join(root, 'slug/outside-dir'))).isSymbolicLink());
    assert.ok(!raw.includes(OUTSIDE_SECRET), 'no file outside the slug was read into the bundle');

    // HANDOFF.md: who, the data class and its review, declared and observed egress, dependencies.
    const handoff = readFileSync(path.join(root, 'HANDOFF.md'), 'utf8');
    assert.match(handoff, /^> The shop experiment$/m);
    assert.match(handoff, /\| Owner \| ana \(ana@example\.org\) \|/);
    assert.match(handoff, /\| Team \| growth \|/);
    assert.match(handoff, /\*\*privacy review\*\*/);
    assert.match(handoff, /\*\*infrasec review\*\*/);
    assert.match(handoff, /\| tracker\.example\.com \| 443 \| refused \| 2 \|/);
    assert.match(
      handoff,
      /From `package\.json`: 2 direct/,
      'the lockfile is a link out of the slug: not read',
    );
    assert.match(handoff, /- left-pad \^1\.3\.0$/m);
    assert.match(
      readFileSync(path.join(root, 'data.md'), 'utf8'),
      /pg_restore .*backups\/postgres-b\d+\.pgdump/,
    );

    // The app is graduating: its expiry suspended until the handoff's deadline
    // (lifecycle.maxDays from now); the handoff is on the record.
    const shop = await appRow('shop');
    assert.equal(shop.stage, 'graduating');
    const deadline = Date.parse(shop.expires_at!) - Date.now();
    assert.ok(Math.abs(deadline - loadConfig({}).lifecycle.maxDays * DAY_MS) < 60_000, shop.expires_at!);
    const event = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'app.graduate')
      .where('app', '=', 'shop')
      .executeTakeFirstOrThrow();
    assert.equal(event.actor, 'ana');
    assert.equal(JSON.parse(event.detail).release, 'v1');
  });

  test('graduating again makes a new bundle and keeps the stage', async () => {
    const before = backupsTaken;
    const res = await graduate('root');
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['petri-stage'], 'graduating');
    assert.equal(backupsTaken, before + 1, 'a fresh backup each time');
  });

  test('a sleeping, expired app graduates (by an admin; its team renews it first): nothing needs it running', async () => {
    const sleepy = await appRow('sleepy');
    const at = new Date(Date.now() - 3600_000).toISOString();
    await db
      .updateTable('apps')
      .set({ sleeping_since: at, expired_at: at, expires_at: at, serving_release_id: null })
      .where('id', '=', sleepy.id)
      .execute();
    // Graduating is not a renewal beyond lifecycle.maxDays: the team renews first.
    const member = await graduate('ana', 'sleepy');
    assert.equal(member.statusCode, 409, member.body);
    assert.match(
      member.json().error.message,
      /'sleepy' has expired: renew it first \('petri apps renew sleepy'\)/,
    );
    assert.equal((await appRow('sleepy')).stage, 'experiment');
    const res = await graduate('root', 'sleepy');
    assert.equal(res.statusCode, 200, res.body);
    const root = await unpack(res.rawPayload, 'sleepy');
    assert.ok(filesUnder(root).includes('slug/server.js'));
    const after = await appRow('sleepy');
    assert.equal(after.stage, 'graduating');
    assert.ok(Date.parse(after.expires_at!) > Date.now(), 'its expiry is suspended until the deadline');
    assert.equal(after.expired_at, null, 'no longer expired: it serves again during the handoff');
    assert.equal(stoppedByLifecycle(after), false);
    assert.equal(after.sleeping_since, at);
  });

  test("when the engine cannot back up now, the add-on's latest backup goes in, and the bundle says so", async () => {
    backupFails = true;
    try {
      const res = await graduate('ana');
      assert.equal(res.statusCode, 200, res.body);
      assert.match(String(res.headers['petri-backups']), /^postgres=b\d+ earlier$/);
      const data = readFileSync(path.join(await unpack(res.rawPayload, 'shop'), 'data.md'), 'utf8');
      assert.match(
        data,
        /could not take a fresh backup for this bundle \(postgres at 127\.0\.0\.1:5432 is not answering\)/,
      );
      // An add-on with no backup at all: no bundle, and the app is unchanged.
      const gone = await appRow('gone');
      const res2 = await graduate('ana', 'gone');
      assert.equal(res2.statusCode, 502, res2.body);
      assert.match(
        res2.json().error.message,
        /could not back up add-on 'postgres' \(postgres at 127\.0\.0\.1:5432 is not answering\) and it has no earlier backup; gone is unchanged/,
      );
      assert.equal((await appRow('gone')).stage, gone.stage);
    } finally {
      backupFails = false;
    }
  });

  test('only team admins and admins may; the others are told what they lack', async () => {
    assert.equal((await graduate(undefined)).statusCode, 401);
    const member = await graduate('bob', 'gone');
    assert.equal(member.statusCode, 403, member.body);
    assert.equal((await graduate('vic', 'gone')).statusCode, 403);
    assert.equal((await graduate('eve', 'gone')).statusCode, 404, 'not in the team: as if it did not exist');
    assert.equal((await appRow('gone')).stage, 'experiment');
  });

  test('an app with nothing to hand off is refused with what to do', async () => {
    const empty = await graduate('ana', 'empty');
    assert.equal(empty.statusCode, 409);
    assert.match(empty.json().error.message, /empty has no release that served yet: deploy it/);
    assert.equal((await appRow('empty')).stage, 'experiment');

    const gone = await appRow('gone');
    await db.updateTable('apps').set({ stage: 'archived' }).where('id', '=', gone.id).execute();
    const archived = await graduate('ana', 'gone');
    assert.equal(archived.statusCode, 409);
    assert.match(archived.json().error.message, /gone is archived: its build is gone/);
    await db.updateTable('apps').set({ stage: 'experiment' }).where('id', '=', gone.id).execute();

    // The slug directory is gone from the disk (removed by hand, a lost volume).
    const slugless = await db
      .selectFrom('releases')
      .select('id')
      .where('app_id', '=', gone.id)
      .executeTakeFirstOrThrow();
    await db
      .updateTable('releases')
      .set({ slug_dir: path.join(dir, 'no-such-slug') })
      .where('id', '=', slugless.id)
      .execute();
    const noSlug = await graduate('ana', 'gone');
    assert.equal(noSlug.statusCode, 409);
    assert.match(noSlug.json().error.message, /the build of gone v1 is gone from this server/);
    assert.equal((await appRow('gone')).stage, 'experiment');
  });
});

// Add-ons end to end: an app in its sandbox using PostgreSQL and Redis (managed servers)
// and MariaDB (the machine's own, as an external server) through the gateway's forwards;
// backups that restore exactly, rotation, destruction with a final backup, an engine that
// is down, and a managed server that dies and comes back. The machine's PostgreSQL (trust)
// and Redis (protected mode) only let loopback clients in, so apps cannot use them as
// external servers; their providers are tested against them directly (test/addons/).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/lib/ports.js';
import { processStartTime } from '../../src/lib/process.js';
import { until } from '../../src/lib/until.js';
import { SteadyLoad } from './load.js';
import { FIXTURES, TestPetri } from './petri.js';

const PROBE = path.join(FIXTURES, 'addon-probe');
const ENGINES = [
  { type: 'postgres', path: 'pg', envVar: 'DATABASE_URL', port: 5432 },
  { type: 'mysql', path: 'mysql', envVar: 'MYSQL_URL', port: 3306 },
  { type: 'redis', path: 'redis', envVar: 'REDIS_URL', port: 6379 },
] as const;

const EXTERNAL = {
  postgres: { mode: 'managed' },
  mysql: { mode: 'external', adminUrl: 'mysql://root@127.0.0.1:3306/' },
  redis: { mode: 'managed' },
};

interface AddonJson {
  name: string;
  type: string;
  envVar: string;
  status: string;
  usage: { bytes: number | null; connections: number | null };
}
interface BackupJson {
  id: string;
  app: string;
  addon: string;
  kind: string;
  status: string;
  sizeBytes: number | null;
  expiresAt: string | null;
}

function harness(petri: () => TestPetri) {
  const ok = async (argv: string[], stdin?: string) => {
    const r = await petri().cli(argv, undefined, stdin);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };
  const json = async <T>(argv: string[]) => JSON.parse((await ok([...argv, '--json'])).stdout) as T;
  const get = async (app: string, urlPath: string) => {
    const r = await petri().app(app, urlPath);
    assert.equal(r.status, 200, `${app}${urlPath}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as unknown;
  };
  const config = (app: string) => json<Record<string, string>>(['config', '--app', app]);
  return { ok, json, get, config };
}

describe("add-ons on managed PostgreSQL and Redis and the machine's MariaDB", () => {
  let petri: TestPetri;
  const { ok, json, get, config } = harness(() => petri);
  const scratch = mkdtempSync(path.join(tmpdir(), 'petri-addons-'));

  before(async () => {
    petri = await TestPetri.start({ bootTimeoutMs: 30_000, addons: { ...EXTERNAL } });
    await ok(['apps', 'create', 'probe']);
    await ok(['deploy', PROBE, '--app', 'probe']);
  });
  after(async () => {
    // Whatever a failed test left on the shared servers goes with the apps' add-ons.
    for (const app of ['probe', 'neighbour']) {
      const list = await petri.cli(['addons', '--app', app, '--json']).catch(() => undefined);
      if (list?.code !== 0) continue;
      const { addons } = JSON.parse(list.stdout) as { addons: AddonJson[] };
      for (const a of addons)
        await petri.cli(['addons', 'destroy', a.name, '--app', app, '--confirm', a.name]);
    }
    await petri?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('an unknown type is refused with the list of available ones', async () => {
    const r = await petri.cli(['addons', 'create', 'mongodb', '--app', 'probe']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown add-on type 'mongodb'; available: postgres, mysql, redis/);
  });

  test('create: each engine attaches in a new release with zero downtime, and the app uses it from its sandbox', async () => {
    const load = new SteadyLoad(petri.httpPort, 'probe.petri.localhost');
    try {
      for (const engine of ENGINES) {
        const created = await ok(['addons', 'create', engine.type, '--app', 'probe']);
        assert.match(created.stdout, new RegExp(`${engine.envVar}`));
      }
    } finally {
      const result = await load.stop();
      assert.deepEqual(result.failures, [], `failed requests during the attaches (${result.requests} sent)`);
      assert.ok(result.requests > 10, `load ran: ${result.requests}`);
    }
    const env = (await get('probe', '/env')) as Record<string, string>;
    const gateway = petri.config.network.subnet.replace(/0\/24$/, '1');
    assert.deepEqual(env, {
      DATABASE_URL: `${gateway}:5432`,
      MYSQL_URL: `${gateway}:3306`,
      REDIS_URL: `${gateway}:6379`,
    });
    for (const engine of ENGINES) {
      assert.equal(await get('probe', `/${engine.path}/put?k=greeting&v=hello`), 'ok');
      assert.deepEqual(await get('probe', `/${engine.path}/all`), { greeting: 'hello' }, engine.type);
    }
    const prefix = (await config('probe')).REDIS_KEY_PREFIX;
    assert.match(prefix ?? '', /^petri_[0-9a-f]{6}_[0-9]+:$/);
  });

  test('petri addons lists type, config var, status, size and connections', async () => {
    const { addons } = await json<{ addons: AddonJson[] }>(['addons', '--app', 'probe']);
    assert.deepEqual(
      addons.map((a) => [a.name, a.type, a.envVar, a.status]),
      [
        ['mysql', 'mysql', 'MYSQL_URL', 'ready'],
        ['postgres', 'postgres', 'DATABASE_URL', 'ready'],
        ['redis', 'redis', 'REDIS_URL', 'ready'],
      ],
    );
    for (const a of addons) {
      assert.ok((a.usage.bytes ?? 0) > 0, `${a.name} size: ${a.usage.bytes}`);
      assert.equal(typeof a.usage.connections, 'number');
    }
    const table = await ok(['addons', '--app', 'probe']);
    assert.match(table.stdout, /^NAME\s+TYPE/m);
    assert.match(table.stdout, /^postgres\s+postgres\s+DATABASE_URL\s+ready/m);
  });

  test('credentials are sealed at rest and never logged', async () => {
    const vars = await config('probe');
    const passwords = ENGINES.map((e) => decodeURIComponent(new URL(vars[e.envVar] ?? '').password));
    for (const p of passwords) assert.ok(p.length >= 16, 'a real password');
    const files = [
      ...['petri.db', 'petri.db-wal'].map((f) => path.join(petri.dataDir, f)),
      ...listFiles(path.join(petri.dataDir, 'logs')),
    ].filter((f) => existsSync(f));
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const p of passwords) assert.equal(bytes.includes(p), false, `${file} holds a password`);
    }
    for (const p of passwords)
      assert.equal(petri.output.includes(p), false, 'the server log holds a password');
    const addonVar = await petri.cli([
      'config',
      'set',
      'DATABASE_URL=postgres://elsewhere/db',
      '--app',
      'probe',
    ]);
    assert.equal(addonVar.code, 1);
    assert.match(addonVar.stderr, /DATABASE_URL belongs to add-on 'postgres'/);
  });

  test('backup, change, restore gives back exactly the data; downloads are standard dumps', async () => {
    for (const engine of ENGINES) {
      await get('probe', `/${engine.path}/put?k=second&v=${encodeURIComponent('naïve "quoted" ✓')}`);
      const before = await get('probe', `/${engine.path}/all`);
      const backup = await json<BackupJson>(['addons', 'backup', engine.type, '--app', 'probe']);
      assert.equal(backup.status, 'succeeded');
      assert.ok((backup.sizeBytes ?? 0) > 0);
      await get('probe', `/${engine.path}/put?k=greeting&v=changed`);
      await get('probe', `/${engine.path}/put?k=third&v=3`);
      assert.notDeepEqual(await get('probe', `/${engine.path}/all`), before);
      const restored = await ok(['addons', 'restore', engine.type, backup.id, '--app', 'probe']);
      assert.match(restored.stdout, new RegExp(`Restored ${backup.id}`));
      assert.deepEqual(await get('probe', `/${engine.path}/all`), before, `${engine.type} restored exactly`);
      const file = path.join(scratch, `${engine.type}.dump`);
      await ok(['addons', 'download', engine.type, backup.id, '--app', 'probe', '-o', file]);
      assert.equal(statSync(file).size, backup.sizeBytes);
      assertStandardDump(engine.type, file);
    }
    const { backups } = await json<{ backups: BackupJson[] } | BackupJson[]>([
      'addons',
      'backups',
      'postgres',
      '--app',
      'probe',
    ]).then((b) => (Array.isArray(b) ? { backups: b } : b));
    // The manual one, and the one taken of the data the restore replaced.
    assert.ok(backups.filter((b) => b.kind === 'manual').length >= 2, JSON.stringify(backups));
  });

  test('rotate: a new password in a new release; the old one is refused once that release serves', async () => {
    const before = (await config('probe')).DATABASE_URL ?? '';
    const load = new SteadyLoad(petri.httpPort, 'probe.petri.localhost');
    try {
      const r = await ok(['addons', 'rotate', 'postgres', '--app', 'probe']);
      assert.match(r.stdout, /v[0-9]+/);
    } finally {
      const result = await load.stop();
      assert.deepEqual(result.failures, [], 'no failed request during the rotation');
    }
    const after = (await config('probe')).DATABASE_URL ?? '';
    assert.notEqual(after, before);
    assert.notEqual(new URL(after).password, new URL(before).password);
    await until(
      async () => {
        const r = await petri.app('probe', `/pg/try?url=${encodeURIComponent(before)}`);
        return r.status === 500 && /password authentication failed|not permitted to log in/.test(r.body);
      },
      { timeout: 20_000, message: 'the old password to be revoked' },
    );
    assert.equal(await get('probe', `/pg/try?url=${encodeURIComponent(after)}`), 'connected');
    assert.ok('greeting' in ((await get('probe', '/pg/all')) as object), 'the data is still there');
    // A rollback to the release before the rotation keeps the current (new) URL.
    await ok(['rollback', '--app', 'probe']);
    assert.equal((await config('probe')).DATABASE_URL, after);
    assert.ok('greeting' in ((await get('probe', '/pg/all')) as object), 'the rolled-back release uses it');
  });

  test("one app's login cannot open another app's database", async () => {
    await ok(['apps', 'create', 'neighbour']);
    await ok(['deploy', PROBE, '--app', 'neighbour']);
    for (const engine of ENGINES.filter((e) => e.type !== 'redis')) {
      await ok(['addons', 'create', engine.type, '--app', 'neighbour']);
      await get('neighbour', `/${engine.path}/put?k=secret&v=neighbours`);
      const mine = new URL((await config('probe'))[engine.envVar] ?? '');
      const theirs = new URL((await config('neighbour'))[engine.envVar] ?? '');
      mine.pathname = theirs.pathname;
      const r = await petri.app('probe', `/${engine.path}/try?url=${encodeURIComponent(mine.toString())}`);
      assert.equal(r.status, 500, `${engine.type}: ${r.body}`);
      assert.match(r.body, /denied|permission|not have|privilege/i);
    }
  });

  test('petri addons shell runs the engine client as the app, in its sandbox', async () => {
    const pg = await ok(['addons', 'shell', 'postgres', '--app', 'probe'], 'select 41 + 1 as answer;\n');
    assert.match(pg.stdout, /42/);
    const redis = await ok(['addons', 'shell', 'redis', '--app', 'probe'], 'PING\n');
    assert.match(redis.stdout, /PONG/);
  });

  test('destroy: a final backup is kept, the config var goes and the login is gone', async () => {
    const url = (await config('probe')).MYSQL_URL ?? '';
    const refused = await petri.cli(['addons', 'destroy', 'mysql', '--app', 'probe']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--confirm mysql/);
    const gone = await ok(['addons', 'destroy', 'mysql', '--app', 'probe', '--confirm', 'mysql']);
    assert.match(gone.stdout, /final backup b[0-9]+/);
    assert.equal((await config('probe')).MYSQL_URL, undefined);
    const r = await petri.app('probe', `/mysql/try?url=${encodeURIComponent(url)}`);
    assert.equal(r.status, 500);
    assert.match(r.body, /Access denied/);
    const { backups } = await json<{ backups: BackupJson[] }>(['addons', 'backups', '--all']).then((b) =>
      Array.isArray(b) ? { backups: b as BackupJson[] } : b,
    );
    const final = backups.find((b) => b.app === 'probe' && b.addon === 'mysql' && b.kind === 'final');
    assert.ok(final, JSON.stringify(backups));
    const days = (Date.parse(final.expiresAt ?? '') - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `kept for 30 days: ${days}`);
  });

  test("destroying an app keeps its add-ons' final backups, which an admin can download", async () => {
    await ok(['apps', 'destroy', 'neighbour', '--confirm', 'neighbour']);
    const { backups } = await json<{ backups: BackupJson[] }>(['addons', 'backups', '--all']).then((b) =>
      Array.isArray(b) ? { backups: b as BackupJson[] } : b,
    );
    const finals = backups.filter((b) => b.app === 'neighbour' && b.kind === 'final');
    assert.deepEqual(finals.map((b) => b.addon).sort(), ['mysql', 'postgres']);
    const pgFinal = finals.find((b) => b.addon === 'postgres');
    const file = path.join(scratch, 'neighbour.dump');
    await ok(['addons', 'download', pgFinal?.id ?? '', '-o', file]);
    const listing = execFileSync(pgRestore(), ['--list', file], { encoding: 'utf8' });
    assert.match(listing, /TABLE DATA public kv/);
  });
});

describe('an add-on engine that is down; scheduled backups', () => {
  // Redis external, PostgreSQL external at a port where nothing listens.
  let petri: TestPetri;
  const { ok, config } = harness(() => petri);
  let deadPort: number;

  before(async () => {
    deadPort = await freePort();
    petri = await TestPetri.start({
      addons: {
        ...EXTERNAL,
        mysql: { mode: 'off' },
        redis: { mode: 'external', adminUrl: 'redis://127.0.0.1:6379' },
        postgres: { mode: 'external', adminUrl: `postgres://root@127.0.0.1:${deadPort}/postgres` },
        // Every 2 s, kept 6 s: the daily schedule and its retention, sped up.
        backupIntervalHours: 2 / 3600,
        backupRetentionDays: 6 / 86_400,
      },
    });
    await ok(['apps', 'create', 'steady']);
    await ok(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'steady']);
  });
  after(async () => petri?.destroy());

  test('addons create fails with a clear message, creates nothing, and the app keeps serving', async () => {
    const r = await petri.cli(['addons', 'create', 'postgres', '--app', 'steady']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`postgres server at 127\\.0\\.0\\.1:${deadPort} is not reachable`));
    assert.match(r.stderr, /nothing was created and 'steady' is unchanged/);
    assert.equal((await petri.app('steady')).status, 200);
    const { addons } = JSON.parse((await ok(['addons', '--app', 'steady', '--json'])).stdout) as {
      addons: unknown[];
    };
    assert.deepEqual(addons, []);
    assert.equal((await config('steady')).DATABASE_URL, undefined);
  });

  test('add-ons are backed up on schedule, and scheduled backups expire', async () => {
    await ok(['addons', 'create', 'redis', '--app', 'steady']);
    const scheduled = async () => {
      const r = JSON.parse((await ok(['addons', 'backups', 'redis', '--app', 'steady', '--json'])).stdout) as
        | BackupJson[]
        | { backups: BackupJson[] };
      return (Array.isArray(r) ? r : r.backups).filter(
        (b) => b.kind === 'scheduled' && b.status === 'succeeded',
      );
    };
    const first = await until(async () => (await scheduled())[0], {
      timeout: 15_000,
      message: 'a scheduled backup',
    });
    assert.ok(first.expiresAt, 'a scheduled backup has an expiry');
    await until(async () => (await scheduled()).length >= 2, { timeout: 15_000, message: 'the next one' });
    await until(async () => !(await scheduled()).some((b) => b.id === first.id), {
      timeout: 20_000,
      message: 'the first scheduled backup to expire',
    });
    await ok(['addons', 'destroy', 'redis', '--app', 'steady', '--confirm', 'redis']);
  });
});

describe('managed add-on servers', () => {
  let petri: TestPetri;
  const { ok, get } = harness(() => petri);
  const redisPid = () =>
    Number(readFileSync(path.join(petri.dataDir, 'addons/redis/run/redis.pid'), 'utf8').trim());

  before(async () => {
    petri = await TestPetri.start({
      bootTimeoutMs: 30_000,
      addons: { postgres: { mode: 'off' }, mysql: { mode: 'off' }, redis: { mode: 'managed' } },
    });
    await ok(['apps', 'create', 'probe']);
    await ok(['deploy', PROBE, '--app', 'probe']);
  });
  let destroyed = false;
  after(async () => {
    if (!destroyed) await petri?.destroy();
  });

  test('Petri runs its own server under its data dir, and the app uses it', async () => {
    await ok(['addons', 'create', 'redis', '--app', 'probe']);
    await get('probe', '/redis/put?k=kept&v=yes');
    assert.deepEqual(await get('probe', '/redis/all'), { kept: 'yes' });
  });

  test('a managed server that dies is started again, with its data', async () => {
    const pid = redisPid();
    process.kill(pid, 'SIGKILL');
    await until(
      async () => {
        const again = redisPid();
        return again !== pid && isAlive(again);
      },
      { timeout: 20_000, message: 'the managed redis server to be restarted' },
    );
    await until(
      async () => {
        const r = await petri.app('probe', '/redis/all');
        return r.status === 200 && JSON.parse(r.body).kept === 'yes';
      },
      { timeout: 10_000, message: 'the app to read its redis data again' },
    );
  });

  test('a restart of petri server adopts the running servers; --stop-all stops them', async () => {
    const pid = redisPid();
    await petri.kill9();
    await petri.startServer();
    await get('probe', '/redis/all');
    assert.equal(redisPid(), pid, 'the same redis server');
    assert.ok(isAlive(pid));
    destroyed = true;
    await petri.destroy();
    assert.equal(isAlive(pid), false, 'stopped by --stop-all');
  });
});

/** Alive and not a zombie (a server whose control plane died is reaped by init, or not). */
function isAlive(pid: number): boolean {
  return processStartTime(pid) !== undefined;
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

function pgRestore(): string {
  const majors = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  return `/usr/lib/postgresql/${majors[0]}/bin/pg_restore`;
}

/** Each engine's own tool reads the dump. */
function assertStandardDump(type: string, file: string): void {
  if (type === 'postgres') {
    assert.match(execFileSync(pgRestore(), ['--list', file], { encoding: 'utf8' }), /TABLE DATA public kv/);
  } else if (type === 'mysql') {
    assert.match(readFileSync(file, 'utf8'), /INSERT INTO `kv`/);
  } else {
    // RESTORE commands in the protocol redis-cli --pipe sends.
    assert.match(readFileSync(file, 'latin1'), /RESTORE/);
  }
}

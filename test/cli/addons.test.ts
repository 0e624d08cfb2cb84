// `petri addons`: the tables and blocks people read (golden), the requests each command
// sends, waiting for the release that carries the config var, destroy's --confirm, dumps
// downloaded byte for byte (to a file or a pipe, never to a terminal), and `shell` running
// the add-on's client through `petri run`'s WebSocket.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { formatSize, parseBackupId } from '../../src/cli/addons.js';
import { runCli } from '../../src/cli/main.js';
import { UsageError } from '../../src/cli/output.js';
import type { AddonBackup, AddonChange, AddonDetail, AddonList } from '../../src/client/index.js';
import {
  cannedDump,
  DUMP_BYTES,
  type FakeApi,
  POLLS_TO_SETTLE,
  RUN_OUTPUT,
  startFakeApi,
  TOKEN,
} from './fake-api.js';
import { assertGolden, Capture, envFor, run, tempDir } from './harness.js';

/** A stdout that keeps bytes as bytes, as a pipe or a redirect to a file would. */
class ByteCapture {
  readonly chunks: Buffer[] = [];
  constructor(readonly isTTY = false) {}
  write(chunk: string | Uint8Array): boolean {
    this.chunks.push(Buffer.from(chunk));
    return true;
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

describe('petri addons', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  beforeEach(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
    env = envFor(fake.url, TOKEN, temp.dir);
  });
  afterEach(async () => {
    await fake.close();
    await temp.remove();
  });

  const sent = () => fake.requests.map((r) => `${r.method} ${r.url}`);
  const bodyOf = (method: string, url: string) => {
    const request = fake.requests.find((r) => r.method === method && r.url === url);
    assert.ok(request, `no ${method} ${url} in ${sent().join(', ')}`);
    return request.body.length === 0 ? undefined : JSON.parse(request.body.toString());
  };
  const polls = (version: string) =>
    fake.requests.filter((r) => r.method === 'GET' && r.url === `/v1/apps/alpha/releases/${version}`).length;

  test('lists the add-ons with size and connections; a size the engine could not read is ?', async () => {
    const result = await run(['addons', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('addons-list.txt', result.stdout);
    assert.deepEqual(sent(), ['GET /v1/apps/alpha/addons']);
    // `list` is the default; the explicit form prints the same.
    assert.equal((await run(['addons', 'list', '-a', 'alpha'], { env })).stdout, result.stdout);
  });

  test('servers: each engine with its mode, address, state (and why it is down) and add-ons', async () => {
    const result = await run(['addons', 'servers'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('addons-servers.txt', result.stdout);
    assert.deepEqual(sent(), ['GET /v1/addon-servers']);
  });

  test('an app without add-ons (named in petri.toml) says how to create one and what is offered', async () => {
    await writeFile(path.join(temp.dir, 'petri.toml'), 'name = "beta-experiment"\n');
    const result = await run(['addons'], { env, cwd: temp.dir });
    assert.equal(result.code, 0);
    await assertGolden('addons-list-empty.txt', result.stdout);
    assert.deepEqual(sent(), ['GET /v1/apps/beta-experiment/addons']);
  });

  test('list --json prints the add-ons and the types on offer', async () => {
    const result = await run(['addons', '-a', 'alpha', '--json'], { env });
    assert.equal(result.code, 0);
    const list = JSON.parse(result.stdout) as AddonList;
    assert.deepEqual(list, { addons: fake.addons.get('alpha'), available: ['postgres', 'mysql', 'redis'] });
  });

  test('info shows one add-on with its last backup; --json prints the whole answer', async () => {
    const result = await run(['addons', 'info', 'postgres', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('addons-info.txt', result.stdout);
    assert.deepEqual(sent(), ['GET /v1/apps/alpha/addons/postgres']);

    const json = await run(['addons', 'info', 'postgres', '-a', 'alpha', '--json'], { env });
    const detail = JSON.parse(json.stdout) as AddonDetail;
    assert.equal(detail.lastBackup?.id, 'b2');
    assert.equal(detail.backups, 3);
    assert.deepEqual(detail.shell, ['/bin/sh', '-c', 'exec psql "$DATABASE_URL"']);

    const missing = await run(['addons', 'info', 'nope', '-a', 'alpha'], { env });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "error: add-on 'nope' of alpha not found; it has: cache, postgres\n");
  });

  test("backups lists an add-on's backups; --all adds the app and add-on of every backup", async () => {
    const own = await run(['addons', 'backups', 'postgres', '-a', 'alpha'], { env });
    assert.equal(own.stderr, '');
    assert.equal(own.code, 0);
    await assertGolden('addons-backups.txt', own.stdout);

    const all = await run(['addons', 'backups', '--all'], { env });
    assert.equal(all.code, 0);
    await assertGolden('addons-backups-all.txt', all.stdout);
    assert.deepEqual(sent(), ['GET /v1/apps/alpha/addons/postgres/backups', 'GET /v1/addon-backups']);

    const json = await run(['addons', 'backups', '--all', '--json'], { env });
    assert.deepEqual(
      (JSON.parse(json.stdout) as AddonBackup[]).map((b) => b.id),
      ['b4', 'b3', 'b2', 'b1'],
    );

    const before = fake.requests.length;
    const neither = await run(['addons', 'backups', '-a', 'alpha'], { env });
    assert.equal(neither.code, 2);
    assert.equal(
      neither.stderr,
      'error: name the add-on: petri addons backups NAME (or, for admins, --all)\n',
    );
    const both = await run(['addons', 'backups', 'postgres', '--all'], { env });
    assert.equal(both.code, 2);
    assert.equal(fake.requests.length, before, 'no request for a usage error');
  });

  test('create sends the type and --as, says where the URL is and waits for the release', async () => {
    const result = await run(['addons', 'create', 'mysql', '--as', 'analytics', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('addons-create.txt', result.stdout);
    assert.deepEqual(bodyOf('POST', '/v1/apps/alpha/addons'), { type: 'mysql', as: 'analytics' });
    // It waited: the release was asked for until it settled.
    assert.equal(polls('v5'), POLLS_TO_SETTLE);
    assert.equal(fake.releases.get('alpha')![0]!.status, 'succeeded');
    assert.ok(fake.config.get('alpha')!.ANALYTICS_URL);
  });

  test('create for an app never deployed: the URL comes with the first deploy, nothing to wait for', async () => {
    const result = await run(['addons', 'create', 'postgres', '-a', 'beta-experiment'], { env });
    assert.equal(result.code, 0);
    await assertGolden('addons-create-first-deploy.txt', result.stdout);
    assert.deepEqual(bodyOf('POST', '/v1/apps/beta-experiment/addons'), { type: 'postgres' });
    assert.deepEqual(sent(), ['POST /v1/apps/beta-experiment/addons']);
  });

  test('create --json prints the add-on and the release as it ended; a failed release exits 1', async () => {
    const done = await run(['addons', 'create', 'redis', '-a', 'alpha', '--json'], { env });
    assert.equal(done.code, 0);
    const change = JSON.parse(done.stdout) as AddonChange;
    assert.equal(change.addon.envVar, 'REDIS_URL');
    assert.equal(change.release?.status, 'succeeded');

    fake.releaseError = 'release failed: web.1 exited with code 1 before listening on its port';
    const failed = await run(['addons', 'create', 'postgres', '--as', 'reports', '-a', 'alpha'], { env });
    assert.equal(failed.code, 1);
    assert.equal(
      failed.stdout,
      'Creating postgres for alpha...\n' +
        "Created postgres 'reports' for alpha: REPORTS_URL is set in v6\n" +
        'Restarting alpha with v6...\n',
    );
    assert.equal(failed.stderr, `error: ${fake.releaseError}\n`);

    const nullJson = await run(['addons', 'create', 'redis', '-a', 'beta-experiment', '--json'], { env });
    assert.equal((JSON.parse(nullJson.stdout) as AddonChange).release, null);
  });

  test('a type the server does not offer is its error, as is', async () => {
    const result = await run(['addons', 'create', 'mongodb', '-a', 'alpha'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, 'Creating mongodb for alpha...\n');
    assert.equal(
      result.stderr,
      "error: unknown add-on type 'mongodb'; this server offers postgres, mysql, redis\n",
    );
  });

  test('destroy without the matching --confirm is refused before any request (exit 2)', async () => {
    const none = await run(['addons', 'destroy', 'postgres', '-a', 'alpha'], { env });
    assert.equal(none.code, 2);
    assert.equal(none.stdout, '');
    assert.equal(
      none.stderr,
      "error: destroying add-on 'postgres' deletes its data (a final backup is kept); to confirm, run: petri addons destroy postgres -a alpha --confirm postgres\n",
    );
    const wrong = await run(['addons', 'destroy', 'postgres', '--confirm', 'cache'], { env });
    assert.equal(wrong.code, 2);
    assert.match(
      wrong.stderr,
      /\(--confirm was 'cache'\); to confirm, run: petri addons destroy postgres --confirm postgres\n$/,
    );
    assert.equal(fake.requests.length, 0);
  });

  test('destroy with --confirm names the final backup and the release without the config var', async () => {
    const result = await run(['addons', 'destroy', 'postgres', '--confirm', 'postgres', '-a', 'alpha'], {
      env,
    });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('addons-destroy.txt', result.stdout);
    assert.deepEqual(sent().slice(0, 2), [
      'GET /v1/apps/alpha/addons/postgres',
      'DELETE /v1/apps/alpha/addons/postgres?confirm=postgres',
    ]);
    assert.equal(polls('v5'), POLLS_TO_SETTLE);
    assert.equal(fake.config.get('alpha')!.DATABASE_URL, undefined);
    assert.deepEqual(
      fake.addons.get('alpha')!.map((a) => a.name),
      ['cache'],
    );
  });

  test('rotate says when the old password goes and waits for the release', async () => {
    const result = await run(['addons', 'rotate', 'postgres', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout,
      'Rotating the password of postgres...\n' +
        'New password for postgres in v5; the old one is revoked once v5 serves\n' +
        'Restarting alpha with v5...\n' +
        'done, v5\n',
    );
    assert.deepEqual(sent().slice(0, 1), ['POST /v1/apps/alpha/addons/postgres/rotate']);
    assert.equal(polls('v5'), POLLS_TO_SETTLE);
    const info = await run(['addons', 'info', 'postgres', '-a', 'alpha'], { env });
    assert.match(info.stdout, /\nrotating: {4}old password valid until the new release serves\n/);
  });

  test('backup reports the new backup, its size and how long it took; --json prints it', async () => {
    const result = await run(['addons', 'backup', 'postgres', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Backing up postgres...\ndone: b5, 1.2 MiB in 1.5s\n');
    assert.deepEqual(sent(), ['POST /v1/apps/alpha/addons/postgres/backups']);
    const json = await run(['addons', 'backup', 'postgres', '-a', 'alpha', '--json'], { env });
    const backup = JSON.parse(json.stdout) as AddonBackup;
    assert.equal(backup.id, 'b6');
    assert.equal(backup.kind, 'manual');
  });

  test('on a TTY the backup line is finished in place', async () => {
    const result = await run(['addons', 'backup', 'postgres', '-a', 'alpha'], {
      env: { ...env, NO_COLOR: '1' },
      tty: true,
    });
    assert.equal(result.code, 0);
    assert.match(
      result.stdout,
      /^Backing up postgres\.\.\.(.*)\r\u001b\[KBacking up postgres\.\.\. done: b5, 1\.2 MiB in 1\.5s\n$/,
    );
  });

  test('restore sends the backup id and names the backup that keeps what was there', async () => {
    const result = await run(['addons', 'restore', 'postgres', '2', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout,
      'Restoring b2 into postgres (what is there is backed up first)...\n' +
        'Restored b2 into postgres; what was there before is in backup b5\n',
    );
    assert.deepEqual(bodyOf('POST', '/v1/apps/alpha/addons/postgres/restore'), { backup: 'b2' });

    const failed = await run(['addons', 'restore', 'postgres', 'b4', '-a', 'alpha'], { env });
    assert.equal(failed.code, 1);
    assert.equal(failed.stderr, 'error: backup b4 failed; pick another\n');

    const before = fake.requests.length;
    const bad = await run(['addons', 'restore', 'postgres', 'latest', '-a', 'alpha'], { env });
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      "error: a backup id looks like b12 (see 'petri addons backups NAME'), got 'latest'\n",
    );
    const missing = await run(['addons', 'restore', 'postgres', '-a', 'alpha'], { env });
    assert.equal(missing.code, 2);
    assert.equal(fake.requests.length, before);
  });

  test('download -o writes the dump byte for byte through FILE.partial, and says so on stderr', async () => {
    const result = await run(['addons', 'download', 'postgres', 'b2', '-a', 'alpha', '-o', 'db.dump'], {
      env,
      cwd: temp.dir,
    });
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, 'Wrote db.dump (293.0 KiB)\n');
    assert.equal(result.code, 0);
    const written = await readFile(path.join(temp.dir, 'db.dump'));
    assert.equal(written.length, DUMP_BYTES);
    assert.ok(written.equals(cannedDump(DUMP_BYTES, 2)), 'the bytes must be the dump, exactly');
    assert.ok(!(await readdir(temp.dir)).some((f) => f.endsWith('.partial')));
    assert.deepEqual(sent(), ['GET /v1/apps/alpha/addons/postgres/backups/b2/download']);
  });

  test('download to a pipe writes only the dump to stdout; with no NAME it is the admins’ route', async () => {
    const stdout = new ByteCapture(false);
    const stderr = new Capture();
    const code = await runCli(['addons', 'download', 'postgres', 'b2', '-a', 'alpha'], {
      stdout,
      stderr,
      env,
      cwd: temp.dir,
    });
    assert.equal(stderr.text, '');
    assert.equal(code, 0);
    assert.ok(stdout.bytes.equals(cannedDump(DUMP_BYTES, 2)));

    const admin = new ByteCapture(false);
    assert.equal(
      await runCli(['addons', 'download', 'b3'], { stdout: admin, stderr, env, cwd: temp.dir }),
      0,
    );
    assert.ok(admin.bytes.equals(cannedDump(2048, 3)));
    assert.equal(sent().at(-1), 'GET /v1/addon-backups/b3/download');
  });

  test('download refuses a terminal as stdout, and an API error leaves no file behind', async () => {
    const tty = await run(['addons', 'download', 'postgres', 'b2', '-a', 'alpha'], {
      env: { ...env, NO_COLOR: '1' },
      tty: true,
    });
    assert.equal(tty.code, 2);
    assert.equal(tty.stdout, '');
    assert.equal(tty.stderr, 'error: the dump is binary: redirect it (> file) or use -o FILE\n');
    assert.equal(fake.requests.length, 0);

    const appOnly = await run(['addons', 'download', 'b2', '-a', 'alpha'], { env });
    assert.equal(appOnly.code, 2);
    assert.match(appOnly.stderr, /^error: name the add-on too: petri addons download NAME b2 -a alpha/);

    const missing = await run(['addons', 'download', 'postgres', 'b99', '-a', 'alpha', '-o', 'x.dump'], {
      env,
      cwd: temp.dir,
    });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      "error: backup b99 not found for add-on 'postgres'; list them with 'petri addons backups postgres'\n",
    );
    assert.deepEqual(await readdir(temp.dir), []);
  });

  test("shell runs the add-on's client in the app's sandbox and exits with its code", async () => {
    fake.runExitCode = 3;
    const stdin = new PassThrough();
    stdin.end();
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await runCli(['addons', 'shell', 'postgres', '-a', 'alpha'], {
      stdin,
      stdout,
      stderr,
      env,
      cwd: temp.dir,
    });
    assert.equal(stderr.text, '');
    assert.equal(code, 3);
    assert.equal(stdout.text, RUN_OUTPUT);
    // Not a terminal here (stdin is a pipe): the argv from the API, as it came.
    assert.deepEqual(fake.runs, [
      { app: 'alpha', request: { command: ['/bin/sh', '-c', 'exec psql "$DATABASE_URL"'], tty: false } },
    ]);
  });

  test('shell on an add-on that is not ready says so', async () => {
    fake.addons.get('alpha')![1]!.status = 'provisioning';
    const result = await run(['addons', 'shell', 'postgres', '-a', 'alpha'], { env });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      "error: postgres is provisioning, not ready for a shell yet; try again once 'petri addons info postgres -a alpha' says ready\n",
    );
    assert.deepEqual(fake.runs, []);
  });

  test('formatSize and parseBackupId', () => {
    assert.equal(formatSize(512), '512 B');
    assert.equal(formatSize(1536), '1.5 KiB');
    assert.equal(formatSize(12_897_485), '12.3 MiB');
    assert.equal(formatSize(3 * 1024 ** 3), '3.0 GiB');
    assert.equal(parseBackupId('B12'), 'b12');
    assert.equal(parseBackupId('7'), 'b7');
    assert.throws(() => parseBackupId('b0'), UsageError);
  });
});

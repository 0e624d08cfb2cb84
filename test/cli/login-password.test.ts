// `petri login --invite LINK`, `petri login --email EMAIL` and `petri passwd` against the real
// API on a free port: the password read without echo on a terminal or from stdin with
// --password-stdin, never from argv; the login stored like every other.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { runCli } from '../../src/cli/main.js';
import { bootstrapAdmin } from '../../src/domain/auth.js';
import { createInvitation } from '../../src/domain/invitations.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';
import { Capture, tempDir } from './harness.js';

/** A terminal's stdin: raw mode is recorded, keys are written by the test. */
class FakeTty extends PassThrough {
  readonly isTTY = true;
  raw: boolean[] = [];
  setRawMode(raw: boolean) {
    this.raw.push(raw);
    return this;
  }
}

describe('petri login with a password', () => {
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let db: Store;
  let api: FastifyInstance;
  let url: string;

  const cli = async (argv: string[], stdin: NodeJS.ReadableStream & { isTTY?: boolean }, env = {}) => {
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await runCli(argv, {
      stdout,
      stderr,
      stdin,
      env: { PETRI_CONFIG_DIR: path.join(temp.dir, 'config'), ...env },
      cwd: temp.dir,
    });
    return { code, stdout: stdout.text, stderr: stderr.text };
  };
  const invite = async (email: string) => {
    const admin = await db
      .selectFrom('users')
      .selectAll()
      .where('name', '=', 'admin')
      .executeTakeFirstOrThrow();
    return (await createInvitation(db, admin, { email, role: 'member' })).secret;
  };

  before(async () => {
    temp = await tempDir('petri-login-password-');
    db = await openStore(new DataPaths(temp.dir).store);
    await bootstrapAdmin(db);
    api = await buildTestApi(temp.dir, db);
    url = await api.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    await temp?.remove();
  });

  test('--invite LINK on a terminal: the password asked twice without echo, the account made, the login stored', async () => {
    const secret = await invite('tia@example.org');
    const tty = new FakeTty();
    const running = cli(['login', '--invite', `${url}/invite/${secret}`], tty);
    // Typed as a person would, with a correction (backspace).
    setImmediate(() => tty.write('tia-long-passwordX\u007f\r'));
    // The second time, once the prompt asks again (raw mode on for the second time).
    await until(() => tty.raw.length >= 3, { timeout: 5000, message: 'the second password prompt' });
    tty.write('tia-long-password\r');
    const res = await running;
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /New password: \nNew password again: \n/);
    assert.ok(!res.stdout.includes('tia-long') && !res.stderr.includes('tia-long'), 'no echo');
    assert.deepEqual(tty.raw, [true, false, true, false]);
    assert.match(res.stdout, new RegExp(`Logged in to ${url} as tia@example.org \\(member\\)`));
    const stored = JSON.parse(await readFile(path.join(temp.dir, 'config', 'config.json'), 'utf8'));
    assert.equal(stored.profiles.default.user, 'tia@example.org');
  });

  test('--email EMAIL --password-stdin signs in; a wrong password fails with the server’s message', async () => {
    const ok = await cli(
      ['login', '--url', url, '--email', 'tia@example.org', '--password-stdin'],
      Readable.from(['tia-long-password\n']),
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /as tia@example\.org/);
    const wrong = await cli(
      ['login', '--url', url, '--email', 'tia@example.org', '--password-stdin'],
      Readable.from(['nope\n']),
    );
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stderr, 'error: invalid e-mail or password\n');
  });

  test('without a terminal and without --password-stdin, it says how to give the password', async () => {
    const res = await cli(['login', '--url', url, '--email', 'tia@example.org'], Readable.from([]));
    assert.equal(res.code, 2);
    assert.match(res.stderr, /no terminal to ask the password on: give it on stdin with --password-stdin/);
  });

  test('--ldap on a server without LDAP says which sign-ins exist', async () => {
    const res = await cli(
      ['login', '--url', url, '--ldap', 'tia', '--password-stdin'],
      Readable.from(['x\n']),
      {
        PETRI_TOKEN: 'ignored-for-a-password-login',
      },
    );
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no LDAP directory configured/);
  });

  test('petri passwd changes the password (current and new on stdin)', async () => {
    const res = await cli(
      ['passwd', '--password-stdin'],
      Readable.from(['tia-long-password\ntia-newer-password\n']),
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Password changed/);
    const old = await cli(
      ['login', '--url', url, '--email', 'tia@example.org', '--password-stdin'],
      Readable.from(['tia-long-password\n']),
    );
    assert.equal(old.code, 1);
    const renewed = await cli(
      ['login', '--url', url, '--email', 'tia@example.org', '--password-stdin'],
      Readable.from(['tia-newer-password\n']),
    );
    assert.equal(renewed.code, 0, renewed.stderr);
  });
});

// `petri login` and how later commands find Petri: the stored file (0600 in a 0700 dir),
// the environment over it, and the messages when there is no login or no server.
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NOT_LOGGED_IN } from '../../src/cli/settings.js';
import { freePort } from '../../src/lib/ports.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { run, tempDir } from './harness.js';

describe('petri login', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
  });
  after(async () => {
    await fake.close();
    await temp.remove();
  });

  test('verifies the token, stores it 0600 in a 0700 dir, and later commands use it', async () => {
    const configDir = path.join(temp.dir, 'stored', 'petri');
    const env = { PETRI_CONFIG_DIR: configDir };
    const result = await run(['login', '--url', `${fake.url}/`, '--token', TOKEN], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    const file = path.join(configDir, 'config.json');
    assert.equal(result.stdout, `Logged in to ${fake.url} as admin (admin); saved in ${file}\n`);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(configDir)).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { url: fake.url, token: TOKEN });

    const apps = await run(['apps'], { env });
    assert.equal(apps.code, 0);
    assert.match(apps.stdout, /^alpha /m);
    assert.equal(fake.requests.at(-1)!.authorization, `Bearer ${TOKEN}`);
  });

  test('a wrong token is refused and not stored', async () => {
    const configDir = path.join(temp.dir, 'refused');
    const result = await run(['login', '--url', fake.url, '--token', 'wrong'], {
      env: { PETRI_CONFIG_DIR: configDir },
    });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "error: invalid token: log in again with 'petri login'\n");
    await assert.rejects(stat(path.join(configDir, 'config.json')), { code: 'ENOENT' });
  });

  test('PETRI_URL and PETRI_TOKEN override what is stored', async () => {
    const configDir = path.join(temp.dir, 'override');
    await run(['login', '--url', fake.url, '--token', TOKEN], { env: { PETRI_CONFIG_DIR: configDir } });
    await writeFile(
      path.join(configDir, 'config.json'),
      JSON.stringify({ url: 'http://127.0.0.1:1', token: 'stale' }),
    );
    const result = await run(['whoami'], {
      env: { PETRI_CONFIG_DIR: configDir, PETRI_URL: fake.url, PETRI_TOKEN: TOKEN },
    });
    assert.equal(result.stderr, '');
    assert.equal(result.stdout, `admin (admin) at ${fake.url}\n`);
  });

  test('XDG_CONFIG_HOME is used when PETRI_CONFIG_DIR is not set', async () => {
    const xdg = path.join(temp.dir, 'xdg');
    const result = await run(['login', '--url', fake.url, '--token', TOKEN], {
      env: { XDG_CONFIG_HOME: xdg },
    });
    assert.equal(result.code, 0);
    assert.equal((await stat(path.join(xdg, 'petri', 'config.json'))).mode & 0o777, 0o600);
  });

  test('without a login, says how to log in', async () => {
    const result = await run(['apps'], { env: { PETRI_CONFIG_DIR: path.join(temp.dir, 'none') } });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `error: ${NOT_LOGGED_IN}\n`);
    assert.equal(
      NOT_LOGGED_IN,
      "not logged in: run 'petri login --url URL --token TOKEN' (the token is in DATA_DIR/admin.token on the server)",
    );
  });

  test('login without a URL is a usage error', async () => {
    const result = await run(['login', '--token', TOKEN], {
      env: { PETRI_CONFIG_DIR: path.join(temp.dir, 'x') },
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^error: login needs --url URL and --token TOKEN/);
  });

  test('a server that is not running: connection refused, with the likely cause', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const result = await run(['apps'], {
      env: { PETRI_URL: url, PETRI_TOKEN: TOKEN, PETRI_CONFIG_DIR: temp.dir },
    });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `error: cannot reach Petri at ${url}: connection refused; is 'petri server' running?\n`,
    );
  });
});

describe('petri (no topic)', () => {
  test('--help lists the commands and exits 0', async () => {
    const result = await run(['--help']);
    assert.equal(result.code, 0);
    for (const command of ['login', 'apps', 'deploy', 'logs', 'open'])
      assert.match(result.stdout, new RegExp(`\\n  ${command}`));
    assert.deepEqual(await run([]), result);
  });

  test('an unknown command or option is a usage error (exit 2)', async () => {
    const unknown = await run(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: unknown command 'frobnicate'/);
    const option = await run(['apps', '--frob']);
    assert.equal(option.code, 2);
    assert.match(option.stderr, /^error: unknown option '--frob'/);
  });

  test('subcommand help', async () => {
    const result = await run(['apps', 'limits', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--memory <size>/);
  });
});

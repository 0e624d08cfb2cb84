// `petri login` and how later commands find Petri: the stored file (0600 in a 0700 dir),
// the environment over it, and the messages when there is no login or no server.
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
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
    const stored = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(stored.current, 'default');
    assert.deepEqual(Object.keys(stored.profiles), ['default']);
    assert.equal(stored.profiles.default.url, fake.url);
    assert.equal(stored.profiles.default.token, TOKEN);
    assert.equal(stored.profiles.default.user, 'admin');

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
    assert.match(result.stdout, /^User: +admin \(admin\)\n/);
    assert.match(result.stdout, new RegExp(`^Server: +${fake.url} \\(from PETRI_TOKEN\\)$`, 'm'));
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
      "not logged in: run 'petri login --url URL' to sign in, or 'petri login --url URL --token TOKEN' with a token (the first admin's is in DATA_DIR/admin.token on the server)",
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

describe('petri login: profiles', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let deadUrl: string;
  before(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
    deadUrl = `http://127.0.0.1:${await freePort()}`;
  });
  after(async () => {
    await fake.close();
    await temp.remove();
  });
  const stored = async (dir: string) => JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'));
  const modes = async (dir: string) => [
    (await stat(dir)).mode & 0o777,
    (await stat(path.join(dir, 'config.json'))).mode & 0o777,
  ];

  test("an earlier Petri's login file keeps working, and a second login lives beside it", async () => {
    const dir = path.join(temp.dir, 'legacy');
    await mkdir(dir, { mode: 0o700 });
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ url: fake.url, token: TOKEN }), {
      mode: 0o600,
    });
    const env = { PETRI_CONFIG_DIR: dir };
    const apps = await run(['apps'], { env });
    assert.equal(apps.stderr, '');
    assert.match(apps.stdout, /^alpha /m);

    const work = await run(['login', '--profile', 'work', '--url', fake.url, '--token', TOKEN], { env });
    assert.equal(work.stderr, '');
    assert.equal(
      work.stdout,
      `Logged in to ${fake.url} as admin (admin); saved as profile 'work' in ${path.join(dir, 'config.json')}\n`,
    );
    const file = await stored(dir);
    assert.equal(file.current, 'work');
    assert.deepEqual(Object.keys(file.profiles).sort(), ['default', 'work']);
    assert.deepEqual(file.profiles.default, { url: fake.url, token: TOKEN }, 'the earlier login is kept');
    assert.deepEqual(await modes(dir), [0o700, 0o600]);

    const list = await run(['profiles'], { env });
    assert.equal(
      list.stdout,
      `   PROFILE  URL${' '.repeat(fake.url.length - 3)}  USER\n   default  ${fake.url}  -\n*  work     ${fake.url}  admin\n`,
    );
    assert.deepEqual(await run(['login', '--list'], { env }), list);
  });

  test('the current profile is used; PETRI_PROFILE picks another for one command; profiles use switches', async () => {
    const dir = path.join(temp.dir, 'switch');
    const env = { PETRI_CONFIG_DIR: dir };
    assert.equal((await run(['login', '--url', fake.url, '--token', TOKEN], { env })).code, 0);
    // A second profile whose server is down, made current by hand (a login would check it).
    const file = await stored(dir);
    file.profiles.lab = { url: deadUrl, token: 'lab-token' };
    file.current = 'lab';
    await writeFile(path.join(dir, 'config.json'), JSON.stringify(file));

    const down = await run(['apps'], { env });
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`cannot reach Petri at ${deadUrl}`));
    const picked = await run(['apps'], { env: { ...env, PETRI_PROFILE: 'default' } });
    assert.equal(picked.code, 0, picked.stderr);

    const missing = await run(['apps'], { env: { ...env, PETRI_PROFILE: 'nope' } });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      "error: no login stored as profile 'nope': run 'petri login --profile nope'; stored: default, lab (PETRI_PROFILE=nope)\n",
    );

    const use = await run(['profiles', 'use', 'default'], { env });
    assert.equal(use.stdout, `Now using profile 'default': admin at ${fake.url}\n`);
    assert.equal((await run(['apps'], { env })).code, 0);
    const unknown = await run(['profiles', 'use', 'nope'], { env });
    assert.equal(unknown.code, 1);
  });

  test('logging in again goes to the current profile; logout forgets one profile, then the file', async () => {
    const dir = path.join(temp.dir, 'logout');
    const env = { PETRI_CONFIG_DIR: dir };
    await run(['login', '--url', fake.url, '--token', TOKEN], { env });
    await run(['login', '--profile', 'work', '--url', fake.url, '--token', TOKEN], { env });
    // No --url: the profile's own server.
    const again = await run(['login', '--token', TOKEN], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /saved as profile 'work'/);

    const out = await run(['logout'], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(
      out.stdout,
      `Logged out of ${fake.url} (profile 'work'); removed it from ${path.join(dir, 'config.json')}\nNow using profile 'default': ${fake.url}\n`,
    );
    const file = await stored(dir);
    assert.deepEqual(Object.keys(file.profiles), ['default']);
    assert.equal(file.current, 'default');
    assert.deepEqual(await modes(dir), [0o700, 0o600]);
    assert.equal(
      (await run(['logout', '--profile', 'work'], { env })).stdout,
      "Not logged in as profile 'work'; nothing to forget\n",
    );
    await run(['logout'], { env });
    await assert.rejects(stat(path.join(dir, 'config.json')), { code: 'ENOENT' });
    const none = await run(['apps'], { env });
    assert.equal(none.stderr, `error: ${NOT_LOGGED_IN}\n`);
  });

  test('bad profile names and a login with nothing to sign in to are refused', async () => {
    const env = { PETRI_CONFIG_DIR: path.join(temp.dir, 'bad') };
    for (const name of ['../x', 'a b', '', '-x', 'x'.repeat(65)]) {
      const res = await run(['login', '--profile', name, '--url', fake.url, '--token', TOKEN], { env });
      assert.notEqual(res.code, 0, name);
    }
    await assert.rejects(stat(path.join(temp.dir, 'bad', 'config.json')), { code: 'ENOENT' });
    const noUrl = await run(['login'], { env });
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /^error: login needs --url URL, the Petri API to sign in to/);
  });

  test('a config dir others could read is closed to 0700; a link at the temp name is not written through', async () => {
    const dir = path.join(temp.dir, 'loose');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const outside = path.join(temp.dir, 'outside.txt');
    await writeFile(outside, 'untouched\n');
    await symlink(outside, path.join(dir, `config.json.${process.pid}.tmp`));
    const res = await run(['login', '--url', fake.url, '--token', TOKEN], { env: { PETRI_CONFIG_DIR: dir } });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(await modes(dir), [0o700, 0o600]);
    assert.equal(await readFile(outside, 'utf8'), 'untouched\n');
    assert.equal((await stored(dir)).profiles.default.token, TOKEN);
  });

  test('a corrupt login file is named, with what to do', async () => {
    const dir = path.join(temp.dir, 'corrupt');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'config.json'), '{"profiles": ');
    const res = await run(['apps'], { env: { PETRI_CONFIG_DIR: dir } });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /config\.json is not valid JSON; run 'petri login' again to rewrite it/);
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

// `petri config`: the table people read, shell lines a shell can really read back, and
// set/unset that wait for the new release, fail with its error, and refuse bad arguments
// before sending anything.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseAssignments, shellQuote } from '../../src/cli/config.js';
import { UsageError } from '../../src/cli/output.js';
import type { Release } from '../../src/client/index.js';
import { type FakeApi, POLLS_TO_SETTLE, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri config', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
    env = envFor(fake.url, TOKEN, temp.dir);
  });
  afterEach(() => {
    fake.releaseError = undefined;
  });
  after(async () => {
    await fake.close();
    await temp.remove();
  });

  const polls = (version: string) =>
    fake.requests.filter((r) => r.method === 'GET' && r.url === `/v1/apps/alpha/releases/${version}`).length;

  test('shows the config vars sorted, as aligned KEY: value lines', async () => {
    const result = await run(['config', '--app', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('config.txt', result.stdout);
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/config');
  });

  test('the app comes from petri.toml; an app without config vars says how to set one', async () => {
    await writeFile(path.join(temp.dir, 'petri.toml'), 'name = "beta-experiment"\n');
    const result = await run(['config'], { env, cwd: temp.dir });
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout,
      "beta-experiment has no config vars; set one with 'petri config set KEY=VALUE -a beta-experiment'\n",
    );
  });

  test('--json prints the object', async () => {
    const result = await run(['config', '-a', 'alpha', '--json'], { env });
    assert.equal(result.code, 0);
    assert.deepEqual(JSON.parse(result.stdout), fake.config.get('alpha'));
  });

  test('--shell prints lines a shell reads back to the same values', async () => {
    const result = await run(['config', '-a', 'alpha', '--shell'], { env });
    assert.equal(result.code, 0);
    await assertGolden('config-shell.txt', result.stdout);
    // The value holds a quote, $HOME and backticks: sh must see them as plain text.
    const { stdout } = await promisify(execFile)('sh', ['-c', `${result.stdout}\nprintf '%s' "$GREETING"`]);
    assert.equal(stdout, fake.config.get('alpha')!.GREETING);
  });

  test('shellQuote keeps everything literal', () => {
    assert.equal(shellQuote(''), "''");
    assert.equal(shellQuote("a'b"), "'a'\\''b'");
    assert.equal(shellQuote('line1\nline2'), "'line1\nline2'");
  });

  test('get prints one value; an unset key is an error', async () => {
    const got = await run(['config', 'get', 'NODE_ENV', '-a', 'alpha'], { env });
    assert.equal(got.code, 0);
    assert.equal(got.stdout, 'production\n');
    const json = await run(['config', 'get', 'NODE_ENV', '-a', 'alpha', '--json'], { env });
    assert.equal(JSON.parse(json.stdout), 'production');
    const missing = await run(['config', 'get', 'NOPE', '-a', 'alpha'], { env });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      "error: alpha has no config var NOPE; list them with 'petri config -a alpha'\n",
    );
  });

  test('set sends the change, waits for the new release and prints done with its version', async () => {
    const result = await run(['config', 'set', 'FOO=1', 'BAR=x=y', 'EMPTY=', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Setting FOO, BAR, EMPTY and restarting alpha...\ndone, v5\n');
    const patch = fake.requests.find((r) => r.method === 'PATCH' && r.url === '/v1/apps/alpha/config');
    assert.deepEqual(JSON.parse(patch!.body.toString()), { set: { FOO: '1', BAR: 'x=y', EMPTY: '' } });
    // It waited: the release was asked for until it settled, not taken as done when created.
    assert.equal(polls('v5'), POLLS_TO_SETTLE);
    assert.equal(fake.releases.get('alpha')![0]!.status, 'succeeded');
    assert.equal(fake.config.get('alpha')!.BAR, 'x=y');
  });

  test('unset says Unsetting and waits the same way', async () => {
    const result = await run(['config', 'unset', 'FOO', 'EMPTY', '-a', 'alpha'], { env });
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Unsetting FOO, EMPTY and restarting alpha...\ndone, v6\n');
    const patch = fake.requests.filter((r) => r.method === 'PATCH').at(-1)!;
    assert.deepEqual(JSON.parse(patch.body.toString()), { unset: ['FOO', 'EMPTY'] });
    assert.equal(fake.config.get('alpha')!.FOO, undefined);
  });

  test('a failed release exits 1 with its error; its output is shown above, indented', async () => {
    fake.releaseError =
      'release phase failed: npm run migrate exited with code 1; v6 keeps serving\n> migrate\nError: relation "users" does not exist';
    const result = await run(['config', 'set', 'BROKEN=1', '-a', 'alpha'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, 'Setting BROKEN and restarting alpha...\n');
    assert.equal(
      result.stderr,
      '  | > migrate\n  | Error: relation "users" does not exist\n' +
        'error: release phase failed: npm run migrate exited with code 1; v6 keeps serving\n',
    );
  });

  test('--json prints the release as it ended, failed or not', async () => {
    fake.releaseError = 'release failed: web.1 exited with code 1';
    const failed = await run(['config', 'set', 'A=1', '-a', 'alpha', '--json'], { env });
    assert.equal(failed.code, 1);
    assert.equal((JSON.parse(failed.stdout) as Release).status, 'failed');
    assert.equal(failed.stderr, 'error: release failed: web.1 exited with code 1\n');
    fake.releaseError = undefined;
    const done = await run(['config', 'set', 'A=1', '-a', 'alpha', '--json'], { env });
    assert.equal(done.code, 0);
    const release = JSON.parse(done.stdout) as Release;
    assert.equal(release.status, 'succeeded');
    assert.equal(release.description, 'Set A');
  });

  test('on a TTY the line is finished in place', async () => {
    const result = await run(['config', 'set', 'B=2', '-a', 'alpha'], {
      env: { ...env, NO_COLOR: '1' },
      tty: true,
    });
    assert.equal(result.code, 0);
    assert.match(
      result.stdout,
      /^Setting B and restarting alpha\.\.\.(.*)\r\u001b\[KSetting B and restarting alpha\.\.\. done, v\d+\n$/,
    );
  });

  test('KEY=VALUE is checked before anything is sent: a usage error, exit 2', async () => {
    const before = fake.requests.length;
    const noEquals = await run(['config', 'set', 'FOO', '-a', 'alpha'], { env });
    assert.equal(noEquals.code, 2);
    assert.equal(noEquals.stdout, '');
    assert.equal(noEquals.stderr, "error: expected KEY=VALUE, got 'FOO'\n");
    const noKey = await run(['config', 'set', 'OK=1', '=value', '-a', 'alpha'], { env });
    assert.equal(noKey.code, 2);
    assert.equal(noKey.stderr, "error: expected KEY=VALUE, got '=value'\n");
    const twice = await run(['config', 'set', 'A=1', 'A=2', '-a', 'alpha'], { env });
    assert.equal(twice.code, 2);
    const unsetValue = await run(['config', 'unset', 'A=1', '-a', 'alpha'], { env });
    assert.equal(unsetValue.code, 2);
    assert.equal(unsetValue.stderr, "error: expected a KEY (no =VALUE), got 'A=1'\n");
    const none = await run(['config', 'set', '-a', 'alpha'], { env });
    assert.equal(none.code, 2);
    assert.equal(fake.requests.length, before, 'no request may reach the server');
  });

  test("the server's refusals are shown as is: a reserved name, a release in progress", async () => {
    const reserved = await run(['config', 'set', 'PETRI_X=1', '-a', 'alpha'], { env });
    assert.equal(reserved.code, 1);
    assert.equal(
      reserved.stderr,
      "error: PETRI_ names are Petri's own; choose another name than 'PETRI_X'\n",
    );

    const releases = fake.releases.get('alpha')!;
    releases.unshift({ ...releases[0]!, version: 'v99', status: 'pending', current: false });
    try {
      const busy = await run(['config', 'set', 'C=3', '-a', 'alpha'], { env });
      assert.equal(busy.code, 1);
      assert.equal(busy.stderr, 'error: release v99 of alpha is still in progress; wait for it\n');
    } finally {
      releases.shift();
    }
  });

  test('parseAssignments splits at the first =', () => {
    assert.deepEqual(parseAssignments(['A=b=c', 'D=']), { A: 'b=c', D: '' });
    assert.throws(() => parseAssignments(['A']), UsageError);
  });
});

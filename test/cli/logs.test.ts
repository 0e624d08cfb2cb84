// `petri logs` and `petri open`: lines for people, JSON lines for scripts, the URL printed
// and handed to the browser as one argument.
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { browserCommand } from '../../src/cli/open.js';
import { until } from '../../src/lib/until.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri logs', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
    env = envFor(fake.url, TOKEN, temp.dir);
  });
  after(async () => {
    await fake.close();
    await temp.remove();
  });

  test('prints TIME SOURCE: TEXT', async () => {
    const result = await run(['logs', '--app', 'alpha'], { env });
    assert.equal(result.code, 0);
    await assertGolden('logs.txt', result.stdout);
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/logs');
  });

  test('-n and -f reach the server; --json prints one object per line', async () => {
    const result = await run(['logs', '-a', 'alpha', '-n', '1', '-f', '--json'], { env });
    assert.equal(result.code, 0);
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/logs?lines=1&follow=true');
    const lines = result.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { text: string });
    assert.deepEqual(
      lines.map((l) => l.text),
      ['GET / 200 3ms', 'later line'],
    );
  });

  test('-n must be a number', async () => {
    const result = await run(['logs', '-a', 'alpha', '-n', 'many'], { env });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, "error: -n must be a whole number of lines like 100, got 'many'\n");
  });

  test('reads the app from petri.toml in the current directory', async () => {
    await writeFile(path.join(temp.dir, 'petri.toml'), "name = 'alpha' # the app\n");
    const result = await run(['logs'], { env, cwd: temp.dir });
    assert.equal(result.code, 0);
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/logs');
  });
});

describe('petri open', () => {
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

  test('prints the URL only, without a display or $BROWSER', async () => {
    const result = await run(['open', '-a', 'alpha'], { env: envFor(fake.url, TOKEN, temp.dir) });
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'http://alpha.petri.localhost:8080\n');
  });

  test('hands the URL to $BROWSER as one argument', async () => {
    const seen = path.join(temp.dir, 'seen');
    const browser = path.join(temp.dir, 'browser.sh');
    await writeFile(browser, `#!/bin/sh\nprintf '%s|' "$@" > '${seen}'\n`);
    await chmod(browser, 0o755);
    const env = { ...envFor(fake.url, TOKEN, temp.dir), BROWSER: browser };
    const result = await run(['open', '-a', 'alpha'], { env });
    assert.equal(result.code, 0);
    assert.equal(result.stderr, '');
    const args = await until(() => readFile(seen, 'utf8').catch(() => undefined), { timeout: 5000 });
    assert.equal(args, 'http://alpha.petri.localhost:8080|');
  });

  test('a browser that cannot start is a warning, not a failure', async () => {
    const env = { ...envFor(fake.url, TOKEN, temp.dir), BROWSER: path.join(temp.dir, 'no-such-browser') };
    const result = await run(['open', '-a', 'alpha'], { env });
    assert.equal(result.code, 0);
    assert.match(
      result.stderr,
      /^warning: could not start .*no-such-browser \(not found\); open the URL yourself\n$/,
    );
  });

  test('browserCommand: %s placement, first of a list, xdg-open on a display', () => {
    assert.deepEqual(browserCommand({ BROWSER: 'firefox --new-tab %s:lynx' }, 'http://x'), [
      'firefox',
      '--new-tab',
      'http://x',
    ]);
    if (process.platform !== 'darwin') {
      assert.deepEqual(browserCommand({ DISPLAY: ':0' }, 'http://x'), ['xdg-open', 'http://x']);
      assert.equal(browserCommand({}, 'http://x'), undefined);
    }
  });
});

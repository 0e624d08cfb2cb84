// `petri apps` and its subcommands against the fake API: what a user reads, what a script
// parses, that a destroy without its confirmation never reaches the server, and sleep and
// wake (a wake waits for the app to run, and says why when it does not).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatIdle, parseDurationSeconds, parseMemory, waitForWake } from '../../src/cli/apps.js';
import { UsageError } from '../../src/cli/output.js';
import { type App, PetriClient } from '../../src/client/index.js';
import { UserError } from '../../src/lib/errors.js';
import {
  addApp,
  cannedApps,
  cannedProcesses,
  cannedSleepingApp,
  type FakeApi,
  startFakeApi,
  TOKEN,
} from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri apps', () => {
  let fake: FakeApi;
  let config: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeApi();
    config = await tempDir();
    env = envFor(fake.url, TOKEN, config.dir);
  });
  after(async () => {
    await fake.close();
    await config.remove();
  });

  test('lists apps as an aligned table', async () => {
    const result = await run(['apps'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('apps.txt', result.stdout);
    assert.equal(fake.requests.at(-1)?.authorization, `Bearer ${TOKEN}`);
  });

  test('`apps list` is the same as `apps`', async () => {
    const a = await run(['apps'], { env });
    const b = await run(['apps', 'list'], { env });
    assert.equal(a.stdout, b.stdout);
  });

  test('--json prints the list for scripts', async () => {
    const result = await run(['apps', '--json'], { env });
    assert.equal(result.code, 0);
    const apps = JSON.parse(result.stdout) as App[];
    assert.deepEqual(
      apps.map((a) => a.name),
      ['alpha', 'beta-experiment'],
    );
  });

  test('colour only on a TTY, and never with NO_COLOR', async () => {
    const tty = await run(['apps'], { env, tty: true });
    assert.match(tty.stdout, /\u001b\[32mrunning/);
    const noColor = await run(['apps'], { env: { ...env, NO_COLOR: '1' }, tty: true });
    assert.doesNotMatch(noColor.stdout, /\u001b/);
    assert.equal(noColor.stdout, (await run(['apps'], { env })).stdout);
  });

  test('info shows key: value lines and the processes', async () => {
    const result = await run(['apps', 'info', 'alpha'], { env });
    assert.equal(result.code, 0);
    await assertGolden('apps-info.txt', result.stdout);
    const json = await run(['apps', 'info', 'alpha', '--json'], { env });
    assert.equal((JSON.parse(json.stdout) as App).release, 'v3');
  });

  test("the server's error message is shown as is, on one line of stderr", async () => {
    const result = await run(['apps', 'info', 'nope'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, "error: app 'nope' not found; list your apps with 'petri apps'\n");
  });

  test('create, then a conflict', async () => {
    const created = await run(['apps', 'create', 'gamma'], { env });
    assert.equal(created.code, 0);
    assert.equal(
      created.stdout,
      "Created gamma in team admin: http://gamma.petri.localhost:8080\nIt is an experiment until 2025-04-03 (data: none); 'petri apps renew gamma' extends it\nDeploy it with 'petri deploy --app gamma' from its directory\n",
    );
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), { name: 'gamma' });
    const again = await run(['apps', 'create', 'gamma'], { env });
    assert.equal(again.code, 1);
    assert.equal(again.stderr, "error: app 'gamma' already exists\n");
  });

  test('destroy without --confirm refuses with the exact command, and sends nothing', async () => {
    const before = fake.requests.length;
    const result = await run(['apps', 'destroy', 'alpha'], { env });
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      "error: destroying 'alpha' deletes it for good; to confirm, run: petri apps destroy alpha --confirm alpha\n",
    );
    const mismatch = await run(['apps', 'destroy', 'alpha', '--confirm', 'beta'], { env });
    assert.equal(mismatch.code, 2);
    assert.match(
      mismatch.stderr,
      /\(--confirm was 'beta'\); to confirm, run: petri apps destroy alpha --confirm alpha\n$/,
    );
    assert.equal(fake.requests.length, before, 'no request may reach the server');
    assert.ok(fake.apps.has('alpha'));
  });

  test('destroy with --confirm deletes', async () => {
    await run(['apps', 'create', 'doomed'], { env });
    const result = await run(['apps', 'destroy', 'doomed', '--confirm', 'doomed'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Destroyed doomed\n');
    const last = fake.requests.at(-1)!;
    assert.equal(last.method, 'DELETE');
    assert.equal(last.url, '/v1/apps/doomed?confirm=doomed');
    assert.ok(!fake.apps.has('doomed'));
  });

  test('limits shows the limits, and changes only what was given', async () => {
    const shown = await run(['apps', 'limits', 'beta-experiment'], { env });
    assert.equal(shown.stdout, 'memory: 512 MiB\ncpus:   1\npids:   256\ndisk:   1024 MiB\n');
    assert.equal(fake.requests.at(-1)!.method, 'GET');

    const changed = await run(
      ['apps', 'limits', 'beta-experiment', '--memory', '1G', '--pids', '64', '--json'],
      {
        env,
      },
    );
    assert.equal(changed.code, 0);
    assert.deepEqual(JSON.parse(changed.stdout), { memoryMiB: 1024, cpus: 1, pids: 64, diskMiB: 1024 });
    const patch = fake.requests.at(-1)!;
    assert.equal(patch.method, 'PATCH');
    assert.deepEqual(JSON.parse(patch.body.toString()), { limits: { memoryMiB: 1024, pids: 64 } });
  });

  test('a bad limit is a usage error that sends nothing', async () => {
    const before = fake.requests.length;
    const result = await run(['apps', 'limits', 'alpha', '--memory', 'lots'], { env });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, "error: --memory must be a size like 256, 256M or 1G, got 'lots'\n");
    assert.equal(fake.requests.length, before);
  });

  test('set changes settings and prints them; no pairs shows them', async () => {
    const shown = await run(['apps', 'set', 'alpha'], { env });
    assert.equal(shown.code, 0);
    assert.equal(shown.stdout, 'boot_timeout: 1m\nidle:         30m\n');
    assert.equal(fake.requests.at(-1)!.method, 'GET');

    const changed = await run(['apps', 'set', 'alpha', 'boot_timeout=90'], { env });
    assert.equal(changed.stderr, '');
    assert.equal(changed.code, 0);
    assert.equal(changed.stdout, 'boot_timeout: 1m30s\nidle:         30m\n');
    const patch = fake.requests.at(-1)!;
    assert.equal(patch.method, 'PATCH');
    assert.deepEqual(JSON.parse(patch.body.toString()), { settings: { bootTimeoutSeconds: 90 } });

    const json = await run(['apps', 'set', 'alpha', 'boot_timeout=2m', '--json'], { env });
    assert.deepEqual(JSON.parse(json.stdout), { bootTimeoutSeconds: 120, idleTimeoutSeconds: 1800 });
  });

  test('set idle takes a duration, or never (off, 0) for no sleep at all', async () => {
    const cases: [string, number | null, string][] = [
      ['15m', 900, '15m'],
      ['90s', 90, '90s'],
      ['1h', 3600, '1h'],
      ['never', null, 'never'],
      ['OFF', null, 'never'],
      ['0', null, 'never'],
      ['1h30m', 5400, '1h30m'],
    ];
    for (const [value, sent, shown] of cases) {
      const result = await run(['apps', 'set', 'beta-experiment', `idle=${value}`], { env });
      assert.equal(result.stderr, '', value);
      assert.equal(result.code, 0, value);
      assert.equal(result.stdout, `boot_timeout: 1m\nidle:         ${shown}\n`, value);
      const patch = fake.requests.at(-1)!;
      assert.equal(patch.method, 'PATCH');
      assert.deepEqual(JSON.parse(patch.body.toString()), { settings: { idleTimeoutSeconds: sent } }, value);
    }
    const both = await run(['apps', 'set', 'beta-experiment', 'idle=15m', 'boot_timeout=2m', '--json'], {
      env,
    });
    assert.deepEqual(JSON.parse(both.stdout), { bootTimeoutSeconds: 120, idleTimeoutSeconds: 900 });
    assert.deepEqual(JSON.parse(fake.requests.at(-1)!.body.toString()), {
      settings: { idleTimeoutSeconds: 900, bootTimeoutSeconds: 120 },
    });
  });

  test('set refuses unknown keys and bad durations, naming what is allowed, and sends nothing', async () => {
    const before = fake.requests.length;
    const unknown = await run(['apps', 'set', 'alpha', 'sleep_after=30m'], { env });
    assert.equal(unknown.code, 2);
    assert.equal(
      unknown.stderr,
      "error: unknown setting 'sleep_after'; the settings are: boot_timeout, idle, description, data, privacy, retention, expires, stage, redirect\n",
    );
    const bad = await run(['apps', 'set', 'alpha', 'boot_timeout=soon'], { env });
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      "error: boot_timeout must be a duration above 0 like 90, 90s or 2m, got 'soon'\n",
    );
    for (const value of ['soon', '', '-5m', 'never-ever']) {
      const badIdle = await run(['apps', 'set', 'alpha', `idle=${value}`], { env });
      assert.equal(badIdle.code, 2, value);
      assert.equal(
        badIdle.stderr,
        `error: idle must be a duration like 15m, 1h or 90s, or never, got '${value}'\n`,
        value,
      );
    }
    const noValue = await run(['apps', 'set', 'alpha', 'boot_timeout'], { env });
    assert.equal(noValue.code, 2);
    assert.equal(noValue.stderr, "error: expected KEY=VALUE, got 'boot_timeout'\n");
    assert.equal(fake.requests.length, before);
  });

  test('durations are read as seconds', () => {
    assert.equal(parseDurationSeconds('t', '90'), 90);
    assert.equal(parseDurationSeconds('t', '90s'), 90);
    assert.equal(parseDurationSeconds('t', '2m'), 120);
    assert.equal(parseDurationSeconds('t', '1m30s'), 90);
    assert.equal(parseDurationSeconds('t', '1h'), 3600);
    for (const bad of ['', '0', 's', '1.5m', '-3', '2d']) {
      assert.throws(() => parseDurationSeconds('t', bad), UsageError, bad);
    }
  });

  test('idle timeouts are shown as they would be typed, in the largest units that fit', () => {
    assert.equal(formatIdle(45), '45s');
    assert.equal(formatIdle(90), '90s');
    assert.equal(formatIdle(120), '2m');
    assert.equal(formatIdle(900), '15m');
    assert.equal(formatIdle(1800), '30m');
    assert.equal(formatIdle(3600), '1h');
    assert.equal(formatIdle(5400), '1h30m');
    assert.equal(formatIdle(605), '10m5s');
    assert.equal(formatIdle(86400), '24h');
    for (const seconds of [45, 90, 605, 5400, 3661]) {
      assert.equal(parseDurationSeconds('idle', formatIdle(seconds)), seconds, 'reads back');
    }
  });

  test('memory sizes are read as MiB', () => {
    assert.equal(parseMemory('256'), 256);
    assert.equal(parseMemory('256M'), 256);
    assert.equal(parseMemory('256MiB'), 256);
    assert.equal(parseMemory('1G'), 1024);
    assert.equal(parseMemory('1.5g'), 1536);
    assert.throws(() => parseMemory('0'), UsageError);
    assert.throws(() => parseMemory('12T'), UsageError);
    assert.throws(() => parseMemory('-1'), UsageError);
  });
});

describe('petri apps sleep and wake', () => {
  let fake: FakeApi;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  const blogAsleep = () => {
    const { app, processes } = cannedSleepingApp();
    addApp(fake, app, processes);
    fake.waking.delete(app.name);
    fake.wakingAs = 'sleeping';
    fake.wakeTo = 'running';
  };
  before(async () => {
    fake = await startFakeApi();
    temp = await tempDir();
    env = envFor(fake.url, TOKEN, temp.dir);
  });
  after(async () => {
    await fake.close();
    await temp.remove();
  });

  test('the list shows a sleeping app as sleeping', async () => {
    blogAsleep();
    const result = await run(['apps'], { env });
    assert.equal(result.code, 0);
    await assertGolden('apps-sleeping.txt', result.stdout);
  });

  test('info says since when it sleeps, its idle timeout, and how it wakes', async () => {
    blogAsleep();
    const result = await run(['apps', 'info', 'blog'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('apps-info-sleeping.txt', result.stdout);
  });

  test('sleep stops the processes and says how the app wakes', async () => {
    const result = await run(['apps', 'sleep', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'alpha is asleep: its processes are stopped; the first request wakes it\n');
    const post = fake.requests.at(-1)!;
    assert.equal(post.method, 'POST');
    assert.equal(post.url, '/v1/apps/alpha/sleep');
    assert.equal(post.body.length, 0);
    const shown = await run(['apps', 'info', 'alpha'], { env });
    assert.match(shown.stdout, /^status: +sleeping$/m);
    assert.match(shown.stdout, /^sleeping since: 2025-01-05T06:07:08Z$/m);
  });

  test('sleep --json prints the app; the app comes from -a or petri.toml too', async () => {
    const json = await run(['apps', 'sleep', '-a', 'beta-experiment', '--json'], { env });
    assert.equal(json.code, 0);
    const app = JSON.parse(json.stdout) as App;
    assert.equal(app.status, 'sleeping');
    assert.equal(app.sleepingSince, '2025-01-05T06:07:08.000Z');
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/beta-experiment/sleep');

    const dir = await tempDir();
    try {
      await writeFile(path.join(dir.dir, 'petri.toml'), 'name = "blog"\n');
      blogAsleep();
      const fromToml = await run(['apps', 'sleep'], { env, cwd: dir.dir });
      assert.equal(fromToml.code, 0);
      assert.equal(fake.requests.at(-1)!.url, '/v1/apps/blog/sleep');
    } finally {
      await dir.remove();
    }
  });

  test('two different apps, or none, is a usage error that sends nothing', async () => {
    const before = fake.requests.length;
    const two = await run(['apps', 'wake', 'blog', '-a', 'alpha'], { env });
    assert.equal(two.code, 2);
    assert.equal(two.stderr, "error: two apps given, 'blog' and --app 'alpha'; give one\n");
    const none = await run(['apps', 'sleep'], { env, cwd: temp.dir });
    assert.equal(none.code, 2);
    assert.equal(none.stderr, 'error: no app given: pass --app NAME or put name = "NAME" in petri.toml\n');
    assert.equal(fake.requests.length, before);
  });

  test('wake waits until the app runs, polling while it still sleeps', async () => {
    blogAsleep();
    const from = fake.requests.length;
    const result = await run(['apps', 'wake', 'blog'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Waking blog...\nblog is awake (web.1 up)\n');
    const asked = fake.requests.slice(from).map((r) => `${r.method} ${r.url}`);
    // Asleep in the answer to the wake and at the first poll; running at the second.
    assert.deepEqual(asked, ['POST /v1/apps/blog/wake', 'GET /v1/apps/blog', 'GET /v1/apps/blog']);
    assert.equal(fake.apps.get('blog')!.status, 'running');
    const ps = await run(['ps', '-a', 'blog'], { env });
    assert.doesNotMatch(ps.stdout, /sleeping since/);
    assert.match(ps.stdout, /^web\.1 +up /m);
  });

  test('wake also waits through down: awake, with no process listening yet', async () => {
    blogAsleep();
    fake.wakingAs = 'down';
    fake.wakePolls = 2;
    try {
      const from = fake.requests.length;
      const result = await run(['apps', 'wake', 'blog'], { env });
      assert.equal(result.stderr, '');
      assert.equal(result.code, 0);
      assert.equal(result.stdout, 'Waking blog...\nblog is awake (web.1 up)\n');
      assert.equal(fake.requests.length - from, 4, 'the wake, two polls finding it down, one running');
    } finally {
      fake.wakePolls = 1;
    }
  });

  test('wake --json prints the app as it ended; on a TTY the waiting line is wiped', async () => {
    blogAsleep();
    const json = await run(['apps', 'wake', 'blog', '--json'], { env });
    assert.equal(json.code, 0);
    const app = JSON.parse(json.stdout) as App;
    assert.equal(app.status, 'running');
    assert.equal(app.sleepingSince, null);

    blogAsleep();
    const tty = await run(['apps', 'wake', '-a', 'blog'], { env: { ...env, NO_COLOR: '1' }, tty: true });
    assert.equal(tty.code, 0);
    // Seconds waited may show before the line is wiped, on a slow machine.
    assert.match(tty.stdout, /^Waking blog\.\.\.[^\n]*\r\u001b\[Kblog is awake \(web\.1 up\)\n$/);
  });

  test('a wake that crashes is an error with the exit, and the last lines above it', async () => {
    blogAsleep();
    fake.wakeTo = 'crashed';
    const result = await run(['apps', 'wake', 'blog'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, 'Waking blog...\n');
    assert.equal(
      result.stderr,
      [
        '  | Error: connect ECONNREFUSED 127.0.0.1:5432',
        '  |     at TCPConnectWrap.afterConnect',
        "error: blog did not wake: web.1 exited with code 1 at 2025-01-05T07:00:01Z; see 'petri logs -a blog'",
        '',
      ].join('\n'),
    );
  });

  test('a wake that takes too long ends at the deadline, saying where to look', async () => {
    blogAsleep();
    fake.wakePolls = Number.POSITIVE_INFINITY;
    try {
      const client = new PetriClient({ url: fake.url, token: TOKEN });
      const woken = await client.wakeApp('blog');
      let pending = 0;
      await assert.rejects(
        waitForWake(client, 'blog', woken, { intervalMs: 10, timeoutMs: 100, onPending: () => pending++ }),
        (err: unknown) =>
          err instanceof UserError &&
          err.message ===
            "blog is still sleeping after 0.1s; it goes on on the server: check 'petri ps -a blog' and 'petri logs -a blog'",
      );
      assert.ok(pending > 0);
    } finally {
      fake.wakePolls = 1;
    }
  });

  test('waking an app that is awake says so at once', async () => {
    addApp(fake, cannedApps()[0]!, cannedProcesses());
    const from = fake.requests.length;
    const result = await run(['apps', 'wake', 'alpha'], { env });
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'Waking alpha...\nalpha is awake (web.1 up)\n');
    assert.equal(fake.requests.length, from + 1, 'no poll for an app already running');
  });
});

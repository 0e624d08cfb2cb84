// `petri releases` and `petri rollback`: the history people read (relative times, the
// current release marked), one release with its error, and a rollback that waits for its
// release and says how long it took.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { UsageError } from '../../src/cli/output.js';
import { waitForRelease } from '../../src/cli/release-wait.js';
import { parseVersion, relativeTime } from '../../src/cli/releases.js';
import { PetriClient, type Release } from '../../src/client/index.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri releases', () => {
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

  test('lists releases newest first, with relative times and the current one marked', async () => {
    const result = await run(['releases', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('releases.txt', result.stdout);
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/releases');
  });

  test('-n keeps the newest N; --json prints them with ISO times', async () => {
    const two = await run(['releases', '-a', 'alpha', '-n', '2'], { env });
    assert.equal(two.stdout.trimEnd().split('\n').length, 3, 'a header and two rows');
    const json = await run(['releases', '-a', 'alpha', '--json'], { env });
    assert.equal(json.code, 0);
    const list = JSON.parse(json.stdout) as Release[];
    assert.deepEqual(
      list.map((r) => r.version),
      ['v4', 'v3', 'v2', 'v1'],
    );
    assert.match(list[0]!.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const bad = await run(['releases', '-a', 'alpha', '-n', 'all'], { env });
    assert.equal(bad.code, 2);
  });

  test('an app without releases says how to make one', async () => {
    const result = await run(['releases', '-a', 'beta-experiment'], { env });
    assert.equal(
      result.stdout,
      "beta-experiment has no releases yet; deploy with 'petri deploy -a beta-experiment'\n",
    );
  });

  test('info shows one release with its error; v may be left out', async () => {
    const result = await run(['releases', 'info', '4', '-a', 'alpha'], { env });
    assert.equal(result.code, 0);
    assert.equal(fake.requests.at(-1)!.url, '/v1/apps/alpha/releases/v4');
    const lines = result.stdout.split('\n');
    assert.deepEqual(lines.slice(0, 6), [
      'version:     v4',
      'status:      failed',
      'current:     no',
      'kind:        config',
      'description: Set NODE_OPTIONS',
      'by:          admin',
    ]);
    assert.match(lines[6]!, /^created: {5}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(1 minute ago\)$/);
    assert.equal(
      lines[7],
      'error:       release failed: web.1 exited with code 9 before listening on its port; v3 keeps serving',
    );
    const json = await run(['releases', 'info', 'v3', '-a', 'alpha', '--json'], { env });
    assert.equal((JSON.parse(json.stdout) as Release).current, true);
  });

  test('a malformed version is a usage error; an unknown one is the server message', async () => {
    const before = fake.requests.length;
    const bad = await run(['releases', 'info', 'latest', '-a', 'alpha'], { env });
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, "error: expected a release version like v3, got 'latest'\n");
    assert.equal(fake.requests.length, before);
    const unknown = await run(['releases', 'info', 'v42', '-a', 'alpha'], { env });
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, "error: release v42 of alpha not found; list them with 'petri releases'\n");
  });

  test('rollback without a version goes to the release before the current one and waits', async () => {
    const result = await run(['rollback', '-a', 'alpha'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    // v4 failed and never served, so "before the current (v3)" is v2.
    assert.match(result.stdout, /^Rolled back to v2 as v5 in \d+\.\ds\n$/);
    const post = fake.requests.find((r) => r.method === 'POST' && r.url === '/v1/apps/alpha/rollback');
    assert.deepEqual(JSON.parse(post!.body.toString()), {});
    const v5 = fake.releases.get('alpha')![0]!;
    assert.deepEqual([v5.version, v5.status, v5.current], ['v5', 'succeeded', true]);
    // The time is the command's own, from its start: at least the polls it waited through.
    const seconds = Number(/in (\d+\.\d)s/.exec(result.stdout)![1]);
    assert.ok(seconds >= 0.3, `took ${seconds}s`);
  });

  test('rollback to a given version', async () => {
    const result = await run(['rollback', 'v1', '-a', 'alpha'], { env });
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^Rolled back to v1 as v6 in \d+\.\ds\n$/);
    assert.deepEqual(
      JSON.parse(
        fake.requests
          .filter((r) => r.method === 'POST')
          .at(-1)!
          .body.toString(),
      ),
      {
        version: 'v1',
      },
    );
  });

  test('a failed rollback exits 1 with the release error', async () => {
    fake.releaseError = 'release failed: web.1 did not answer on its port within 60s; v6 keeps serving';
    const result = await run(['rollback', 'v3', '-a', 'alpha'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(
      result.stderr,
      'error: release failed: web.1 did not answer on its port within 60s; v6 keeps serving\n',
    );
  });

  test('rollback to an unknown version shows the server message', async () => {
    const result = await run(['rollback', 'v99', '-a', 'alpha'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "error: release v99 not found; list them with 'petri releases'\n");
  });

  test('waiting ends at its deadline with where to look next', async () => {
    const client = new PetriClient({ url: fake.url, token: TOKEN });
    const stuck: Release = {
      ...fake.releases.get('alpha')![0]!,
      version: 'v50',
      status: 'pending',
      current: false,
    };
    fake.releases.get('alpha')!.unshift(stuck); // never settles: the fake settles only releases it made
    const pending: number[] = [];
    try {
      await assert.rejects(
        waitForRelease(client, 'alpha', stuck, {
          intervalMs: 10,
          timeoutMs: 100,
          onPending: (ms) => pending.push(ms),
        }),
        /^UserError: release v50 of alpha is still pending after 0\.1s; it goes on on the server: check 'petri releases -a alpha'$/,
      );
    } finally {
      fake.releases.get('alpha')!.shift();
    }
    assert.ok(pending.length >= 2);
  });

  test('relative times', () => {
    const now = Date.parse('2025-03-01T12:00:00Z');
    const at = (ms: number) => new Date(now - ms).toISOString();
    assert.equal(relativeTime(at(2_000), now), 'just now');
    assert.equal(relativeTime(at(-5_000), now), 'just now');
    assert.equal(relativeTime(at(42_000), now), '42 seconds ago');
    assert.equal(relativeTime(at(60_000), now), '1 minute ago');
    assert.equal(relativeTime(at(3 * 3600_000 + 1), now), '3 hours ago');
    assert.equal(relativeTime(at(86400_000), now), '1 day ago');
    assert.equal(relativeTime(at(40 * 86400_000), now), '2025-01-20');
  });

  test('versions', () => {
    assert.equal(parseVersion('v3'), 'v3');
    assert.equal(parseVersion('3'), 'v3');
    assert.equal(parseVersion('V07'), 'v7');
    assert.throws(() => parseVersion('v'), UsageError);
    assert.throws(() => parseVersion('v3.1'), UsageError);
  });
});

// `petri audit` and `petri audit verify` against the fake API: the table a person reads
// (golden file; a name with a terminal escape in it is shown, not obeyed), what a script
// parses (--json), the filters as sent, paging, and a broken chain as a failure naming the
// event.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditList } from '../../src/client/index.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { fakeAudit } from './fake-audit.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri audit', () => {
  let fake: FakeApi;
  let config: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  const lastUrl = () => new URL(fake.requests.at(-1)?.url ?? '', 'http://fake');
  before(async () => {
    fake = await startFakeApi();
    config = await tempDir();
    env = envFor(fake.url, TOKEN, config.dir);
  });
  after(async () => {
    await fake.close();
    await config.remove();
  });

  test('lists events in an aligned table: when, who, via, action, target, outcome, from', async () => {
    const result = await run(['audit'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    await assertGolden('audit.txt', result.stdout);
    // The refused sign-in's name cannot clear the screen or forge a row.
    assert.doesNotMatch(result.stdout, /\u001b/);
    assert.equal(result.stdout.split('\n').filter((l) => l.includes('FORGED ROW')).length, 1);
    assert.equal(lastUrl().search, '');
  });

  test('sends the filters as given, and --json prints what a script pages with', async () => {
    const result = await run(
      [
        'audit',
        '--app',
        'alpha',
        '--team',
        'labs',
        '--user',
        'ana@example.org',
        '--since',
        '7d',
        '--outcome',
        'ok',
        '--action',
        'config',
        '--limit',
        '1',
        '--json',
      ],
      { env },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(Object.fromEntries(lastUrl().searchParams), {
      app: 'alpha',
      team: 'labs',
      user: 'ana@example.org',
      since: '7d',
      outcome: 'ok',
      action: 'config',
      limit: '1',
    });
    const page = JSON.parse(result.stdout) as AuditList;
    assert.deepEqual(
      page.events.map((e) => [e.id, e.action]),
      [[105, 'config.change']],
    );
    assert.equal(page.next, null);
  });

  test('says how to see older events when there are more', async () => {
    const first = await run(['audit', '--limit', '2'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stderr, 'older events: the same command with --before 104\n');
    const second = await run(['audit', '--limit', '2', '--before', '104', '--json'], { env });
    assert.deepEqual(
      (JSON.parse(second.stdout) as AuditList).events.map((e) => e.id),
      [103, 102],
    );
  });

  test('refuses bad options before asking the server', async () => {
    const count = fake.requests.length;
    for (const [args, message] of [
      [['--outcome', 'maybe'], "error: --outcome takes ok, denied, failed; got 'maybe'\n"],
      [['--limit', '5000'], "error: --limit takes a whole number from 1 to 1000; got '5000'\n"],
      [['--before', '-3'], "error: --before takes a whole number from 1; got '-3'\n"],
    ] as const) {
      const result = await run(['audit', ...args], { env });
      assert.equal(result.code, 2, args.join(' '));
      assert.equal(result.stderr, message);
    }
    assert.equal(fake.requests.length, count);
  });

  test('verify says the chain is intact, and its newest event and hash', async () => {
    const result = await run(['audit', 'verify'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      `the audit trail is intact: 5 events checked; the newest is 105, sha256 ${'a'.repeat(64)}\n`,
    );
  });

  test('verify fails (exit 1) naming the event where the chain breaks', async () => {
    fakeAudit(fake).verification = {
      ok: false,
      checked: 56,
      last: { id: 56, hash: 'b'.repeat(64) },
      firstBad: {
        id: 57,
        reason: 'event 57 was changed after it was recorded: its fields no longer match its hash',
      },
    };
    const result = await run(['audit', 'verify'], { env });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(
      result.stderr,
      'error: the audit trail is broken at event 57: event 57 was changed after it was recorded: its fields no longer match its hash; 56 events before it check out\n',
    );
    const json = await run(['audit', 'verify', '--json'], { env });
    assert.equal(json.code, 1);
    assert.equal(JSON.parse(json.stdout).firstBad.id, 57);
  });
});

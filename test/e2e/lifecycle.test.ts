// An experiment's life end to end, through the real router, with periods of seconds: the CLI
// warns on every command about an app that expires soon; the warnings 6, 4 and 2 s before
// expiry are each sent once, even with a kill -9 and a restart of the control plane between
// them; at expiry the processes stop and the URL answers 410 naming the experiment, its owner
// and how to renew; a renewal brings it back with its add-on's data; after the grace period
// it is archived (a final backup first), and that backup restores into the app its team
// brings back under the same name.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri } from './petri.js';

const S = 1 / 86_400; // a second, in days
const PROBE = path.join(FIXTURES, 'addon-probe');

interface AuditJson {
  action: string;
  actor: string;
  detail: Record<string, unknown>;
}
interface BackupJson {
  id: string;
  app: string;
  addon: string;
  kind: string;
  status: string;
}

describe('an experiment expires, is renewed, and is archived', () => {
  let petri: TestPetri;
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };
  const json = async <T>(argv: string[]) => JSON.parse((await ok([...argv, '--json'])).stdout) as T;
  const audit = async (action: string) =>
    (
      await json<{ events: AuditJson[] }>(['audit', '--app', 'probe', '--action', action, '--limit', '1000'])
    ).events
      .filter((e) => e.action === action)
      .reverse();
  const status = async () => (await petri.app('probe', '/')).status;
  const data = async () => {
    const r = await petri.app('probe', '/redis/all');
    return r.status === 200 ? (JSON.parse(r.body) as Record<string, string>) : undefined;
  };

  before(async () => {
    petri = await TestPetri.start({
      bootTimeoutMs: 30_000,
      addons: { postgres: { mode: 'off' }, mysql: { mode: 'off' }, redis: { mode: 'managed' } },
      lifecycle: {
        defaultDays: 1,
        maxDays: 1,
        warnDays: [6 * S, 4 * S, 2 * S],
        archiveAfterDays: 3 * S,
        checkMs: 200,
      },
    });
    await ok(['apps', 'create', 'probe']);
    await ok(['deploy', PROBE, '--app', 'probe']);
    await ok(['addons', 'create', 'redis', '--app', 'probe']);
    // The add-on's release restarts the app with REDIS_URL.
    await until(async () => (await petri.app('probe', '/redis/put?k=note&v=kept')).status === 200, {
      timeout: 30_000,
      message: 'the app to reach its Redis',
    });
  });
  after(async () => {
    await petri?.destroy();
  });

  test('warnings once each across a restart, 410 at expiry, back with its data after a renewal', async () => {
    await ok(['apps', 'renew', 'probe', '--for', '7s']);
    // The first warning; then the control plane dies and comes back while the next falls due.
    await until(async () => (await audit('app.expiry.warning')).length >= 1, {
      timeout: 5000,
      interval: 100,
      message: 'the first warning',
    });
    // Within the first warning's period, every command about the app says so on stderr.
    const info = await ok(['apps', 'info', 'probe']);
    assert.match(
      info.stderr,
      /^warning: 'probe' expires in \d+(\.\d)? seconds \(.* UTC\); renew it with 'petri apps renew probe'$/m,
    );
    await petri.kill9();
    await petri.startServer();
    await until(async () => (await status()) === 410, {
      timeout: 15_000,
      interval: 100,
      message: 'a 410 at expiry',
    });
    const page = await petri.app('probe', '/anything');
    assert.equal(page.status, 410);
    assert.match(
      page.body,
      /The experiment <strong>probe<\/strong>.*owned by <strong>[^<]+<\/strong>, expired on/,
    );
    assert.match(page.body, /<code>petri apps renew probe<\/code>/);
    const warnings = await audit('app.expiry.warning');
    assert.deepEqual(
      warnings.map((w) => w.detail.days),
      [6 * S, 4 * S, 2 * S],
      'each once, none skipped, in order',
    );
    assert.ok(warnings.every((w) => w.actor === 'petri'));
    assert.equal((await audit('app.expired')).length, 1);
    await until(
      async () => (await json<{ processes: unknown[] }>(['ps', '--app', 'probe'])).processes.length === 0,
      {
        timeout: 15_000,
        message: 'its processes to stop',
      },
    );
    const expired = await petri.cli(['apps', 'info', 'probe']);
    assert.match(expired.stderr, /warning: 'probe' expired on .* UTC: it is stopped and its URL answers 410/);

    const renewed = await ok(['apps', 'renew', 'probe']);
    assert.match(renewed.stdout, /Renewed probe until .* UTC \(in 1 day\): it starts again, with its data/);
    await until(async () => (await data())?.note === 'kept', {
      timeout: 30_000,
      message: 'serving again, its data intact',
    });
  });

  test('archived after the grace period, with a final backup that restores', async () => {
    await ok(['apps', 'renew', 'probe', '--for', '1s']);
    await until(async () => (await audit('app.archived')).length === 1, {
      timeout: 20_000,
      interval: 200,
      message: 'the archive 3 s after expiry',
    });
    await until(async () => /was archived on/.test((await petri.app('probe', '/')).body), {
      timeout: 5000,
      message: 'the page of an archived experiment',
    });
    assert.equal((await petri.app('probe', '/')).status, 410);
    const listed = await json<BackupJson[] | { backups: BackupJson[] }>(['addons', 'backups', '--all']);
    const backups = Array.isArray(listed) ? listed : listed.backups;
    const final = backups.find((b) => b.app === 'probe' && b.addon === 'redis' && b.kind === 'final');
    assert.ok(final, JSON.stringify(backups));
    assert.equal(final.status, 'succeeded');
    const archived = await audit('app.archived');
    assert.deepEqual(archived[0]?.detail.finalBackups, [{ addon: 'redis', backup: final.id }]);
    // Changes are refused, and the name is the team's: its renewal brings it back empty.
    const refused = await petri.cli(['config', 'set', 'A=1', '--app', 'probe']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /archived on .*'petri apps renew probe' brings the name back/);
    const back = await ok(['apps', 'renew', 'probe']);
    assert.match(back.stdout, /a new, empty experiment under its old name/);
    await ok(['deploy', PROBE, '--app', 'probe']);
    await ok(['addons', 'create', 'redis', '--app', 'probe']);
    await until(async () => (await data()) !== undefined, { timeout: 30_000, message: 'the new Redis' });
    assert.deepEqual(await data(), {}, 'a new, empty add-on');
    await ok(['addons', 'restore', 'redis', final.id, '--app', 'probe']);
    assert.deepEqual(await data(), { note: 'kept' }, 'the final backup restored');
  });
});

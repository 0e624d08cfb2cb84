// The experiment side of the CLI against the fake API: `petri apps create` with a
// description and data class, `petri apps set` with the experiment's keys, `petri apps
// approve`, `petri inventory` (table, --json, --csv, filters) and `petri report`: what a
// user reads (golden files), what a script parses, what is sent, and the server's refusals
// shown as they come.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App, InventoryRow, Report } from '../../src/client/index.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri experiments: describe, approve, inventory, report', () => {
  let fake: FakeApi;
  let config: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  const last = () => fake.requests.at(-1)!;
  const lastBody = () => JSON.parse(last().body.toString() || 'null');
  before(async () => {
    fake = await startFakeApi();
    config = await tempDir();
    env = envFor(fake.url, TOKEN, config.dir);
  });
  after(async () => {
    await fake.close();
    await config.remove();
  });

  test('petri apps create sends the description, data class, privacy note and retention', async () => {
    const result = await run(
      [
        'apps',
        'create',
        'survey',
        '--description',
        'Asks testers what they think',
        '--data',
        'personal',
        '--privacy',
        'e-mail addresses, to ask again',
        '--retention',
        '30d',
        '--json',
      ],
      { env },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lastBody(), {
      name: 'survey',
      description: 'Asks testers what they think',
      data: 'personal',
      privacy: 'e-mail addresses, to ask again',
      retention: '30d',
    });
    const app = JSON.parse(result.stdout) as App;
    assert.equal(app.experiment.dataClass, 'personal');
    assert.equal(app.experiment.retentionDays, 30);

    const refused = await run(['apps', 'create', 'leaky', '--data', 'personal'], { env });
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'error: data=personal needs a privacy note and a retention\n');
  });

  test('petri apps set takes the experiment keys beside the settings and shows both', async () => {
    const result = await run(
      ['apps', 'set', 'beta-experiment', 'description=A price test', 'data=anonymous', 'idle=15m'],
      { env },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      [
        'boot_timeout: 1m',
        'idle:         15m',
        'description:  A price test',
        'stage:        experiment',
        'data:         anonymous',
        'expires:      2025-04-03T00:00:00Z',
        '',
      ].join('\n'),
    );
    const patches = fake.requests.filter((r) => r.method === 'PATCH').slice(-2);
    assert.equal(patches[0]!.url, '/v1/apps/beta-experiment/experiment');
    assert.deepEqual(JSON.parse(patches[0]!.body.toString()), {
      description: 'A price test',
      data: 'anonymous',
    });
    assert.deepEqual(JSON.parse(patches[1]!.body.toString()), { settings: { idleTimeoutSeconds: 900 } });

    // redirect= (empty) removes the redirect: sent as null.
    const cleared = await run(['apps', 'set', 'beta-experiment', 'redirect=', '--json'], { env });
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.deepEqual(lastBody(), { redirect: null });
    assert.equal((JSON.parse(cleared.stdout) as App).experiment.redirectUrl, null);

    const twice = await run(['apps', 'set', 'alpha', 'data=none', 'data=personal'], { env });
    assert.equal(twice.code, 2);
    assert.equal(twice.stderr, 'error: data is given twice; give each setting once\n');
    const bad = await run(['apps', 'set', 'alpha', 'data=secret'], { env });
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      "error: data must be one of none, anonymous, personal, sensitive, got 'secret'\n",
    );
  });

  test('petri apps approve approves the declared class; info shows where the review stands', async () => {
    await run(['apps', 'set', 'survey', 'data=sensitive'], { env });
    const info = await run(['apps', 'info', 'survey'], { env });
    assert.match(info.stdout, /^data: +sensitive \(awaits an admin's review: petri apps approve survey\)$/m);
    const approved = await run(['apps', 'approve', 'survey'], { env });
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(
      approved.stdout,
      'Approved sensitive data for survey (e-mail addresses, to ask again; kept 30 days)\n',
    );
    assert.equal(last().url, '/v1/apps/survey/approve');
    // What it shows is what it approves: the server refuses if the app changed meanwhile.
    assert.deepEqual(lastBody(), {
      data: 'sensitive',
      privacyNote: 'e-mail addresses, to ask again',
      retentionDays: 30,
    });
    assert.match((await run(['apps', 'info', 'survey'], { env })).stdout, /^data: +sensitive \(approved\)$/m);
    const none = await run(['apps', 'approve', 'beta-experiment'], { env });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /only personal or sensitive data is reviewed/);
    fake.apps.delete('survey');
  });

  test('petri inventory: a table for people, --json and --csv for scripts, filters sent', async () => {
    const result = await run(['inventory'], { env });
    assert.equal(result.code, 0, result.stderr);
    await assertGolden('inventory.txt', result.stdout);
    const json = JSON.parse(
      (await run(['inventory', '--json', '--data', 'personal'], { env })).stdout,
    ) as InventoryRow[];
    assert.deepEqual(
      json.map((r) => [r.name, r.egressReached]),
      [['alpha', ['api.stripe.com:443', 'example.org:443']]],
    );
    assert.equal(last().url, '/v1/inventory?data=personal');
    await run(['inventory', '--team', 'labs', '--stage', 'experiment', '--expiring', '14d', '--json'], {
      env,
    });
    assert.equal(last().url, '/v1/inventory?team=labs&stage=experiment&expiring=14d');
    const csv = await run(['inventory', '--csv'], { env });
    assert.equal(csv.stdout, 'name,team\nalpha,admin\nbeta-experiment,admin\n');
    assert.equal(last().url, '/v1/inventory?format=csv');
    const bad = await run(['inventory', '--data', 'secret'], { env });
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      "error: data must be one of none, anonymous, personal, sensitive, got 'secret'\n",
    );
  });

  test('petri report: the figures in words, --json as the API has them', async () => {
    const result = await run(['report'], { env });
    assert.equal(result.code, 0, result.stderr);
    await assertGolden('report.txt', result.stdout);
    assert.equal(last().url, '/v1/report?since=365d');
    const json = await run(['report', '--since', '30d', '--json'], { env });
    const report = JSON.parse(json.stdout) as Report;
    assert.equal(report.created, 120);
    assert.equal(report.since, '2024-12-06T00:00:00.000Z');
    assert.equal(last().url, '/v1/report?since=30d');
  });
});

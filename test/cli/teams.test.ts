// `petri teams`, `petri quotas` and the team side of `petri apps` against the fake API: what
// a user reads (golden files), what a script parses (--json), what is sent, and the
// server's refusals shown as they come (a person who does not exist, a quota).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { App, MemberChange, TeamDetail, TeamQuotas, TeamSummary } from '../../src/client/index.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { assertGolden, envFor, run, tempDir } from './harness.js';

describe('petri teams and quotas', () => {
  let fake: FakeApi;
  let config: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  const lastBody = () => JSON.parse(fake.requests.at(-1)?.body.toString() || 'null');
  before(async () => {
    fake = await startFakeApi();
    config = await tempDir();
    env = envFor(fake.url, TOKEN, config.dir);
  });
  after(async () => {
    await fake.close();
    await config.remove();
  });

  test('petri teams lists your teams, your role and what is in them', async () => {
    const result = await run(['teams'], { env });
    assert.equal(result.stderr, '');
    assert.equal(result.code, 0);
    await assertGolden('teams.txt', result.stdout);
    const json = await run(['teams', '--json'], { env });
    const teams = JSON.parse(json.stdout) as TeamSummary[];
    assert.deepEqual(
      teams.map((t) => [t.name, t.role]),
      [
        ['admin', 'admin'],
        ['labs', 'member'],
      ],
    );
  });

  test('petri teams info shows members, apps and quotas', async () => {
    const result = await run(['teams', 'info', 'labs'], { env });
    assert.equal(result.code, 0, result.stderr);
    await assertGolden('teams-info.txt', result.stdout);
    const json = JSON.parse((await run(['teams', 'info', 'labs', '--json'], { env })).stdout) as TeamDetail;
    assert.equal(json.quotas.memoryMiB.used, 7680);
    const missing = await run(['teams', 'info', 'nowhere'], { env });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "error: team 'nowhere' not found; list your teams with 'petri teams'\n");
  });

  test('petri teams create makes a team and says what to do next', async () => {
    const result = await run(['teams', 'create', 'design'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "Created team design; you are its admin\nAdd people with 'petri teams add design EMAIL --role member'\n",
    );
    assert.deepEqual(lastBody(), { name: 'design' });
    const again = await run(['teams', 'create', 'design'], { env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /team 'design' already exists/);
  });

  test('petri teams add and remove: by e-mail, with a role; the server says who is missing', async () => {
    const added = await run(['teams', 'add', 'design', 'bob@example.org', '--role', 'viewer'], { env });
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout, 'Added bob@example.org to design as viewer\n');
    assert.equal(fake.requests.at(-1)?.method, 'PUT');
    assert.equal(fake.requests.at(-1)?.url, '/v1/teams/design/members/bob%40example.org');
    assert.deepEqual(lastBody(), { role: 'viewer' });

    const changed = await run(['teams', 'add', 'design', 'bob@example.org', '--role', 'admin'], { env });
    assert.equal(changed.stdout, 'bob@example.org is now admin of design (was viewer)\n');
    // --role defaults to member.
    await run(['teams', 'add', 'design', 'ana@example.org'], { env });
    assert.deepEqual(lastBody(), { role: 'member' });
    const json = await run(['teams', 'add', 'design', 'ana@example.org', '--role', 'member', '--json'], {
      env,
    });
    assert.equal((JSON.parse(json.stdout) as MemberChange).previousRole, 'member');

    const stranger = await run(['teams', 'add', 'design', 'x@y.org'], { env });
    assert.equal(stranger.code, 1);
    assert.equal(
      stranger.stderr,
      "error: no user x@y.org: invite them first with 'petri users invite x@y.org --team design'\n",
    );
    const count = fake.requests.length;
    const badRole = await run(['teams', 'add', 'design', 'ana@example.org', '--role', 'owner'], { env });
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /--role must be admin, member or viewer, got 'owner'/);
    assert.equal(fake.requests.length, count, 'a bad role never reaches the server');

    const removed = await run(['teams', 'remove', 'design', 'ana@example.org'], { env });
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, 'Removed ana@example.org from design\n');
    assert.equal(fake.requests.at(-1)?.method, 'DELETE');
    const again = await run(['teams', 'remove', 'design', 'ana@example.org'], { env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ana@example.org is not in team design/);
  });

  test('petri quotas shows usage against the limits and changes them', async () => {
    const shown = await run(['quotas', 'labs'], { env });
    assert.equal(shown.code, 0, shown.stderr);
    await assertGolden('quotas.txt', shown.stdout);
    assert.equal(fake.requests.at(-1)?.method, 'GET');

    const set = await run(
      ['quotas', 'design', '--apps', '30', '--memory', '12G', '--addons', 'default', '--json'],
      {
        env,
      },
    );
    assert.equal(set.code, 0, set.stderr);
    assert.equal(fake.requests.at(-1)?.method, 'PATCH');
    assert.deepEqual(lastBody(), { apps: 30, memoryMiB: 12288, addons: null });
    const quotas = JSON.parse(set.stdout) as TeamQuotas;
    assert.deepEqual(quotas.memoryMiB, { used: 0, limit: 12288, custom: true });
    assert.equal(quotas.addons.custom, false);

    const count = fake.requests.length;
    for (const args of [
      ['--apps', 'many'],
      ['--apps', '-1'],
      ['--memory', 'lots'],
    ]) {
      const bad = await run(['quotas', 'labs', ...args], { env });
      assert.equal(bad.code, 2, args.join(' '));
    }
    assert.equal(fake.requests.length, count);
  });

  test('petri apps create --team and petri apps transfer', async () => {
    const created = await run(['apps', 'create', 'lab-exp', '--team', 'labs'], { env });
    assert.equal(created.code, 0, created.stderr);
    assert.equal(
      created.stdout,
      "Created lab-exp in team labs: http://lab-exp.petri.localhost:8080\nIt is an experiment until 2025-04-03 (data: none); 'petri apps renew lab-exp' extends it\nDeploy it with 'petri deploy --app lab-exp' from its directory\n",
    );
    assert.deepEqual(lastBody(), { name: 'lab-exp', team: 'labs' });
    await run(['apps', 'create', 'mine'], { env });
    assert.deepEqual(lastBody(), { name: 'mine' });
    const nowhere = await run(['apps', 'create', 'lost', '--team', 'nowhere'], { env });
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stderr, /team 'nowhere' not found/);

    const moved = await run(['apps', 'transfer', 'mine', '--team', 'design'], { env });
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.stdout, 'Moved mine to team design\n');
    assert.equal(fake.requests.at(-1)?.url, '/v1/apps/mine/transfer');
    assert.deepEqual(lastBody(), { team: 'design' });
    const info = JSON.parse((await run(['apps', 'info', 'mine', '--json'], { env })).stdout) as App;
    assert.equal(info.team, 'design');

    // alpha wants three instances at 256 MiB: labs (7.5 GiB of 8 GiB) has no room for them.
    const full = await run(['apps', 'transfer', 'alpha', '--team', 'labs'], { env });
    assert.equal(full.code, 1);
    assert.equal(
      full.stderr,
      'error: team labs runs 7.5 GiB of 8 GiB; alpha (3 instances at 256 MiB, 0 add-ons) needs 768 MiB more: scale down or remove something first, or ask a platform admin to raise it (petri quotas labs --memory 9G)\n',
    );
    const noTeam = await run(['apps', 'transfer', 'alpha'], { env });
    assert.equal(noTeam.code, 2);
    assert.match(noTeam.stderr, /--team/);
  });
});

// Teams through the API as people use them: creating one, adding and removing people with
// roles, what each role may do with the team and its apps, personal teams, creating an app
// in a team and moving one to another team. Each refusal is checked with what it says.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { addUsers, buildTestApi } from './test-api.js';
import { yieldingStore } from './yielding-store.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

describe('teams', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};

  const call = (who: string, method: Method, url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });
  const message = (res: { json: () => { error: { message: string } } }) => res.json().error.message;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-teams-'));
    db = await openStore(new DataPaths(dir).store);
    const people: [string, 'admin' | 'auditor' | 'member'][] = [
      ['root', 'admin'],
      ['ana', 'member'],
      ['bob', 'member'],
      ['carl', 'member'],
      ['vera', 'member'],
      ['aud', 'auditor'],
    ];
    await addUsers(db, people, tokens, {});
    api = await buildTestApi(dir, db);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a person creates a team and is its admin; names follow the app name rules', async () => {
    const res = await call('ana', 'POST', '/v1/teams', { name: 'labs' });
    assert.equal(res.statusCode, 201, res.body);
    const team = res.json();
    assert.equal(team.name, 'labs');
    assert.equal(team.role, 'admin');
    assert.equal(team.personal, false);
    assert.deepEqual(
      team.members.map((m: { name: string; role: string }) => [m.name, m.role]),
      [['ana', 'admin']],
    );
    assert.deepEqual(team.quotas.apps, { used: 0, limit: 20, custom: false });
    assert.deepEqual(team.quotas.memoryMiB, { used: 0, limit: 8192, custom: false });

    const again = await call('bob', 'POST', '/v1/teams', { name: 'labs' });
    assert.equal(again.statusCode, 409);
    assert.match(message(again), /team 'labs' already exists/);
    for (const name of ['Labs', 'x', 'a--b', 'labs-', '../etc', 'a'.repeat(31)]) {
      const bad = await call('bob', 'POST', '/v1/teams', { name });
      assert.equal(bad.statusCode, 400, name);
      assert.match(message(bad), /team name/);
    }
    // A personal team's name is taken too: nobody gets a team called like another's own.
    const personal = await call('bob', 'POST', '/v1/teams', { name: 'ana' });
    assert.equal(personal.statusCode, 409);
  });

  test('petri teams lists your teams with your role; admins and auditors see every team', async () => {
    const ana = (await call('ana', 'GET', '/v1/teams')).json().teams;
    assert.deepEqual(
      ana.map((t: { name: string; role: string; personal: boolean }) => [t.name, t.role, t.personal]),
      [
        ['ana', 'admin', true],
        ['labs', 'admin', false],
      ],
    );
    const bob = (await call('bob', 'GET', '/v1/teams')).json().teams;
    assert.deepEqual(
      bob.map((t: { name: string }) => t.name),
      ['bob'],
    );
    const aud = (await call('aud', 'GET', '/v1/teams')).json().teams;
    const labs = aud.find((t: { name: string }) => t.name === 'labs');
    assert.equal(labs.role, null);
    assert.ok(aud.length >= 7);
  });

  test('a team admin adds people by e-mail; the person must exist', async () => {
    const added = await call('ana', 'PUT', '/v1/teams/labs/members/bob@example.org', { role: 'member' });
    assert.equal(added.statusCode, 200, added.body);
    assert.deepEqual(added.json(), {
      member: { name: 'bob', email: 'bob@example.org', kind: 'person', role: 'member', disabled: false },
      previousRole: null,
    });
    // E-mails are matched whatever their case.
    const viewer = await call('ana', 'PUT', '/v1/teams/labs/members/VERA@Example.org', { role: 'viewer' });
    assert.equal(viewer.statusCode, 200);
    const nobody = await call('ana', 'PUT', '/v1/teams/labs/members/x@y.org', { role: 'member' });
    assert.equal(nobody.statusCode, 404);
    assert.equal(
      message(nobody),
      "no user x@y.org: invite them first with 'petri users invite x@y.org --team labs'",
    );
    const badRole = await call('ana', 'PUT', '/v1/teams/labs/members/carl@example.org', { role: 'owner' });
    assert.equal(badRole.statusCode, 400);

    const detail = (await call('bob', 'GET', '/v1/teams/labs')).json();
    assert.equal(detail.role, 'member');
    assert.deepEqual(
      detail.members.map((m: { name: string; role: string }) => [m.name, m.role]),
      [
        ['ana', 'admin'],
        ['bob', 'member'],
        ['vera', 'viewer'],
      ],
    );
  });

  test('only team admins and platform admins change members; outsiders do not see the team', async () => {
    const byMember = await call('bob', 'PUT', '/v1/teams/labs/members/carl@example.org', { role: 'admin' });
    assert.equal(byMember.statusCode, 403);
    const byViewer = await call('vera', 'PUT', '/v1/teams/labs/members/vera@example.org', { role: 'admin' });
    assert.equal(byViewer.statusCode, 403);
    const byAuditor = await call('aud', 'PUT', '/v1/teams/labs/members/carl@example.org', { role: 'viewer' });
    assert.equal(byAuditor.statusCode, 403);
    // carl is in no team but his own: labs answers as if it did not exist.
    for (const [method, url, body] of [
      ['GET', '/v1/teams/labs', undefined],
      ['GET', '/v1/teams/labs/quotas', undefined],
      ['PUT', '/v1/teams/labs/members/carl@example.org', { role: 'admin' }],
      ['DELETE', '/v1/teams/labs/members/bob@example.org', undefined],
    ] as const) {
      const res = await call('carl', method, url, body);
      assert.equal(res.statusCode, 404, `${method} ${url}`);
      assert.match(message(res), /team 'labs' not found/);
    }
    assert.equal((await call('aud', 'GET', '/v1/teams/labs')).statusCode, 200);
    const byRoot = await call('root', 'PUT', '/v1/teams/labs/members/carl@example.org', { role: 'viewer' });
    assert.equal(byRoot.statusCode, 200);
    const teams = (await call('carl', 'GET', '/v1/teams')).json().teams;
    assert.ok(teams.some((t: { name: string; role: string }) => t.name === 'labs' && t.role === 'viewer'));
  });

  test('a team keeps an admin: the last one cannot leave or step down; anyone else may leave', async () => {
    const demote = await call('ana', 'PUT', '/v1/teams/labs/members/ana@example.org', { role: 'member' });
    assert.equal(demote.statusCode, 409);
    assert.match(message(demote), /ana is the last admin of team labs; make someone else admin first/);
    const leave = await call('ana', 'DELETE', '/v1/teams/labs/members/ana@example.org');
    assert.equal(leave.statusCode, 409);
    // Not even a platform admin takes the last admin out.
    assert.equal((await call('root', 'DELETE', '/v1/teams/labs/members/ana@example.org')).statusCode, 409);

    // A viewer leaves on their own; a member cannot take someone else out.
    assert.equal((await call('bob', 'DELETE', '/v1/teams/labs/members/carl@example.org')).statusCode, 403);
    assert.equal((await call('carl', 'DELETE', '/v1/teams/labs/members/carl@example.org')).statusCode, 204);
    assert.equal((await call('carl', 'GET', '/v1/teams/labs')).statusCode, 404);
    const gone = await call('ana', 'DELETE', '/v1/teams/labs/members/carl@example.org');
    assert.equal(gone.statusCode, 404);
    assert.match(message(gone), /carl@example.org is not in team labs/);

    // With a second admin, the first may step down.
    assert.equal(
      (await call('ana', 'PUT', '/v1/teams/labs/members/bob@example.org', { role: 'admin' })).statusCode,
      200,
    );
    const down = await call('ana', 'PUT', '/v1/teams/labs/members/ana@example.org', { role: 'member' });
    assert.equal(down.statusCode, 200);
    assert.equal(down.json().previousRole, 'admin');
    assert.equal(
      (await call('bob', 'PUT', '/v1/teams/labs/members/ana@example.org', { role: 'admin' })).statusCode,
      200,
    );
  });

  test('admins stepping down or taking each other out all at once leave the team one admin', async (t) => {
    const racing = await buildTestApi(dir, yieldingStore(db));
    t.after(() => racing.close());
    const race = (who: string, method: Method, url: string, payload?: object) =>
      racing.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });
    const admins = async () =>
      (await call('root', 'GET', '/v1/teams/duo'))
        .json()
        .members.filter((m: { role: string }) => m.role === 'admin');
    const everyone = ['ana', 'bob', 'carl', 'vera', 'aud', 'root'];
    const allAdmins = async () => {
      for (const who of everyone) {
        await call('root', 'PUT', `/v1/teams/duo/members/${who}@example.org`, { role: 'admin' });
      }
      assert.equal((await admins()).length, everyone.length);
    };
    assert.equal((await call('ana', 'POST', '/v1/teams', { name: 'duo' })).statusCode, 201);
    await allAdmins();
    const down = await Promise.all(
      everyone.map((who) => race(who, 'PUT', `/v1/teams/duo/members/${who}@example.org`, { role: 'member' })),
    );
    assert.equal(down.filter((r) => r.statusCode === 200).length, everyone.length - 1);
    assert.equal((await admins()).length, 1);

    await allAdmins();
    // Each takes out the next one.
    const out = await Promise.all(
      everyone.map((who, i) =>
        race(who, 'DELETE', `/v1/teams/duo/members/${everyone[(i + 1) % everyone.length]}@example.org`),
      ),
    );
    // Some go; those already taken out are refused; never the last.
    assert.ok(out.filter((r) => r.statusCode === 204).length < everyone.length);
    assert.ok((await admins()).length >= 1);
  });

  test("a personal team is its person's alone", async () => {
    const share = await call('ana', 'PUT', '/v1/teams/ana/members/bob@example.org', { role: 'member' });
    assert.equal(share.statusCode, 409);
    assert.match(message(share), /personal team.*petri teams create NAME/);
    assert.equal((await call('ana', 'DELETE', '/v1/teams/ana/members/ana@example.org')).statusCode, 409);
  });

  test('an app is created in your personal team, or in a team where you are a member or admin', async () => {
    const own = await call('vera', 'POST', '/v1/apps', { name: 'vera-app' });
    assert.equal(own.statusCode, 201, own.body);
    assert.equal(own.json().team, 'vera');
    assert.equal(own.json().owner, 'vera');

    const inLabs = await call('bob', 'POST', '/v1/apps', { name: 'lab-app', team: 'labs' });
    assert.equal(inLabs.statusCode, 201, inLabs.body);
    assert.equal(inLabs.json().team, 'labs');
    // A viewer of labs cannot create in it; an outsider is told it does not exist.
    const viewer = await call('vera', 'POST', '/v1/apps', { name: 'nope-1', team: 'labs' });
    assert.equal(viewer.statusCode, 403);
    const outsider = await call('carl', 'POST', '/v1/apps', { name: 'nope-2', team: 'labs' });
    assert.equal(outsider.statusCode, 404);
    assert.match(message(outsider), /team 'labs' not found/);
    const missing = await call('carl', 'POST', '/v1/apps', { name: 'nope-3', team: 'nowhere' });
    assert.equal(missing.statusCode, 404);
    const auditor = await call('aud', 'POST', '/v1/apps', { name: 'nope-4', team: 'labs' });
    assert.equal(auditor.statusCode, 403);
    // Another person's personal team is theirs alone, too.
    assert.equal((await call('carl', 'POST', '/v1/apps', { name: 'nope-5', team: 'ana' })).statusCode, 404);
    for (const name of ['nope-1', 'nope-2', 'nope-3', 'nope-4', 'nope-5']) {
      assert.equal((await call('root', 'GET', `/v1/apps/${name}`)).statusCode, 404);
    }
    // The team's members see the app; its viewers too.
    const list = (await call('vera', 'GET', '/v1/apps')).json().apps.map((a: { name: string }) => a.name);
    assert.deepEqual(list, ['lab-app', 'vera-app']);
    assert.deepEqual((await call('ana', 'GET', '/v1/teams/labs')).json().apps, ['lab-app']);
  });

  test('an app moves to another team: its team admin, a member of the target, the owner stays', async () => {
    assert.equal((await call('carl', 'POST', '/v1/apps', { name: 'carls' })).statusCode, 201);
    // carl is admin of his personal team (the app's) but not in labs.
    const outsider = await call('carl', 'POST', '/v1/apps/carls/transfer', { team: 'labs' });
    assert.equal(outsider.statusCode, 404);
    assert.match(message(outsider), /team 'labs' not found/);
    // As a viewer of labs he still may not bring apps in.
    await call('ana', 'PUT', '/v1/teams/labs/members/carl@example.org', { role: 'viewer' });
    assert.equal((await call('carl', 'POST', '/v1/apps/carls/transfer', { team: 'labs' })).statusCode, 403);
    await call('ana', 'PUT', '/v1/teams/labs/members/carl@example.org', { role: 'member' });
    const moved = await call('carl', 'POST', '/v1/apps/carls/transfer', { team: 'labs' });
    assert.equal(moved.statusCode, 200, moved.body);
    assert.equal(moved.json().team, 'labs');
    assert.equal(moved.json().owner, 'carl');
    // Now in labs, where carl is a member, not an admin: moving it on is for labs' admins.
    const back = await call('carl', 'POST', '/v1/apps/carls/transfer', { team: 'carl' });
    assert.equal(back.statusCode, 403);
    // vera (viewer) sees it now, bob (admin of labs) may move it; an unknown body field is refused.
    assert.equal((await call('vera', 'GET', '/v1/apps/carls')).statusCode, 200);
    const extra = await call('bob', 'POST', '/v1/apps/carls/transfer', { team: 'labs', owner: 'bob' });
    assert.equal(extra.statusCode, 400);
    const events = await db
      .selectFrom('audit_events')
      .select(['action', 'target', 'detail'])
      .where('action', '=', 'app.transfer')
      .execute();
    assert.deepEqual(
      events.map((e) => [e.target, JSON.parse(e.detail).from, JSON.parse(e.detail).to]),
      [['carls', 'carl', 'labs']],
    );
  });

  test('a person leads a bounded number of teams; names in bodies are bounded too', async (t) => {
    const bounded = await buildTestApi(dir, db, { ceilings: { teamsPerPerson: 3 } });
    t.after(() => bounded.close());
    const create = (who: string, name: string) =>
      bounded.inject({
        method: 'POST',
        url: '/v1/teams',
        payload: { name },
        headers: { authorization: `Bearer ${tokens[who]}` },
      });
    // vera leads no shared team yet: three, then the ceiling.
    for (const name of ['v-one', 'v-two', 'v-three'])
      assert.equal((await create('vera', name)).statusCode, 201);
    const fourth = await create('vera', 'v-four');
    assert.equal(fourth.statusCode, 400);
    assert.match(
      message(fourth),
      /already admin of 3 teams, the ceiling of 3 per person \(ceilings.teamsPerPerson\)/,
    );
    // Handing one over makes room; platform admins are not bounded.
    await call('vera', 'PUT', '/v1/teams/v-one/members/bob@example.org', { role: 'admin' });
    await call('vera', 'DELETE', '/v1/teams/v-one/members/vera@example.org');
    assert.equal((await create('vera', 'v-four')).statusCode, 201);
    for (const name of ['r-one', 'r-two', 'r-three', 'r-four']) {
      assert.equal((await create('root', name)).statusCode, 201);
    }
    const long = 'x'.repeat(200_000);
    for (const [method, url, payload] of [
      ['POST', '/v1/teams', { name: long }],
      ['POST', '/v1/apps', { name: 'long-team', team: long }],
      ['POST', '/v1/apps/vera-app/transfer', { team: long }],
    ] as const) {
      const res = await call('vera', method, url, payload);
      assert.equal(res.statusCode, 400, url);
      assert.ok(res.body.length < 1000, `${url} answers without repeating the name`);
    }
  });

  test('team changes are on the audit trail', async () => {
    const actions = (await db.selectFrom('audit_events').select(['action', 'target']).execute()).map(
      (e) => `${e.action} ${e.target}`,
    );
    for (const wanted of [
      'team.create labs',
      'team.member.add labs',
      'team.member.role labs',
      'team.member.remove labs',
    ]) {
      assert.ok(actions.includes(wanted), `${wanted} in ${actions.join(', ')}`);
    }
  });
});

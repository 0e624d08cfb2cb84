// Attack: get into someone's personal team. "A personal team is its person's alone; a
// personal team takes no other members (409)" is enforced by setMember/removeMember only.
// An invitation (POST /v1/users/invitations {team, teamRole}) and a bot (POST
// /v1/users/bots {team}) may name ANY team, personal ones included: the invited newcomer
// signs up as admin of bob's personal team (sees his apps' config, destroys them, moves them
// away), and bob cannot take them out again (removeMember refuses on a personal team).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser, issueToken } from '../../../src/domain/auth.js';
import { DataPaths } from '../../../src/lib/paths.js';
import { openStore, type Store } from '../../../src/store/db.js';
import { buildTestApi } from '../test-api.js';

describe("someone else's personal team", () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let adminToken: string;
  let bobToken: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-attack-personal-'));
    db = await openStore(new DataPaths(dir).store);
    const admin = await createUser(db, 'admin', 'admin', { email: 'admin@example.org' });
    adminToken = await issueToken(db, admin.id, 'test');
    const bob = await createUser(db, 'bob@example.org', 'member', { email: 'bob@example.org' });
    bobToken = await issueToken(db, bob.id, 'test');
    api = await buildTestApi(dir, db);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an invitation names a personal team: refused like adding a member there', async () => {
    const invite = await api.inject({
      method: 'POST',
      url: '/v1/users/invitations',
      headers: { authorization: `Bearer ${adminToken}` },
      payload: { email: 'eve@example.org', team: 'bob', teamRole: 'admin' },
    });
    assert.equal(invite.statusCode, 409, `an invitation into bob's personal team: ${invite.body}`);
  });

  test('a bot made in a personal team: refused like adding a member there', async () => {
    const bot = await api.inject({
      method: 'POST',
      url: '/v1/users/bots',
      headers: { authorization: `Bearer ${adminToken}` },
      payload: { name: 'bobs-ci', team: 'bob', role: 'member' },
    });
    assert.equal(bot.statusCode, 409, `a bot in bob's personal team: ${bot.body}`);
    assert.match(bot.json().error.message, /personal team/);
    // Nothing was made: no bot of that name, nobody else in bob's team.
    const made = await db.selectFrom('users').select('id').where('name', '=', 'bobs-ci').executeTakeFirst();
    assert.equal(made, undefined, 'the refused bot was made all the same');
    const members = await db
      .selectFrom('team_members')
      .innerJoin('teams', 'teams.id', 'team_members.team_id')
      .select('team_members.user_id')
      .where('teams.name', '=', 'bob')
      .execute();
    assert.equal(members.length, 1, "bob's personal team has someone else in it");
  });

  test("a team admin adds another team's bot to their team: refused; a platform admin may", async () => {
    const as = (token: string, method: 'POST' | 'PUT', url: string, payload: object) =>
      api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
    // Two teams: ops (whose CI bot it is) and labs, which bob runs.
    assert.equal((await as(adminToken, 'POST', '/v1/teams', { name: 'ops' })).statusCode, 201);
    assert.equal((await as(bobToken, 'POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    const bot = await as(adminToken, 'POST', '/v1/users/bots', {
      name: 'ops-ci',
      team: 'ops',
      role: 'member',
    });
    assert.equal(bot.statusCode, 201, bot.body);
    const taken = await as(bobToken, 'PUT', '/v1/teams/labs/members/ops-ci', { role: 'member' });
    assert.equal(taken.statusCode, 403, `bob put ops' bot into his team: ${taken.body}`);
    assert.match(taken.json().error.message, /belongs to another team/);
    const inLabs = await db
      .selectFrom('team_members')
      .innerJoin('teams', 'teams.id', 'team_members.team_id')
      .innerJoin('users', 'users.id', 'team_members.user_id')
      .select('users.name')
      .where('teams.name', '=', 'labs')
      .execute();
    assert.deepEqual(
      inLabs.map((m) => m.name),
      ['bob@example.org'],
    );
    // A platform admin may share a bot between teams.
    const shared = await as(adminToken, 'PUT', '/v1/teams/labs/members/ops-ci', { role: 'viewer' });
    assert.equal(shared.statusCode, 200, shared.body);
    // And a team's own bot's role is its admins' to change.
    const ownBot = await as(adminToken, 'POST', '/v1/users/bots', {
      name: 'labs-ci',
      team: 'labs',
      role: 'viewer',
    });
    assert.equal(ownBot.statusCode, 201, ownBot.body);
    const promoted = await as(bobToken, 'PUT', '/v1/teams/labs/members/labs-ci', { role: 'member' });
    assert.equal(promoted.statusCode, 200, promoted.body);
  });
});

// Who loses a pass loses it at once (issue 15): disabling a person raises the key version of
// every gated app, and of no public one; taking someone off a team raises that of the team's
// gated apps, and of no other team's. (Through the router: lock-outs-not-at-next-request.)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';

let dir: string;
let db: Store;
let api: FastifyInstance;
let admin: string;
let nudges = 0;

const call = (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  api.inject({ method, url, payload, headers: { authorization: `Bearer ${admin}` } });
const versions = async () =>
  Object.fromEntries(
    (await db.selectFrom('apps').select(['name', 'audience_key_version']).execute()).map((a) => [
      a.name,
      a.audience_key_version,
    ]),
  );

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack15-kv-'));
  db = await openStore(new DataPaths(dir).store);
  const root = await createUser(db, 'root', 'admin', { email: 'root@example.org' });
  admin = await issueToken(db, root.id, 'test');
  api = await buildTestApi(dir, db, { domain: 'petri.test' }, { nudge: () => void nudges++ });
  for (const team of ['labs', 'ops'])
    assert.equal((await call('POST', '/v1/teams', { name: team })).statusCode, 201);
  for (const [name, team, audience] of [
    ['club', 'labs', 'invite'],
    ['shop', 'labs', 'staff'],
    ['blog', 'labs', 'public'],
    ['desk', 'ops', 'staff'],
  ] as const) {
    assert.equal((await call('POST', '/v1/apps', { name, team })).statusCode, 201);
    assert.equal((await call('PUT', `/v1/apps/${name}/audience`, { audience })).statusCode, 200);
  }
  await createUser(db, 'sam', 'member', { email: 'sam@example.org' });
  await createUser(db, 'tom', 'member', { email: 'tom@example.org' });
});
after(async () => {
  await api?.close();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('disabling a person ends every gated app’s cookies, and touches no public app', async () => {
  const before = await versions();
  const n = nudges;
  const res = await call('POST', '/v1/users/sam@example.org/disable');
  assert.equal(res.statusCode, 200, res.body);
  const now = await versions();
  for (const gated of ['club', 'shop', 'desk']) assert.equal(now[gated], (before[gated] ?? 0) + 1, gated);
  assert.equal(now.blog, before.blog);
  assert.ok(nudges > n, 'the reconciler is nudged');
});

test('taking someone off a team ends that team’s gated apps’ cookies only', async () => {
  const added = await call('PUT', '/v1/teams/labs/members/tom@example.org', { role: 'member' });
  assert.equal(added.statusCode, 200, added.body);
  const before = await versions();
  const res = await call('DELETE', '/v1/teams/labs/members/tom@example.org');
  assert.equal(res.statusCode, 204, res.body);
  const now = await versions();
  assert.equal(now.club, (before.club ?? 0) + 1);
  assert.equal(now.shop, (before.shop ?? 0) + 1);
  assert.equal(now.blog, before.blog);
  assert.equal(now.desk, before.desk);
});

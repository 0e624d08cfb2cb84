// One consent, one use of a shared invite link (issue 15): the same notice form, posted
// several times with the one pending cookie (a replay, or the cookie copied to other
// browsers), takes one use, not one a post.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { GATE_COOKIE, PENDING_COOKIE } from '../../src/gate/cookie.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';

const HOST = 'club.petri.test:8080';
const CLICK = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-user': '?1' };
let dir: string;
let db: Store;
let api: FastifyInstance;
let token: string;

const call = (method: 'POST' | 'PUT', url: string, payload: object) =>
  api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
const setCookie = (res: LightMyRequestResponse, name: string) =>
  [res.headers['set-cookie'] ?? []]
    .flat()
    .map(String)
    .find((c) => c.startsWith(`${name}=`))
    ?.split(';')[0];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack15-replay-'));
  db = await openStore(new DataPaths(dir).store);
  const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
  token = await issueToken(db, ana.id, 'test');
  api = await buildTestApi(dir, db, { domain: 'petri.test', httpPort: 8080 });
  assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
  assert.equal((await call('POST', '/v1/apps', { name: 'club', team: 'labs' })).statusCode, 201);
  assert.equal((await call('PUT', '/v1/apps/club/audience', { audience: 'invite' })).statusCode, 200);
});
after(async () => {
  await api?.close();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('the notice form posted three times with one pending cookie takes one use of a shared link', async () => {
  const created = await call('POST', '/v1/apps/club/audience/links', { uses: 5 });
  assert.equal(created.statusCode, 201, created.body);
  const link = new URL(created.json().url as string);
  const join = await api.inject({ method: 'GET', url: link.pathname, headers: { host: HOST } });
  const pending = setCookie(join, PENDING_COOKIE) ?? '';
  const notice = await api.inject({
    method: 'GET',
    url: join.headers.location as string,
    headers: { host: HOST, cookie: pending },
  });
  const csrf = /name="csrf" value="([^"]+)"/.exec(notice.body)?.[1] ?? '';
  const answers: LightMyRequestResponse[] = [];
  for (let i = 0; i < 3; i++) {
    answers.push(
      await api.inject({
        method: 'POST',
        url: '/.petri/consent',
        headers: {
          host: HOST,
          cookie: pending,
          'content-type': 'application/x-www-form-urlencoded',
          ...CLICK,
        },
        payload: new URLSearchParams({ csrf, next: '/', choice: 'continue' }).toString(),
      }),
    );
  }
  assert.equal(answers[0]?.statusCode, 303);
  assert.ok(setCookie(answers[0]!, GATE_COOKIE));
  for (const again of answers.slice(1)) {
    assert.equal(again.statusCode, 409, again.body);
    assert.match(again.body, /answered this notice already/);
    assert.equal(setCookie(again, GATE_COOKIE), undefined);
  }
  const row = await db
    .selectFrom('audience_links')
    .select('uses_left')
    .where('id', '=', created.json().link.id as number)
    .executeTakeFirstOrThrow();
  assert.equal(row.uses_left, 4, 'one use taken');
});

// `petri tokens` through the API: your own tokens listed without their secret, made with an
// expiry (90 days unless said; never only for admins), revoked by id and refused from then
// on; an expired token refused with its date; last use written at most once a minute.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { bootstrapAdmin, createUser, issueToken, LAST_USED_EVERY_MS } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from './test-api.js';

const DAY = 86_400_000;

describe('tokens', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let admin: string;
  let member: string;
  let auditor: string;
  let memberId: number;
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const call = (token: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    api.inject({ method, url, headers: as(token), ...(payload ? { payload } : {}) });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-tokens-'));
    db = await openStore(new DataPaths(dir).store);
    admin = (await bootstrapAdmin(db))!;
    const ana = await createUser(db, 'ana@example.org', 'member', { email: 'ana@example.org' });
    memberId = ana.id;
    member = await issueToken(db, ana.id, 'laptop', { kind: 'session', expiresAt: null });
    const ida = await createUser(db, 'ida@example.org', 'auditor', { email: 'ida@example.org' });
    auditor = await issueToken(db, ida.id, 'audit');
    api = await buildTestApi(dir, db);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a new token expires in 90 days by default, works at once, and its secret is shown only then', async () => {
    const made = await call(member, 'POST', '/v1/tokens', { name: 'ci-deploy' });
    assert.equal(made.statusCode, 201, made.body);
    const { secret, token, user } = made.json();
    assert.equal(user, 'ana@example.org');
    assert.match(secret, /^petri_[A-Za-z0-9_-]{32}$/);
    assert.equal(token.name, 'ci-deploy');
    assert.equal(token.kind, 'api');
    assert.equal(token.current, false);
    const days = (Date.parse(token.expiresAt) - Date.now()) / DAY;
    assert.ok(days > 89.9 && days <= 90, `expires in ${days} days`);

    const who = await call(secret, 'GET', '/v1/whoami');
    assert.equal(who.statusCode, 200);
    assert.equal(who.json().user.email, 'ana@example.org');
    assert.deepEqual(who.json().token, {
      id: token.id,
      name: 'ci-deploy',
      kind: 'api',
      expiresAt: token.expiresAt,
    });

    const list = await call(member, 'GET', '/v1/tokens');
    assert.equal(list.statusCode, 200);
    const listed = list.json().tokens as Record<string, unknown>[];
    assert.deepEqual(
      listed.map((t) => [t.name, t.current]),
      [
        ['ci-deploy', false],
        ['laptop', true],
      ],
    );
    for (const t of listed) {
      assert.deepEqual(Object.keys(t).sort(), [
        'createdAt',
        'current',
        'expired',
        'expiresAt',
        'id',
        'kind',
        'lastUsedAt',
        'name',
      ]);
    }
    assert.ok(!list.body.includes(secret), 'the list never holds a secret');
    // Only the hash is stored.
    const rows = await db.selectFrom('tokens').selectAll().execute();
    assert.ok(!JSON.stringify(rows).includes(secret));
  });

  test('expiry: durations, a member cannot ask for never or over a year, an admin can', async () => {
    const week = await call(member, 'POST', '/v1/tokens', { name: 'week', expires: '1w' });
    assert.equal(week.statusCode, 201);
    assert.ok(Math.abs(Date.parse(week.json().token.expiresAt) - Date.now() - 7 * DAY) < 60_000);

    const never = await call(member, 'POST', '/v1/tokens', { name: 'forever', expires: 'never' });
    assert.equal(never.statusCode, 403);
    assert.match(never.json().error.message, /only an admin may make a token that never expires/);
    const long = await call(member, 'POST', '/v1/tokens', { name: 'long', expires: '400d' });
    assert.equal(long.statusCode, 403);
    assert.match(long.json().error.message, /at most 365d/);
    for (const expires of ['30m', 'soon', '0d', '-1d', '']) {
      const bad = await call(member, 'POST', '/v1/tokens', { name: 'bad', expires });
      assert.equal(bad.statusCode, 400, `${expires}: ${bad.body}`);
    }
    const adminNever = await call(admin, 'POST', '/v1/tokens', { name: 'ops', expires: 'never' });
    assert.equal(adminNever.statusCode, 201);
    assert.equal(adminNever.json().token.expiresAt, null);
  });

  test('names: required, at most 64 characters, no control characters; unknown fields refused', async () => {
    // A right-to-left override would make one name read as another in a list.
    for (const name of ['', 'x'.repeat(65), 'a\nb', '   ', 'ci\u202Etxt.exe', 'a\u0000b']) {
      const bad = await call(member, 'POST', '/v1/tokens', { name });
      assert.equal(bad.statusCode, 400, JSON.stringify(name));
    }
    const extra = await call(member, 'POST', '/v1/tokens', { name: 'x', user_id: 1 });
    assert.equal(extra.statusCode, 400);
  });

  test('a revoked token is refused from its next request on, saying so', async () => {
    const { secret, token } = (await call(member, 'POST', '/v1/tokens', { name: 'short-lived' })).json();
    assert.equal((await call(secret, 'GET', '/v1/whoami')).statusCode, 200);
    const revoked = await call(member, 'DELETE', `/v1/tokens/${token.id}`);
    assert.equal(revoked.statusCode, 200);
    assert.equal(revoked.json().token.id, token.id);
    const after = await call(secret, 'GET', '/v1/whoami');
    assert.equal(after.statusCode, 401);
    assert.match(
      after.json().error.message,
      /^this token was revoked on \d{4}-\d\d-\d\d; run 'petri login'$/,
    );
    assert.ok(!(await call(member, 'GET', '/v1/tokens')).body.includes('short-lived'));
    // Twice: it is gone.
    assert.equal((await call(member, 'DELETE', `/v1/tokens/${token.id}`)).statusCode, 404);
  });

  test("someone else's token: 404 to a member (as if it did not exist), revoked by an admin", async () => {
    const { secret, token } = (await call(admin, 'POST', '/v1/tokens', { name: 'admins' })).json();
    const refused = await call(member, 'DELETE', `/v1/tokens/${token.id}`);
    assert.equal(refused.statusCode, 404);
    assert.match(refused.json().error.message, /you have no token \d+; list yours with 'petri tokens'/);
    assert.equal((await call(secret, 'GET', '/v1/whoami')).statusCode, 200, 'still works');

    const mine = (await call(member, 'POST', '/v1/tokens', { name: 'anas' })).json();
    assert.equal((await call(admin, 'DELETE', `/v1/tokens/${mine.token.id}`)).statusCode, 200);
    assert.equal((await call(mine.secret, 'GET', '/v1/whoami')).statusCode, 401);
    assert.equal((await call(member, 'DELETE', '/v1/tokens/99999')).statusCode, 404);
    assert.equal((await call(member, 'DELETE', '/v1/tokens/abc')).statusCode, 400);
  });

  test("others' token lists: admins and auditors only", async () => {
    const byAuditor = await call(auditor, 'GET', '/v1/tokens?user=ana@example.org');
    assert.equal(byAuditor.statusCode, 200);
    assert.equal(byAuditor.json().user, 'ana@example.org');
    assert.ok(byAuditor.json().tokens.some((t: { name: string }) => t.name === 'laptop'));
    assert.equal((await call(admin, 'GET', '/v1/tokens?user=ANA@example.org')).statusCode, 200);
    const byMember = await call(member, 'GET', '/v1/tokens?user=admin');
    assert.equal(byMember.statusCode, 403);
    assert.equal((await call(member, 'GET', '/v1/tokens?user=ana@example.org')).statusCode, 200);
    assert.equal((await call(admin, 'GET', '/v1/tokens?user=nobody@example.org')).statusCode, 404);
  });

  test('an expired token is refused with the day it expired', async () => {
    const expiresAt = new Date(Date.now() - 3 * DAY).toISOString();
    const old = await issueToken(db, memberId, 'old', { kind: 'session', expiresAt });
    const res = await call(old, 'GET', '/v1/apps');
    assert.equal(res.statusCode, 401);
    assert.equal(
      res.json().error.message,
      `your token expired on ${expiresAt.slice(0, 10)}; run 'petri login'`,
    );
    const listed = (await call(member, 'GET', '/v1/tokens')).json().tokens as {
      name: string;
      expired: boolean;
    }[];
    assert.equal(listed.find((t) => t.name === 'old')?.expired, true);
  });

  test("last use and the user's last sighting are written at most once a minute", async () => {
    const user = await createUser(db, 'leo@example.org', 'member', { email: 'leo@example.org' });
    const token = await issueToken(db, user.id, 'leo');
    const stamp = async () =>
      (
        await db
          .selectFrom('tokens')
          .select('last_used_at')
          .where('description', '=', 'leo')
          .executeTakeFirstOrThrow()
      ).last_used_at;
    const seen = async () =>
      (
        await db
          .selectFrom('users')
          .select('last_seen_at')
          .where('id', '=', user.id)
          .executeTakeFirstOrThrow()
      ).last_seen_at;
    assert.equal(await stamp(), null);
    assert.equal((await call(token, 'GET', '/v1/whoami')).statusCode, 200);
    const first = await stamp();
    assert.ok(first);
    assert.equal(await seen(), first);

    // Half a minute ago: another request writes nothing.
    const recent = new Date(Date.now() - LAST_USED_EVERY_MS / 2).toISOString();
    await db.updateTable('tokens').set({ last_used_at: recent }).where('description', '=', 'leo').execute();
    await call(token, 'GET', '/v1/whoami');
    assert.equal(await stamp(), recent);

    // Over a minute ago: written again.
    const stale = new Date(Date.now() - LAST_USED_EVERY_MS - 1000).toISOString();
    await db.updateTable('tokens').set({ last_used_at: stale }).where('description', '=', 'leo').execute();
    await call(token, 'GET', '/v1/whoami');
    assert.ok(Date.parse((await stamp())!) > Date.parse(stale) + 1000);
    assert.equal(await seen(), await stamp());
  });

  test('an unknown or missing token is refused', async () => {
    assert.equal((await api.inject({ method: 'GET', url: '/v1/tokens' })).statusCode, 401);
    const wrong = await call('petri_nope', 'GET', '/v1/tokens');
    assert.equal(wrong.statusCode, 401);
    assert.match(wrong.json().error.message, /invalid API token/);
    assert.equal((await call('petri_nope', 'POST', '/v1/tokens', { name: 'x' })).statusCode, 401);
  });
});

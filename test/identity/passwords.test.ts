// Local accounts: an invitation accepted with a password (through the API or the invitation
// page's form) makes the account once; used, expired and unknown links are refused with a
// clear answer and on the record; e-mail and password sign-ins, limited per address and per
// name; a password change ends the other sessions. And the parts alone: scrypt hashes in PHC
// form checked in constant time, and the sliding window of failed attempts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { setAnonymousRefusalBudget } from '../../src/domain/audit.js';
import { bootstrapAdmin, createUser, issueToken } from '../../src/domain/auth.js';
import { createInvitation } from '../../src/domain/invitations.js';
import { hashPassword, verifyNothing, verifyPassword } from '../../src/identity/passwords.js';
import { SignInAttempts, TooManyAttempts } from '../../src/identity/rate-limit.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { User } from '../../src/store/schema.js';
import { buildTestApi } from '../api/test-api.js';

describe('passwords', () => {
  test('scrypt hashes in PHC form: salted, verified, and a changed hash or password fails', async () => {
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    assert.match(a, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.notEqual(a, b, 'each hash has its own salt');
    assert.equal(await verifyPassword('correct horse battery', a), true);
    assert.equal(await verifyPassword('correct horse batterY', a), false);
    assert.equal(await verifyPassword('', a), false);
    const parts = a.split('$');
    const flipped = parts[4]!.startsWith('A') ? `B${parts[4]!.slice(1)}` : `A${parts[4]!.slice(1)}`;
    assert.equal(
      await verifyPassword('correct horse battery', [...parts.slice(0, 4), flipped].join('$')),
      false,
    );
    // Hashes it cannot read, or that would cost gigabytes, are a mismatch, not a crash.
    for (const bad of ['', 'plain', '$scrypt$ln=30,r=8,p=1$AAAA$AAAA', '$md5$x', `${a}$extra`]) {
      assert.equal(await verifyPassword('correct horse battery', bad), false, bad);
    }
    // Unicode: the same text typed in either normal form is the same password.
    const nfc = await hashPassword('caf\u00e9 au lait!');
    assert.equal(await verifyPassword('cafe\u0301 au lait!', nfc), true);
    await verifyNothing('anything');
  });

  test('an argon2 hash is checked where Node has argon2, else refused with what to do', async () => {
    const hash = '$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG';
    const crypto = (await import('node:crypto')) as unknown as { argon2?: unknown };
    if (crypto.argon2) {
      assert.equal(await verifyPassword('wrong', hash), false);
    } else {
      await assert.rejects(
        verifyPassword('password', hash),
        /argon2 hash.*ask an admin to reset the password/,
      );
    }
  });

  test('failed attempts: a sliding window per address and per name; success clears the name', () => {
    let now = 1_000_000;
    const attempts = new SignInAttempts({ perAddress: 3, perUser: 2, windowSeconds: 60 }, () => now);
    attempts.fail('10.0.0.1', 'Ana');
    attempts.fail('10.0.0.2', ' ana ');
    // The name (in any case) is at its limit, wherever from.
    assert.throws(
      () => attempts.check('10.0.0.3', 'ANA'),
      (err: unknown) =>
        err instanceof TooManyAttempts && err.retryAfterSeconds === 60 && /in 1 minute/.test(err.message),
    );
    now += 30_000;
    assert.throws(
      () => attempts.check('10.0.0.3', 'ana'),
      (err: unknown) => (err as TooManyAttempts).retryAfterSeconds === 30,
    );
    now += 30_001;
    attempts.check('10.0.0.3', 'ana'); // the first failure aged out
    attempts.fail('10.0.0.1', 'bo');
    attempts.fail('10.0.0.1', 'cy');
    attempts.check('10.0.0.1', 'dee'); // 2 within the window (the first aged out)
    attempts.fail('10.0.0.1', 'dee');
    assert.throws(() => attempts.check('10.0.0.1', 'dee'), TooManyAttempts, 'the address is at 3');
    attempts.check('10.0.0.9', 'bo');
    attempts.succeed('bo');
    attempts.fail('10.0.0.9', 'bo');
    attempts.check('10.0.0.8', 'bo'); // one failure since the success
  });
});

describe('local accounts and invitations', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let inviter: User;
  let address = 0;
  const nextAddress = () => `198.51.100.${++address}`;

  const post = (url: string, payload: object, remoteAddress = nextAddress(), token?: string) =>
    api.inject({
      method: 'POST',
      url,
      payload,
      remoteAddress,
      ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    });
  const whoami = (token: string) =>
    api.inject({ method: 'GET', url: '/v1/whoami', headers: { authorization: `Bearer ${token}` } });
  const refusals = (target: string) =>
    db
      .selectFrom('audit_events')
      .select(['actor', 'detail'])
      .where('action', '=', 'auth.refused')
      .where('target', '=', target)
      .execute();
  const invite = async (email: string, role: User['role'] = 'member') =>
    (await createInvitation(db, inviter, { email, role })).secret;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-passwords-'));
    db = await openStore(new DataPaths(dir).store);
    await bootstrapAdmin(db);
    inviter = await db.selectFrom('users').selectAll().where('name', '=', 'admin').executeTakeFirstOrThrow();
    await db.updateTable('users').set({ email: 'root@example.org' }).where('id', '=', inviter.id).execute();
    inviter = { ...inviter, email: 'root@example.org' };
    setAnonymousRefusalBudget({ perAddress: 1000, total: 10_000 });
    api = await buildTestApi(dir, db, { httpPort: 8081, apiHost: 'petri.example.org' });
  });
  after(async () => {
    setAnonymousRefusalBudget({ perAddress: 10, total: 60 });
    await api?.close();
    await db?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('accepting an invitation makes the local account and signs it in; a second use is refused and audited', async () => {
    const secret = await invite('lea@example.org', 'auditor');
    const res = await post('/v1/auth/invitations/accept', {
      invitation: `http://petri.example.org:8081/invite/${secret}`,
      password: 'lea-long-password',
    });
    assert.equal(res.statusCode, 200, res.body);
    const { token, user } = res.json();
    assert.deepEqual(user, { name: 'lea@example.org', role: 'auditor', email: 'lea@example.org' });
    assert.equal((await whoami(token)).statusCode, 200);
    const row = await db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', 'lea@example.org')
      .executeTakeFirstOrThrow();
    assert.equal(row.provider, 'local');
    assert.match(row.password_hash ?? '', /^\$scrypt\$/);

    const again = await post('/v1/auth/invitations/accept', {
      invitation: secret,
      password: 'another-long-password',
    });
    assert.equal(again.statusCode, 403, again.body);
    assert.match(
      again.json().error.message,
      /this invitation was used on \d{4}-\d\d-\d\d; an invitation works once/,
    );
    assert.ok((await refusals('invitation')).some((r) => /was used/.test(r.detail)));
    // The first password stands.
    const signIn = await post('/v1/auth/password', {
      email: 'lea@example.org',
      password: 'lea-long-password',
    });
    assert.equal(signIn.statusCode, 200, signIn.body);
  });

  test('two accepts of one invitation at once make one account', async () => {
    const secret = await invite('max@example.org');
    const answers = await Promise.all(
      [1, 2, 3].map((i) =>
        post('/v1/auth/invitations/accept', { invitation: secret, password: `max-password-${i}` }),
      ),
    );
    assert.deepEqual(answers.map((a) => a.statusCode).sort(), [200, 403, 403]);
    const rows = await db.selectFrom('users').select('id').where('email', '=', 'max@example.org').execute();
    assert.equal(rows.length, 1);
  });

  test('an expired invitation, an unknown link and a short password are refused with what to do', async () => {
    const secret = await invite('ned@example.org');
    const short = await post('/v1/auth/invitations/accept', { invitation: secret, password: 'short' });
    assert.equal(short.statusCode, 400, short.body);
    assert.match(short.json().error.message, /at least 10 characters/);
    await db
      .updateTable('invitations')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('email', '=', 'ned@example.org')
      .execute();
    const expired = await post('/v1/auth/invitations/accept', {
      invitation: secret,
      password: 'ned-long-password',
    });
    assert.equal(expired.statusCode, 403, expired.body);
    assert.match(expired.json().error.message, /this invitation expired on .*ask an admin for a new one/);
    const unknown = await post('/v1/auth/invitations/accept', {
      invitation: 'not-a-real-secret',
      password: 'x-long-password',
    });
    assert.equal(unknown.statusCode, 404, unknown.body);
    assert.match(unknown.json().error.message, /not valid.*ask an admin for a new one/);
    const audited = await refusals('invitation');
    assert.ok(audited.some((r) => /expired/.test(r.detail)));
    assert.ok(audited.some((r) => /unknown invitation/.test(r.detail)));
    assert.equal(
      await db.selectFrom('users').select('id').where('email', '=', 'ned@example.org').executeTakeFirst(),
      undefined,
    );
  });

  test('a password sign-in: wrong password and unknown e-mail answer alike, each on the record; then 429 with when to retry', async () => {
    const secret = await invite('ola@example.org');
    assert.equal(
      (await post('/v1/auth/invitations/accept', { invitation: secret, password: 'ola-long-password' }))
        .statusCode,
      200,
    );
    const ok = await post('/v1/auth/password', { email: ' OLA@example.org ', password: 'ola-long-password' });
    assert.equal(ok.statusCode, 200, ok.body);
    const wrong = await post('/v1/auth/password', { email: 'ola@example.org', password: 'not-her-password' });
    const unknown = await post('/v1/auth/password', {
      email: 'nobody@example.org',
      password: 'not-her-password',
    });
    assert.equal(wrong.statusCode, 401);
    assert.equal(unknown.statusCode, 401);
    assert.equal(wrong.json().error.message, unknown.json().error.message);
    const empty = await post('/v1/auth/password', { email: 'ola@example.org', password: '' });
    assert.equal(empty.statusCode, 401);
    const audited = await refusals('local');
    assert.ok(audited.some((r) => r.actor === 'ola@example.org' && /wrong password/.test(r.detail)));
    assert.ok(audited.some((r) => r.actor === 'nobody@example.org' && /unknown account/.test(r.detail)));
    for (let i = 0; i < 3; i++)
      await post('/v1/auth/password', { email: 'ola@example.org', password: `guess-${i}` });
    const limited = await post('/v1/auth/password', {
      email: 'ola@example.org',
      password: 'ola-long-password',
    });
    assert.equal(limited.statusCode, 429, limited.body);
    assert.match(limited.json().error.message, /try again in \d+ minutes?/);
    assert.ok(Number(limited.headers['retry-after']) > 0);
  });

  test('a disabled account and an LDAP account cannot use the password sign-in', async () => {
    const secret = await invite('pia@example.org');
    assert.equal(
      (await post('/v1/auth/invitations/accept', { invitation: secret, password: 'pia-long-password' }))
        .statusCode,
      200,
    );
    await db
      .updateTable('users')
      .set({ disabled_at: new Date().toISOString() })
      .where('email', '=', 'pia@example.org')
      .execute();
    const res = await post('/v1/auth/password', { email: 'pia@example.org', password: 'pia-long-password' });
    assert.equal(res.statusCode, 403, res.body);
    assert.match(res.json().error.message, /disabled by an admin/);
    await createUser(db, 'quy@example.org', 'member', {
      email: 'quy@example.org',
      provider: 'ldap',
      subject: 'uid=quy',
      password_hash: await hashPassword('quy-long-password'),
    });
    const ldap = await post('/v1/auth/password', { email: 'quy@example.org', password: 'quy-long-password' });
    assert.equal(ldap.statusCode, 401, 'only local accounts sign in with a password');
  });

  test('changing the password needs the current one and ends the other sessions', async () => {
    const secret = await invite('ray@example.org');
    const first = (
      await post('/v1/auth/invitations/accept', { invitation: secret, password: 'ray-long-password' })
    ).json().token;
    const second = (
      await post('/v1/auth/password', { email: 'ray@example.org', password: 'ray-long-password' })
    ).json().token;
    const wrong = await post(
      '/v1/auth/password/change',
      { current: 'not-it-at-all', new: 'ray-new-password' },
      nextAddress(),
      second,
    );
    assert.equal(wrong.statusCode, 401, wrong.body);
    const anonymous = await post('/v1/auth/password/change', {
      current: 'ray-long-password',
      new: 'ray-new-password',
    });
    assert.equal(anonymous.statusCode, 401);
    const res = await post(
      '/v1/auth/password/change',
      { current: 'ray-long-password', new: 'ray-new-password' },
      nextAddress(),
      second,
    );
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { sessionsEnded: 1 });
    assert.equal((await whoami(first)).statusCode, 401, 'the other session ended');
    assert.equal((await whoami(second)).statusCode, 200, 'this one goes on');
    assert.equal(
      (await post('/v1/auth/password', { email: 'ray@example.org', password: 'ray-long-password' }))
        .statusCode,
      401,
    );
    assert.equal(
      (await post('/v1/auth/password', { email: 'ray@example.org', password: 'ray-new-password' }))
        .statusCode,
      200,
    );
  });

  test('the first admin (a token, no password) sets a first password once, then signs in with it', async () => {
    const token = await issueToken(db, inviter.id, 'first admin');
    const first = await post(
      '/v1/auth/password/change',
      { current: '', new: 'root-long-password' },
      nextAddress(),
      token,
    );
    assert.equal(first.statusCode, 200, first.body);
    const signIn = await post('/v1/auth/password', {
      email: 'root@example.org',
      password: 'root-long-password',
    });
    assert.equal(signIn.statusCode, 200, signIn.body);
    assert.equal(signIn.json().user.role, 'admin');
    const again = await post(
      '/v1/auth/password/change',
      { current: '', new: 'other-long-password' },
      nextAddress(),
      token,
    );
    assert.equal(again.statusCode, 401, 'the second time needs the current password');
    const sso = await createUser(db, 'una@example.org', 'member', {
      email: 'una@example.org',
      provider: 'oidc',
      subject: 'u',
    });
    // Checked with the provider just now (this server has none to ask): the answer is about
    // the password, not the re-check.
    await db
      .updateTable('users')
      .set({ checked_at: new Date().toISOString() })
      .where('id', '=', sso.id)
      .execute();
    const ssoToken = await issueToken(db, sso.id, 'sso');
    const refused = await post(
      '/v1/auth/password/change',
      { current: '', new: 'una-long-password' },
      nextAddress(),
      ssoToken,
    );
    assert.equal(refused.statusCode, 400);
    assert.match(refused.json().error.message, /signs in with single sign-on: change your password there/);
    // Due a re-check with a provider this server does not offer: refused, never unchecked,
    // and not revoked (nothing says the person is gone).
    await db.updateTable('users').set({ checked_at: null }).where('id', '=', sso.id).execute();
    const unchecked = await api.inject({
      method: 'GET',
      url: '/v1/whoami',
      headers: { authorization: `Bearer ${ssoToken}` },
    });
    assert.equal(unchecked.statusCode, 401, unchecked.body);
    assert.match(
      unchecked.json().error.message,
      /single sign-on \(identity\.oidc\), which this Petri no longer offers/,
    );
    const row = await db
      .selectFrom('tokens')
      .select('revoked_at')
      .where('user_id', '=', sso.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.revoked_at, null);
  });

  test('the invitation page says who invited whom to what, escaped, and its form makes the account once', async () => {
    const secret = await invite('s&m@example.org', 'member');
    const url = `/invite/${secret}`;
    const page = await api.inject({ method: 'GET', url, remoteAddress: nextAddress() });
    assert.equal(page.statusCode, 200, page.body);
    assert.match(page.headers['content-type'] as string, /^text\/html/);
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.match(page.headers['content-security-policy'] as string, /default-src 'none'/);
    assert.match(
      page.body,
      /<b>root@example\.org<\/b> invited <b>s&amp;m@example\.org<\/b> to Petri as member/,
    );
    assert.ok(!page.body.includes('s&m@'), 'the e-mail is escaped');
    assert.ok(!/<script/i.test(page.body), 'no script at all');
    assert.ok(!page.body.includes('single sign-on'), 'no SSO offered where none is configured');
    assert.match(page.body, /<form method="post">/);

    const form = (body: string) =>
      api.inject({
        method: 'POST',
        url,
        payload: body,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        remoteAddress: nextAddress(),
      });
    const differ = await form('password=first-long-password&confirm=other-long-password');
    assert.equal(differ.statusCode, 400);
    assert.match(differ.body, /the two passwords differ/);
    const short = await form('password=short&confirm=short');
    assert.equal(short.statusCode, 400);
    assert.match(short.body, /at least 10 characters/);
    const done = await form('password=sam-long-password&confirm=sam-long-password');
    assert.equal(done.statusCode, 200, done.body);
    assert.match(done.body, /Your account is ready/);
    assert.match(
      done.body,
      /petri login --url http:\/\/petri\.example\.org:8081 --email s&amp;m@example\.org/,
    );
    const signIn = await post('/v1/auth/password', {
      email: 's&m@example.org',
      password: 'sam-long-password',
    });
    assert.equal(signIn.statusCode, 200, signIn.body);

    const used = await api.inject({ method: 'GET', url, remoteAddress: nextAddress() });
    assert.equal(used.statusCode, 403);
    assert.match(used.body, /This invitation cannot be used/);
    assert.match(used.body, /an invitation works once/);
    const twice = await form('password=sam-other-password&confirm=sam-other-password');
    assert.equal(twice.statusCode, 403);
    const unknown = await api.inject({
      method: 'GET',
      url: '/invite/%3Cscript%3E',
      remoteAddress: nextAddress(),
    });
    assert.equal(unknown.statusCode, 404);
    assert.match(unknown.body, /This invitation link does not work/);
    assert.ok(!unknown.body.includes('<script>'));
  });

  test('the API itself still refuses form bodies', async () => {
    const res = await api.inject({
      method: 'POST',
      url: '/v1/auth/password',
      payload: 'email=a@example.org&password=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(res.statusCode, 415, res.body);
  });
  test('through the router (loopback) each client is limited on its own; elsewhere X-Forwarded-For is not believed', async () => {
    const attempt = (n: number, remoteAddress: string, forwardedFor: string) =>
      api.inject({
        method: 'POST',
        url: '/v1/auth/password',
        payload: { email: `guess-${n}@example.org`, password: 'wrong-password' },
        remoteAddress,
        headers: { 'x-forwarded-for': forwardedFor },
      });
    for (let i = 0; i < 10; i++)
      assert.equal((await attempt(i, '127.0.0.1', '203.0.113.50')).statusCode, 401);
    assert.equal((await attempt(10, '127.0.0.1', '203.0.113.50')).statusCode, 429);
    assert.equal(
      (await attempt(11, '127.0.0.1', '203.0.113.51')).statusCode,
      401,
      'another client of the router',
    );
    const audited = await db
      .selectFrom('audit_events')
      .select('source_ip')
      .where('action', '=', 'auth.refused')
      .where('actor', '=', 'guess-0@example.org')
      .executeTakeFirstOrThrow();
    assert.equal(audited.source_ip, '203.0.113.50');
    // A client not on loopback cannot pick its address by a header.
    for (let i = 20; i < 30; i++)
      assert.equal((await attempt(i, '198.51.100.250', `192.0.2.${i}`)).statusCode, 401);
    assert.equal((await attempt(30, '198.51.100.250', '192.0.2.99')).statusCode, 429);
  });
});

// `petri users` through the API: the list (admins and auditors), invitations (single use,
// 7 days, stored as a hash), disabling (every token refused at once) and enabling, platform
// roles (never the last admin's), bots for CI, and whoami.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { bootstrapAdmin, createUser, hashToken, issueToken } from '../../src/domain/auth.js';
import { consumeInvitation, invitationBySecret, openInvitationFor } from '../../src/domain/invitations.js';
import { signIn } from '../../src/domain/sign-in.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from './test-api.js';

const DAY = 86_400_000;

describe('users', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let admin: string;
  let member: string;
  let auditor: string;
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const call = (token: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    api.inject({ method, url, headers: as(token), ...(payload ? { payload } : {}) });
  const secretOf = (link: string) => link.slice(link.lastIndexOf('/') + 1);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-users-'));
    db = await openStore(new DataPaths(dir).store);
    admin = (await bootstrapAdmin(db))!;
    const ana = await createUser(db, 'ana@example.org', 'member', {
      email: 'ana@example.org',
      provider: 'oidc',
    });
    member = await issueToken(db, ana.id, 'laptop', { kind: 'session' });
    const ida = await createUser(db, 'ida@example.org', 'auditor', {
      email: 'ida@example.org',
      provider: 'ldap',
    });
    auditor = await issueToken(db, ida.id, 'audit');
    // Checked with their providers just now (this server has none to ask; see identity/index.ts).
    await db
      .updateTable('users')
      .set({ checked_at: new Date().toISOString() })
      .where('id', 'in', [ana.id, ida.id])
      .execute();
    await db
      .insertInto('teams')
      .values({ name: 'labs', personal_of: null, created_at: new Date().toISOString() })
      .execute();
    api = await buildTestApi(dir, db, { httpPort: 8081, apiHost: 'petri.example.org' });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('admins and auditors list everyone with role, provider, kind, last seen, apps and disabled; members may not', async () => {
    await call(member, 'GET', '/v1/whoami'); // ana has been seen
    const res = await call(auditor, 'GET', '/v1/users');
    assert.equal(res.statusCode, 200, res.body);
    const users = res.json().users as Record<string, unknown>[];
    const ana = users.find((u) => u.email === 'ana@example.org')!;
    assert.equal(ana.role, 'member');
    assert.equal(ana.provider, 'oidc');
    assert.equal(ana.kind, 'person');
    assert.equal(ana.apps, 0);
    assert.equal(ana.disabled, false);
    assert.ok(typeof ana.lastSeenAt === 'string');
    assert.ok(users.some((u) => u.name === 'admin' && u.role === 'admin'));
    assert.ok(!res.body.includes('password') && !res.body.includes('subject'));
    assert.equal((await call(admin, 'GET', '/v1/users')).statusCode, 200);
    const refused = await call(member, 'GET', '/v1/users');
    assert.equal(refused.statusCode, 403);
  });

  test('an invitation: a link on the public API URL, valid 7 days, stored as a hash, used once', async () => {
    const res = await call(admin, 'POST', '/v1/users/invitations', {
      email: ' Bea@Example.org ',
      role: 'auditor',
      team: 'labs',
      teamRole: 'viewer',
    });
    assert.equal(res.statusCode, 201, res.body);
    const { invitation, link } = res.json();
    assert.match(link, /^http:\/\/petri\.example\.org:8081\/invite\/[A-Za-z0-9_-]{32}$/);
    assert.equal(invitation.email, 'bea@example.org');
    assert.equal(invitation.role, 'auditor');
    assert.equal(invitation.team, 'labs');
    assert.equal(invitation.teamRole, 'viewer');
    assert.equal(invitation.createdBy, 'admin');
    const days = (Date.parse(invitation.expiresAt) - Date.now()) / DAY;
    assert.ok(days > 6.99 && days <= 7, `${days}`);
    const secret = secretOf(link);
    const row = await db
      .selectFrom('invitations')
      .selectAll()
      .where('id', '=', invitation.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.token_hash, hashToken(secret));
    assert.ok(!JSON.stringify(row).includes(secret));

    const open = await call(auditor, 'GET', '/v1/users/invitations');
    assert.equal(open.statusCode, 200);
    assert.deepEqual(
      open.json().invitations.map((i: { email: string }) => i.email),
      ['bea@example.org'],
    );
    assert.ok(!open.body.includes(secret));

    // The sign-in with that e-mail consumes it: the role and the team come with it.
    const found = await invitationBySecret(db, secret);
    assert.equal((await openInvitationFor(db, 'BEA@example.org'))?.id, found.id);
    // Someone else holding the link cannot use it for their own address.
    const mallory = await createUser(db, 'mallory@example.org', 'member', { email: 'mallory@example.org' });
    await assert.rejects(
      db.transaction().execute((tx) => consumeInvitation(tx, found, mallory.id)),
      /this invitation is for bea@example.org/,
    );
    assert.equal(
      (await db.selectFrom('users').select('role').where('id', '=', mallory.id).executeTakeFirstOrThrow())
        .role,
      'member',
    );
    const bea = await createUser(db, 'bea@example.org', 'member', { email: 'bea@example.org' });
    await db.transaction().execute((tx) => consumeInvitation(tx, found, bea.id));
    const after = await db.selectFrom('users').selectAll().where('id', '=', bea.id).executeTakeFirstOrThrow();
    assert.equal(after.role, 'auditor');
    const membership = await db
      .selectFrom('team_members')
      .innerJoin('teams', 'teams.id', 'team_members.team_id')
      .select(['teams.name', 'team_members.role'])
      .where('user_id', '=', bea.id)
      .where('teams.name', '=', 'labs')
      .executeTakeFirst();
    assert.deepEqual(membership, { name: 'labs', role: 'viewer' });

    // Twice: refused, by the link and by the stale row a racing sign-in would hold.
    await assert.rejects(
      invitationBySecret(db, secret),
      /this invitation was used on \d{4}-\d\d-\d\d; an invitation works once/,
    );
    await assert.rejects(
      db.transaction().execute((tx) => consumeInvitation(tx, found, bea.id)),
      /used already/,
    );
    assert.equal(await openInvitationFor(db, 'bea@example.org'), undefined);
    assert.deepEqual((await call(admin, 'GET', '/v1/users/invitations')).json().invitations, []);
  });

  test('an expired invitation is refused with its date; an unknown link says to ask for a new one', async () => {
    const res = await call(admin, 'POST', '/v1/users/invitations', { email: 'cy@example.org' });
    assert.equal(res.statusCode, 201);
    assert.equal(res.json().invitation.role, 'member');
    const secret = secretOf(res.json().link);
    const past = new Date(Date.now() - DAY).toISOString();
    await db
      .updateTable('invitations')
      .set({ expires_at: past })
      .where('email', '=', 'cy@example.org')
      .execute();
    await assert.rejects(
      invitationBySecret(db, secret),
      new RegExp(`this invitation expired on ${past.slice(0, 10)}; ask an admin for a new one`),
    );
    assert.equal(await openInvitationFor(db, 'cy@example.org'), undefined);
    await assert.rejects(invitationBySecret(db, 'not-a-real-secret'), /not valid/);
  });

  test('inviting again replaces the open invitation: the older link stops working', async () => {
    const first = (await call(admin, 'POST', '/v1/users/invitations', { email: 'dee@example.org' })).json();
    const second = (await call(admin, 'POST', '/v1/users/invitations', { email: 'dee@example.org' })).json();
    await assert.rejects(invitationBySecret(db, secretOf(first.link)), /not valid/);
    assert.equal((await invitationBySecret(db, secretOf(second.link))).email, 'dee@example.org');
    const cancel = await call(admin, 'DELETE', `/v1/users/invitations/${second.invitation.id}`);
    assert.equal(cancel.statusCode, 200);
    assert.equal(cancel.json().invitation.email, 'dee@example.org');
    await assert.rejects(invitationBySecret(db, secretOf(second.link)), /not valid/);
    assert.equal(
      (await call(admin, 'DELETE', `/v1/users/invitations/${second.invitation.id}`)).statusCode,
      404,
    );
  });

  test('a sign-in without an invitation is refused; with one it makes the account once', async () => {
    const policy = {};
    await assert.rejects(
      signIn(db, { provider: 'oidc', subject: 'eve-1', email: 'eve@example.org', groups: [] }, policy),
      /no invitation for eve@example.org/,
    );
    await call(admin, 'POST', '/v1/users/invitations', { email: 'eve@example.org', team: 'labs' });
    const eve = await signIn(
      db,
      { provider: 'oidc', subject: 'eve-1', email: 'Eve@example.org', groups: [] },
      policy,
    );
    assert.equal(eve.email, 'eve@example.org');
    assert.equal(await openInvitationFor(db, 'eve@example.org'), undefined);
  });

  test('invitations refuse bad input and are for admins only', async () => {
    const cases: [object, number, RegExp][] = [
      [{ email: 'not-an-email' }, 400, /not an e-mail address/],
      [{ email: 'a@b' }, 400, /not an e-mail address/],
      [{ email: 'x@example.org', role: 'root' }, 400, /role/],
      [{ email: 'x@example.org', teamRole: 'admin' }, 400, /a team role needs a team/],
      [{ email: 'x@example.org', team: 'nope' }, 404, /no team 'nope'/],
      [{ email: 'ANA@example.org' }, 409, /has an account already/],
      [{ email: 'x@example.org', extra: 1 }, 400, /unknown body field/],
    ];
    for (const [body, status, message] of cases) {
      const res = await call(admin, 'POST', '/v1/users/invitations', body);
      assert.equal(res.statusCode, status, `${JSON.stringify(body)}: ${res.body}`);
      assert.match(res.json().error.message, message);
    }
    assert.equal(
      (await call(member, 'POST', '/v1/users/invitations', { email: 'x@example.org' })).statusCode,
      403,
    );
    assert.equal(
      (await call(auditor, 'POST', '/v1/users/invitations', { email: 'x@example.org' })).statusCode,
      403,
    );
  });

  test('disabling revokes every token at once; the old token is refused naming the reason; enabling lets them sign in again', async () => {
    const fay = await createUser(db, 'fay@example.org', 'member', { email: 'fay@example.org' });
    const session = await issueToken(db, fay.id, 'laptop', { kind: 'session' });
    const script = await issueToken(db, fay.id, 'script');
    assert.equal((await call(session, 'GET', '/v1/apps')).statusCode, 200);

    assert.equal((await call(member, 'POST', '/v1/users/fay@example.org/disable')).statusCode, 403);
    const res = await call(admin, 'POST', '/v1/users/FAY@example.org/disable');
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().tokensRevoked, 2);
    assert.equal(res.json().user.disabled, true);
    for (const token of [session, script]) {
      const refused = await call(token, 'GET', '/v1/apps');
      assert.equal(refused.statusCode, 401);
      assert.match(refused.json().error.message, /^your account was disabled by an admin on \d{4}-\d\d-\d\d/);
    }
    const event = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'user.disable')
      .where('target', '=', 'fay@example.org')
      .executeTakeFirst();
    assert.ok(event, 'the disabling is on the record');
    assert.equal(event.actor, 'admin');
    // A token made for a disabled user (by a racing sign-in) is refused too.
    const late = await issueToken(db, fay.id, 'late');
    assert.equal((await call(late, 'GET', '/v1/apps')).statusCode, 401);
    // Sign-in refuses them.
    await db
      .updateTable('users')
      .set({ provider: 'oidc', subject: 'fay-1', checked_at: new Date().toISOString() })
      .where('id', '=', fay.id)
      .execute();
    await assert.rejects(
      signIn(db, { provider: 'oidc', subject: 'fay-1', email: 'fay@example.org', groups: [] }, {}),
      /disabled/,
    );

    const enabled = await call(admin, 'POST', '/v1/users/fay@example.org/enable');
    assert.equal(enabled.statusCode, 200);
    assert.equal(enabled.json().user.disabled, false);
    const old = await call(session, 'GET', '/v1/apps');
    assert.equal(old.statusCode, 401, 'revoked tokens stay revoked');
    assert.match(old.json().error.message, /revoked/);
    const fresh = await issueToken(db, fay.id, 'again', { kind: 'session' });
    assert.equal((await call(fresh, 'GET', '/v1/apps')).statusCode, 200);
  });

  test('an admin cannot disable themselves; unknown users are 404', async () => {
    const self = await call(admin, 'POST', '/v1/users/admin/disable');
    assert.equal(self.statusCode, 409);
    assert.match(self.json().error.message, /your own account/);
    assert.equal((await call(admin, 'POST', '/v1/users/nobody@example.org/disable')).statusCode, 404);
    assert.equal((await call(admin, 'POST', '/v1/users/nobody@example.org/enable')).statusCode, 404);
  });

  test('platform roles: admins change them, never demoting the last admin, never a bot', async () => {
    const gus = await createUser(db, 'gus@example.org', 'member', { email: 'gus@example.org' });
    const gusToken = await issueToken(db, gus.id, 'gus');
    assert.equal((await call(gusToken, 'GET', '/v1/users')).statusCode, 403);
    const res = await call(admin, 'PATCH', '/v1/users/gus@example.org', { role: 'auditor' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().user.role, 'auditor');
    assert.equal((await call(gusToken, 'GET', '/v1/users')).statusCode, 200, 'the new role counts at once');
    assert.equal(
      (await call(gusToken, 'PATCH', '/v1/users/gus@example.org', { role: 'admin' })).statusCode,
      403,
    );

    const last = await call(admin, 'PATCH', '/v1/users/admin', { role: 'member' });
    assert.equal(last.statusCode, 409);
    assert.match(last.json().error.message, /last admin/);
    assert.equal((await call(admin, 'PATCH', '/v1/users/admin', { role: 'superuser' })).statusCode, 400);

    // With a second admin, the first may step down.
    assert.equal(
      (await call(admin, 'PATCH', '/v1/users/gus@example.org', { role: 'admin' })).statusCode,
      200,
    );
    const down = await call(gusToken, 'PATCH', '/v1/users/gus@example.org', { role: 'member' });
    assert.equal(down.statusCode, 200);
    assert.equal((await call(gusToken, 'GET', '/v1/users')).statusCode, 403);
  });

  test('a bot: in its team with its role, its token printed once, never signing in, its role fixed', async () => {
    const res = await call(admin, 'POST', '/v1/users/bots', {
      name: 'ci-deploy',
      team: 'labs',
      role: 'member',
    });
    assert.equal(res.statusCode, 201, res.body);
    const { user, token, secret } = res.json();
    assert.equal(user.kind, 'bot');
    assert.equal(user.provider, 'bot');
    assert.equal(user.role, 'member');
    assert.equal(user.email, null);
    assert.equal(token.kind, 'bot');
    assert.equal(token.expiresAt, null);

    const who = await call(secret, 'GET', '/v1/whoami');
    assert.equal(who.statusCode, 200);
    assert.deepEqual(who.json().user, {
      name: 'ci-deploy',
      role: 'member',
      email: null,
      kind: 'bot',
      provider: 'bot',
      teams: [{ name: 'labs', role: 'member', personal: false }],
    });
    assert.equal((await call(secret, 'GET', '/v1/users')).statusCode, 403);
    // No personal team for a bot.
    assert.equal(
      await db.selectFrom('teams').select('id').where('name', '=', 'ci-deploy').executeTakeFirst(),
      undefined,
    );

    // Bots never sign in, whatever claims name them.
    await db.updateTable('users').set({ subject: 'ci-deploy' }).where('name', '=', 'ci-deploy').execute();
    await assert.rejects(
      signIn(
        db,
        { provider: 'bot' as 'oidc', subject: 'ci-deploy', email: 'ci@example.org', groups: [] },
        {},
      ),
      /bot/,
    );

    // Nor through the sign-in routes: by its name and any password, or by setting itself one.
    for (const body of [
      { email: 'ci-deploy', password: 'whatever-it-is' },
      { email: 'ci-deploy@example.org', password: 'whatever-it-is' },
    ]) {
      const res = await api.inject({ method: 'POST', url: '/v1/auth/password', payload: body });
      assert.ok([400, 401, 403].includes(res.statusCode), `${res.statusCode} ${res.body}`);
      assert.ok(!res.body.includes('petri_'));
    }
    const ldap = await api.inject({
      method: 'POST',
      url: '/v1/auth/ldap',
      payload: { username: 'ci-deploy', password: 'whatever-it-is' },
    });
    assert.ok(ldap.statusCode >= 400 && !ldap.body.includes('petri_'), ldap.body);
    const setOwn = await call(secret, 'POST', '/v1/auth/password/change', {
      current: '',
      new: 'a-long-enough-password',
    });
    assert.equal(setOwn.statusCode, 400, setOwn.body);
    assert.equal(
      (
        await db
          .selectFrom('users')
          .select('password_hash')
          .where('name', '=', 'ci-deploy')
          .executeTakeFirstOrThrow()
      ).password_hash,
      null,
    );

    const role = await call(admin, 'PATCH', '/v1/users/ci-deploy', { role: 'admin' });
    assert.equal(role.statusCode, 400);
    assert.match(role.json().error.message, /is a bot/);

    // An admin makes it a new token; a member may not, nor for a person.
    const more = await call(admin, 'POST', '/v1/tokens', {
      name: 'rotated',
      bot: 'ci-deploy',
      expires: '30d',
    });
    assert.equal(more.statusCode, 201, more.body);
    assert.equal(more.json().user, 'ci-deploy');
    assert.equal(more.json().token.kind, 'bot');
    assert.equal((await call(more.json().secret, 'GET', '/v1/whoami')).json().user.name, 'ci-deploy');
    assert.equal((await call(member, 'POST', '/v1/tokens', { name: 'x', bot: 'ci-deploy' })).statusCode, 403);
    // The bot cannot make itself more tokens (they would outlive the revocation of a leaked one).
    const selfMade = await call(secret, 'POST', '/v1/tokens', { name: 'persist' });
    assert.equal(selfMade.statusCode, 403);
    assert.match(selfMade.json().error.message, /a bot's tokens are made by an admin/);
    assert.equal(
      (await call(admin, 'POST', '/v1/tokens', { name: 'x', bot: 'ana@example.org' })).statusCode,
      400,
    );

    // Disabling the bot stops its tokens.
    assert.equal((await call(admin, 'POST', '/v1/users/ci-deploy/disable')).json().tokensRevoked, 2);
    assert.equal((await call(secret, 'GET', '/v1/whoami')).statusCode, 401);
  });

  test('bots: names, teams and roles are checked; admins only', async () => {
    const cases: [object, number, RegExp][] = [
      [{ name: 'Bad Name', team: 'labs', role: 'member' }, 400, /a bot's name/],
      [{ name: 'bots', team: 'labs', role: 'member' }, 400, /a bot's name/],
      [{ name: 'x@y.org', team: 'labs', role: 'member' }, 400, /a bot's name/],
      [{ name: 'ci-two', team: 'nope', role: 'member' }, 404, /no team 'nope'/],
      [{ name: 'ci-two', team: 'labs', role: 'admin' }, 400, /role/],
      [{ name: 'admin', team: 'labs', role: 'member' }, 400, /a bot's name/],
      [{ name: 'ci-two', team: 'labs', role: 'member', expires: 'soon' }, 400, /expires/],
    ];
    for (const [body, status, message] of cases) {
      const res = await call(admin, 'POST', '/v1/users/bots', body);
      assert.equal(res.statusCode, status, `${JSON.stringify(body)}: ${res.body}`);
      assert.match(res.json().error.message, message);
    }
    assert.equal(
      (await call(admin, 'POST', '/v1/users/bots', { name: 'viewer-bot', team: 'labs', role: 'viewer' }))
        .statusCode,
      201,
    );
    const again = await call(admin, 'POST', '/v1/users/bots', {
      name: 'viewer-bot',
      team: 'labs',
      role: 'viewer',
    });
    assert.equal(again.statusCode, 409);
    assert.equal(
      (await call(member, 'POST', '/v1/users/bots', { name: 'mine', team: 'labs', role: 'member' }))
        .statusCode,
      403,
    );
  });

  test('whoami: name, e-mail, role, kind, provider, teams with roles, and the token with its expiry', async () => {
    const res = await call(member, 'GET', '/v1/whoami');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().user, {
      name: 'ana@example.org',
      role: 'member',
      email: 'ana@example.org',
      kind: 'person',
      provider: 'oidc',
      teams: [{ name: 'ana', role: 'admin', personal: true }],
    });
    assert.equal(res.json().token.kind, 'session');
    assert.equal(res.json().token.name, 'laptop');
  });
});

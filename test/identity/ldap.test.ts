// Signing in with LDAP against a real OpenLDAP (slapd.ts) through the API: an invited person
// gets their account, the invitation's role and team; members of an allowed group come in,
// of an admin group as admins; everyone else is told to ask for an invitation. Filter
// injection, empty passwords (slapd here takes an unauthenticated bind, as AD does), wrong
// passwords and unknown names are refused alike, rate limited per address and per name, and
// on the audit record; a person deleted or disabled in LDAP stops working at the re-check,
// whichever token they use (a session, an API token, over git's Basic auth or petri run's
// WebSocket); one taken out of every allowed group is refused and loses every token; one
// taken out of the admin groups that made them admin is a member again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Attribute, Change } from 'ldapts';
import WebSocket from 'ws';
import { setAnonymousRefusalBudget } from '../../src/domain/audit.js';
import { bootstrapAdmin, createUser } from '../../src/domain/auth.js';
import { createInvitation } from '../../src/domain/invitations.js';
import { LdapDirectory } from '../../src/identity/ldap.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';
import { dnOf, GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, TestSlapd } from './slapd.js';

const PEOPLE_IN_DIRECTORY = [
  { uid: 'ana', password: 'ana-password', mail: 'Ana@Example.org', cn: 'Ana Lima' },
  { uid: 'bob', password: 'bob-password', mail: 'bob@example.org' },
  { uid: 'carol', password: 'carol-password', mail: 'carol@example.org' },
  { uid: 'dave', password: 'dave-password', mail: 'dave@example.org' },
  { uid: 'admin', password: 'admin-password', mail: 'admin-ldap@example.org' },
  { uid: 'erin', password: 'erin-password', mail: 'erin@example.org' },
  { uid: 'frank', password: 'frank-password', mail: 'frank@example.org' },
  { uid: 'gina', password: 'gina-password', mail: 'gina@example.org' },
  { uid: 'hal', password: 'hal-password', mail: 'hal@example.org' },
  { uid: 'nomail', password: 'nomail-password' },
  { uid: 'ivan', password: 'ivan-password', mail: 'ivan@example.org' },
  { uid: 'jill', password: 'jill-password', mail: 'jill@example.org' },
  { uid: 'kate', password: 'kate-password', mail: 'kate@example.org' },
  { uid: 'lou', password: 'lou-password', mail: 'lou@example.org' },
];

describe('LDAP sign-in', () => {
  let slapd: TestSlapd;
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let admin: string;
  let address = 0;
  /** Each test its own client address, so the per-address limit is only tested where meant. */
  const nextAddress = () => `192.0.2.${++address}`;

  const signIn = (username: string, password: string, remoteAddress = nextAddress()) =>
    api.inject({ method: 'POST', url: '/v1/auth/ldap', payload: { username, password }, remoteAddress });
  const whoami = (token: string) =>
    api.inject({ method: 'GET', url: '/v1/whoami', headers: { authorization: `Bearer ${token}` } });
  const refusals = async (who: string) =>
    db
      .selectFrom('audit_events')
      .select(['actor', 'target', 'detail', 'outcome', 'source_ip'])
      .where('action', '=', 'auth.refused')
      .where('actor', '=', who)
      .execute();

  before(async () => {
    slapd = await TestSlapd.start(PEOPLE_IN_DIRECTORY, [
      {
        cn: 'staff',
        kind: 'groupOfNames',
        members: ['carol', 'erin', 'frank', 'nomail', 'gina', 'hal', 'ivan', 'jill', 'kate', 'lou'],
      },
      { cn: 'devs', kind: 'posixGroup', members: ['dave'] },
      { cn: 'platform', kind: 'groupOfUniqueNames', members: ['dave', 'lou'] },
    ]);
    dir = mkdtempSync(path.join(tmpdir(), 'petri-ldap-'));
    db = await openStore(new DataPaths(dir).store);
    admin = (await bootstrapAdmin(db))!;
    // Refusals of nobody in particular are recorded one by one up to a budget: this test
    // makes more than the default from its few addresses, and reads every one.
    setAnonymousRefusalBudget({ perAddress: 1000, total: 10_000 });
    api = await buildTestApi(dir, db, {
      identity: {
        ldap: {
          url: slapd.url,
          bindDn: SERVICE_DN,
          bindPassword: SERVICE_PASSWORD,
          userBase: PEOPLE,
          // Disabled in the directory: a description that says so (the filter leaves them out).
          userFilter: '(&(objectClass=inetOrgPerson)(uid={username})(!(description=disabled)))',
          groupBase: GROUPS,
          allowedGroups: ['staff', 'devs'],
          adminGroups: [`cn=platform,${GROUPS}`],
        },
        recheckSeconds: 1,
        signInAttempts: { perAddress: 10, perUser: 5, windowSeconds: 300 },
      },
    });
  });
  after(async () => {
    setAnonymousRefusalBudget({ perAddress: 10, total: 60 });
    await api?.close();
    await db?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await slapd?.stop();
  });

  test('the server says it offers LDAP and passwords (no single sign-on here)', async () => {
    const res = await api.inject({ method: 'GET', url: '/v1/auth/providers' });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { oidc: false, ldap: true, password: true });
  });

  test('an invited person signs in: the account is made with the invitation’s role and team, the invitation used', async () => {
    const inviter = await db
      .selectFrom('users')
      .selectAll()
      .where('name', '=', 'admin')
      .executeTakeFirstOrThrow();
    // A shared team (nobody is invited into someone's personal team).
    const team = await db
      .insertInto('teams')
      .values({ name: 'labs', personal_of: null, created_at: new Date().toISOString() })
      .returning('name')
      .executeTakeFirstOrThrow();
    const { invitation } = await createInvitation(db, inviter, {
      email: 'ana@example.org',
      role: 'auditor',
      team: team.name,
      teamRole: 'viewer',
    });
    const res = await signIn('ana', 'ana-password');
    assert.equal(res.statusCode, 200, res.body);
    const { token, user } = res.json();
    assert.equal(user.email, 'ana@example.org');
    assert.equal(user.role, 'auditor');
    const me = await whoami(token);
    assert.equal(me.statusCode, 200, me.body);
    const row = await db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', 'ana@example.org')
      .executeTakeFirstOrThrow();
    assert.equal(row.provider, 'ldap');
    assert.match(row.subject ?? '', /^[0-9a-f-]{36}$/, 'the entryUUID, stable across renames');
    const used = await db
      .selectFrom('invitations')
      .selectAll()
      .where('id', '=', invitation.id)
      .executeTakeFirstOrThrow();
    assert.equal(used.used_by, row.id);
    const member = await db
      .selectFrom('team_members')
      .selectAll()
      .innerJoin('teams', 'teams.id', 'team_members.team_id')
      .where('user_id', '=', row.id)
      .where('teams.name', '=', team.name)
      .executeTakeFirst();
    assert.equal(member?.role, 'viewer');
    const session = await db
      .selectFrom('tokens')
      .selectAll()
      .where('user_id', '=', row.id)
      .executeTakeFirstOrThrow();
    assert.equal(session.kind, 'session');
    const days = (Date.parse(session.expires_at ?? '') - Date.now()) / 86_400_000;
    assert.ok(days > 89.9 && days <= 90, `a session lives identity.sessionDays (90), got ${days}`);

    // Again: the same account (found by its entry), no second one.
    const again = await signIn('ANA', 'ana-password');
    assert.equal(again.statusCode, 200, again.body);
    const count = await db.selectFrom('users').select('id').where('email', '=', 'ana@example.org').execute();
    assert.equal(count.length, 1);
  });

  test('someone neither invited nor in an allowed group is told to ask an admin for an invitation, on the record', async () => {
    const res = await signIn('bob', 'bob-password');
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(
      res.json().error.message,
      "no invitation for bob@example.org: ask an admin for an invitation ('petri users invite bob@example.org')",
    );
    assert.equal(
      await db.selectFrom('users').select('id').where('email', '=', 'bob@example.org').executeTakeFirst(),
      undefined,
    );
    const audited = await refusals('bob@example.org');
    assert.equal(audited.length, 1);
    assert.equal(audited[0]?.target, 'ldap');
    assert.equal(audited[0]?.outcome, 'denied');
    assert.match(audited[0]?.detail ?? '', /ask an admin for an invitation/);
  });

  test('an allowed group lets people in as members (groupOfNames, posixGroup); an admin group (groupOfUniqueNames, by DN) makes admins', async () => {
    const carol = await signIn('carol', 'carol-password');
    assert.equal(carol.statusCode, 200, carol.body);
    assert.equal(carol.json().user.role, 'member');
    const dave = await signIn('dave', 'dave-password');
    assert.equal(dave.statusCode, 200, dave.body);
    assert.equal(dave.json().user.role, 'admin');
  });

  test('filter injection in the user name matches nobody (the name is escaped), and is refused on the record', async () => {
    // Unescaped, `an*` would make (uid=an*): ana's entry, signed in with her password.
    for (const [username, password] of [
      ['an*', 'ana-password'],
      ['*)(uid=*', 'carol-password'],
      ['admin)(|(uid=*', 'admin-password'],
      ['*', 'carol-password'],
      ['carol)(uid=carol', 'carol-password'],
      ['\\2a', 'carol-password'],
    ] as const) {
      const res = await signIn(username, password);
      assert.equal(res.statusCode, 401, `${username}: ${res.body}`);
      assert.equal(res.json().error.message, 'invalid user name or password');
      const audited = await refusals(username);
      assert.equal(audited.length, 1, `${username} is on the record`);
      assert.match(audited[0]?.detail ?? '', /unknown user/);
    }
    const ldap = new LdapDirectory(
      {
        url: slapd.url,
        bindDn: SERVICE_DN,
        bindPassword: SERVICE_PASSWORD,
        userBase: PEOPLE,
        userFilter: '(uid={username})',
        allowedGroups: [],
        allowedDomains: [],
        adminGroups: [],
        startTls: false,
      },
      createLogger('silent'),
    );
    assert.equal(ldap.userFilter('*)(uid=*'), '(uid=\\2a\\29\\28uid=\\2a)');
    assert.equal(ldap.userFilter('a\\b\u0000'), '(uid=a\\5cb\\00)');
    assert.equal(ldap.userFilter('$&$1'), '(uid=$&$1)', 'replacement patterns are text too');
  });

  test('an empty password is refused before any bind (slapd would take it as an unauthenticated bind)', async () => {
    const res = await signIn('carol', '');
    assert.equal(res.statusCode, 401, res.body);
    assert.match(res.json().error.message, /password is empty/);
    const audited = await refusals('carol');
    assert.ok(audited.some((a) => /empty password/.test(a.detail)));
    const blank = await signIn('', 'x');
    assert.equal(blank.statusCode, 401, blank.body);
    assert.match(blank.json().error.message, /user name is empty/);
  });

  test('a wrong password and an unknown name get the same answer; each refusal names its reason on the record', async () => {
    const wrong = await signIn('gina', 'not-her-password');
    const unknown = await signIn('nobody-here', 'whatever-password');
    assert.equal(wrong.statusCode, 401);
    assert.equal(unknown.statusCode, 401);
    assert.equal(wrong.json().error.message, unknown.json().error.message);
    assert.match((await refusals('gina'))[0]?.detail ?? '', /wrong password/);
    assert.match((await refusals('nobody-here'))[0]?.detail ?? '', /unknown user/);
  });

  test('an entry without mail is refused with what to ask for', async () => {
    const res = await signIn('nomail', 'nomail-password');
    assert.equal(res.statusCode, 403, res.body);
    assert.match(res.json().error.message, /no 'mail' attribute/);
  });

  test('a user name is limited: 5 failures lock it for the window, from any address, saying when to retry', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await signIn('hal', `wrong-${i}`)).statusCode, 401);
    // The right password, from yet another address: still refused until the window passes.
    const res = await signIn('hal', 'hal-password');
    assert.equal(res.statusCode, 429, res.body);
    const retry = Number(res.headers['retry-after']);
    assert.ok(retry > 240 && retry <= 300, `Retry-After ${res.headers['retry-after']}`);
    assert.match(
      res.json().error.message,
      /too many failed sign-ins; try again in 5 minutes \(after \d{4}-\d\d-\d\dT/,
    );
    assert.ok((await refusals('hal')).some((a) => /rateLimited/.test(a.detail)));
    // Others are not affected.
    assert.equal((await signIn('gina', 'gina-password')).statusCode, 200);
  });

  test('an address is limited: 10 failures (of any names) lock it, also for a right password', async () => {
    const from = nextAddress();
    for (let i = 0; i < 10; i++) assert.equal((await signIn(`guess-${i}`, 'password', from)).statusCode, 401);
    const res = await signIn('carol', 'carol-password', from);
    assert.equal(res.statusCode, 429, res.body);
    assert.ok(Number(res.headers['retry-after']) > 0);
    // Carol from elsewhere is fine.
    assert.equal((await signIn('carol', 'carol-password')).statusCode, 200);
  });

  test('someone deleted in LDAP, or disabled there, stops working at the next re-check (identity.recheckSeconds)', async () => {
    const erin = (await signIn('erin', 'erin-password')).json().token as string;
    const frank = (await signIn('frank', 'frank-password')).json().token as string;
    const carol = (await signIn('carol', 'carol-password')).json().token as string;
    assert.equal((await whoami(erin)).statusCode, 200);
    await slapd.asRoot(async (client) => {
      await client.del(dnOf('erin'));
      await client.modify(
        dnOf('frank'),
        new Change({
          operation: 'add',
          modification: new Attribute({ type: 'description', values: ['disabled'] }),
        }),
      );
    });
    const refused = await until(
      async () => {
        const res = await whoami(erin);
        return res.statusCode === 401 ? res : undefined;
      },
      { timeout: 5000, interval: 200, message: "erin's session to be refused" },
    );
    assert.match(refused.json().error.message, /no longer signs in to Petri/);
    await until(async () => (await whoami(frank)).statusCode === 401, {
      timeout: 5000,
      interval: 200,
      message: "frank's",
    });
    // Carol, still in the directory, is re-checked and goes on.
    const before = Date.now();
    await until(
      async () => {
        const res = await whoami(carol);
        assert.equal(res.statusCode, 200, res.body);
        const user = await db
          .selectFrom('users')
          .select('checked_at')
          .where('email', '=', 'carol@example.org')
          .executeTakeFirstOrThrow();
        return user.checked_at !== null && Date.parse(user.checked_at) >= before;
      },
      { timeout: 5000, interval: 200, message: "carol's session to be re-checked" },
    );
    // Every token of erin's is revoked, and the refusal is on the record.
    const erinRow = await db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'erin@example.org')
      .executeTakeFirstOrThrow();
    const live = await db
      .selectFrom('tokens')
      .select('id')
      .where('user_id', '=', erinRow.id)
      .where('revoked_at', 'is', null)
      .execute();
    assert.equal(live.length, 0);
    assert.ok((await refusals('erin@example.org')).some((a) => /gone|no longer matches/.test(a.detail)));
    // And signing in again is refused by the directory itself.
    assert.equal((await signIn('erin', 'erin-password')).statusCode, 401);
    assert.equal((await signIn('frank', 'frank-password')).statusCode, 401);
  });

  test('an account disabled by an admin cannot sign in with LDAP, on the record', async () => {
    const gina = await db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', 'gina@example.org')
      .executeTakeFirstOrThrow();
    await db
      .updateTable('users')
      .set({ disabled_at: new Date().toISOString() })
      .where('id', '=', gina.id)
      .execute();
    const res = await signIn('gina', 'gina-password');
    assert.equal(res.statusCode, 403, res.body);
    assert.match(res.json().error.message, /disabled by an admin/);
    assert.ok((await refusals('gina@example.org')).some((a) => /disabled/.test(a.detail)));
    void admin;
  });

  test('a person whose e-mail belongs to an account of another provider is refused, not linked', async () => {
    await createUser(db, 'ivy@example.org', 'admin', {
      email: 'ivy@example.org',
      provider: 'oidc',
      subject: 'sso-ivy',
    });
    await slapd.asRoot((client) =>
      client.add(dnOf('mallory'), {
        objectClass: 'inetOrgPerson',
        uid: 'mallory',
        cn: 'mallory',
        sn: 'mallory',
        // A directory where people edit their own mail: mallory claims ivy's.
        mail: 'ivy@example.org',
        userPassword: 'mallory-password',
      }),
    );
    await slapd.asRoot((client) =>
      client.modify(
        `cn=staff,${GROUPS}`,
        new Change({
          operation: 'add',
          modification: new Attribute({ type: 'member', values: [dnOf('mallory')] }),
        }),
      ),
    );
    const res = await signIn('mallory', 'mallory-password');
    assert.equal(res.statusCode, 403, res.body);
    assert.match(res.json().error.message, /signs in with single sign-on/);
  });

  /** Changes a group's members in the directory, as its operator would. */
  const groupMember = (group: string, operation: 'add' | 'delete', uid: string) =>
    slapd.asRoot((client) =>
      client.modify(
        `cn=${group},${GROUPS}`,
        new Change({
          operation,
          modification: new Attribute({
            type: group === 'platform' ? 'uniqueMember' : 'member',
            values: [dnOf(uid)],
          }),
        }),
      ),
    );
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const user = (email: string) =>
    db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirstOrThrow();
  const liveTokens = async (email: string) =>
    db
      .selectFrom('tokens')
      .select('id')
      .where('user_id', '=', (await user(email)).id)
      .where('revoked_at', 'is', null)
      .execute();

  test('taken out of every allowed group, someone who came in through one is refused at the re-check and at sign-in, and loses every token', async () => {
    const session = (await signIn('kate', 'kate-password')).json().token as string;
    assert.equal((await user('kate@example.org')).admitted_by, 'group');
    assert.equal((await whoami(session)).statusCode, 200);
    await groupMember('staff', 'delete', 'kate');
    const refused = await until(
      async () => {
        const res = await whoami(session);
        return res.statusCode === 401 ? res : undefined;
      },
      { timeout: 5000, interval: 200, message: "kate's session to be refused at the re-check" },
    );
    assert.match(
      refused.json().error.message,
      /you are in none of the groups allowed to use Petri \(staff, devs\) in the LDAP directory; you came in through an allowed group, not an invitation/,
    );
    assert.deepEqual(await liveTokens('kate@example.org'), []);
    // A plain sign-in does not let her back in.
    const again = await signIn('kate', 'kate-password');
    assert.equal(again.statusCode, 403, again.body);
    assert.match(
      again.json().error.message,
      /none of the groups allowed to use Petri.*ask an admin to put you back/,
    );
    assert.deepEqual(await liveTokens('kate@example.org'), [], 'no session was made');
    const audited = await refusals('kate@example.org');
    assert.ok(
      audited.filter((a) => /none of the groups allowed/.test(a.detail)).length >= 2,
      'both on the record',
    );
    // Back in the group, back in.
    await groupMember('staff', 'add', 'kate');
    assert.equal((await signIn('kate', 'kate-password')).statusCode, 200);
  });

  test('taken out of the admin group, an admin it made is a member again, at the re-check and at sign-in; an admin made by an admin stays', async () => {
    const lou = await signIn('lou', 'lou-password');
    assert.equal(lou.json().user.role, 'admin');
    const session = lou.json().token as string;
    await groupMember('platform', 'delete', 'lou');
    const me = await until(
      async () => {
        const res = await whoami(session);
        assert.equal(res.statusCode, 200, res.body);
        return res.json().user.role === 'member' ? res : undefined;
      },
      { timeout: 5000, interval: 200, message: "lou's admin role to be taken back at the re-check" },
    );
    assert.equal(me.json().user.provider, 'ldap');
    const roleEvents = await db
      .selectFrom('audit_events')
      .select('detail')
      .where('action', '=', 'user.role')
      .where('target', '=', 'lou@example.org')
      .orderBy('id')
      .execute();
    assert.match(roleEvents.at(-1)?.detail ?? '', /"from":"admin","to":"member","by":"admin group"/);
    // At sign-in too: in the group, admin; out of it, member (no re-check in between).
    await groupMember('platform', 'add', 'lou');
    assert.equal((await signIn('lou', 'lou-password')).json().user.role, 'admin');
    await groupMember('platform', 'delete', 'lou');
    assert.equal((await signIn('lou', 'lou-password')).json().user.role, 'member');
    // Made admin by an admin ('petri users role'): the groups never take that back.
    await groupMember('platform', 'add', 'lou');
    assert.equal((await signIn('lou', 'lou-password')).json().user.role, 'admin');
    const role = await api.inject({
      method: 'PATCH',
      url: '/v1/users/lou@example.org',
      headers: bearer(admin),
      payload: { role: 'admin' },
    });
    assert.ok(role.statusCode < 300, role.body);
    await groupMember('platform', 'delete', 'lou');
    assert.equal((await signIn('lou', 'lou-password')).json().user.role, 'admin');
  });

  test("an LDAP person's API token is re-checked too, over git's Basic auth and petri run's WebSocket; without a sign-in's data the entry is found by its entryUUID", async () => {
    // ivan and jill each make an app and an API token (as 'petri tokens create' does).
    const setUp = async (uid: string) => {
      const session = (await signIn(uid, `${uid}-password`)).json().token as string;
      const app = await api.inject({
        method: 'POST',
        url: '/v1/apps',
        headers: bearer(session),
        payload: { name: `${uid}-app` },
      });
      assert.equal(app.statusCode, 201, app.body);
      const made = await api.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: bearer(session),
        payload: { name: 'ci' },
      });
      assert.equal(made.statusCode, 201, made.body);
      // Their sign-in sessions end (expired): the API token goes on alone.
      await db
        .updateTable('tokens')
        .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
        .where('user_id', '=', (await user(`${uid}@example.org`)).id)
        .where('kind', '=', 'session')
        .execute();
      return made.json().secret as string;
    };
    const ivan = await setUp('ivan');
    const jill = await setUp('jill');
    const refs = (token: string) =>
      api.inject({
        method: 'GET',
        url: '/v1/apps/ivan-app/git/info/refs?service=git-upload-pack',
        headers: { authorization: `Basic ${Buffer.from(`git:${token}`).toString('base64')}` },
      });
    await api.listen({ port: 0, host: '127.0.0.1' });
    const { port } = api.server.address() as AddressInfo;
    const upgrade = (token: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/apps/jill-app/run`, {
          headers: bearer(token),
        });
        socket.on('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        socket.on('open', () => {
          socket.close();
          resolve(101);
        });
        socket.on('error', reject);
      });
    assert.equal((await refs(ivan)).statusCode, 200);
    assert.equal(await upgrade(jill), 101);

    // No sign-in's re-check data (an account from before Petri kept it on the account): the
    // entry is found by the account's entryUUID, and the check goes on.
    await db
      .updateTable('users')
      .set({ recheck_sealed: null, checked_at: null })
      .where('email', '=', 'ivan@example.org')
      .execute();
    assert.equal((await refs(ivan)).statusCode, 200);
    assert.ok((await user('ivan@example.org')).checked_at, 're-checked by entryUUID');

    await slapd.asRoot(async (client) => {
      await client.del(dnOf('ivan')); // checked by entryUUID (no sign-in's data, as above)
      await client.del(dnOf('jill')); // checked with her sign-in's DN and name
    });
    // The first request after the window is git's (Basic auth): it is the one re-checked.
    const push = await until(
      async () => {
        const res = await refs(ivan);
        return res.statusCode === 401 ? res : undefined;
      },
      { timeout: 5000, interval: 200, message: "ivan's API token to be refused over git" },
    );
    assert.match(push.json().error.message, /your LDAP account no longer signs in to Petri/);
    assert.equal(push.headers['www-authenticate'], 'Basic realm="Petri"');
    assert.deepEqual(await liveTokens('ivan@example.org'), []);
    // petri run's upgrade is refused before it happens, by the re-check.
    await until(async () => (await upgrade(jill)) === 401, {
      timeout: 5000,
      interval: 200,
      message: "jill's WebSocket upgrade to be refused",
    });
    assert.deepEqual(await liveTokens('jill@example.org'), []);
    assert.ok((await refusals('jill@example.org')).some((a) => /"recheck":true/.test(a.detail)));
  });

  test('a directory that cannot be asked answers 503 at the re-check, and revokes nothing (runs last: it stops slapd)', async () => {
    const token = (await signIn('carol', 'carol-password')).json().token as string;
    await slapd.stop();
    const res = await until(
      async () => {
        const answer = await whoami(token);
        return answer.statusCode === 503 ? answer : undefined;
      },
      { timeout: 5000, interval: 200, message: 'the re-check to find the directory down' },
    );
    assert.match(res.json().error.message, /LDAP directory could not be asked.*try again/);
    const live = await db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select('tokens.id')
      .where('users.email', '=', 'carol@example.org')
      .where('tokens.revoked_at', 'is', null)
      .execute();
    assert.ok(live.length > 0, "carol's sessions stay: the directory said nothing about her");
    const signInNow = await signIn('carol', 'carol-password');
    assert.equal(signInNow.statusCode, 503, signInNow.body);
  });
});

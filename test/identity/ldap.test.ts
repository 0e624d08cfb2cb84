// Signing in with LDAP against a real OpenLDAP (slapd.ts) through the API: an invited person
// gets their account, the invitation's role and team; members of an allowed group come in,
// of an admin group as admins; everyone else is told to ask for an invitation. Filter
// injection, empty passwords (slapd here takes an unauthenticated bind, as AD does), wrong
// passwords and unknown names are refused alike, rate limited per address and per name, and
// on the audit record; a person deleted or disabled in LDAP stops working at the re-check.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Attribute, Change } from 'ldapts';
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
      { cn: 'staff', kind: 'groupOfNames', members: ['carol', 'erin', 'frank', 'nomail', 'gina', 'hal'] },
      { cn: 'devs', kind: 'posixGroup', members: ['dave'] },
      { cn: 'platform', kind: 'groupOfUniqueNames', members: ['dave'] },
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
    const team = await db
      .selectFrom('teams')
      .select('name')
      .where('personal_of', '=', inviter.id)
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
    await until(
      async () => {
        const row = await db
          .selectFrom('tokens')
          .select('checked_at')
          .where('description', 'like', 'ldap%')
          .orderBy('id', 'desc')
          .executeTakeFirst();
        return row;
      },
      { timeout: 1000 },
    );
    const before = Date.now();
    await until(
      async () => {
        const res = await whoami(carol);
        assert.equal(res.statusCode, 200, res.body);
        const user = await db
          .selectFrom('users')
          .select('id')
          .where('email', '=', 'carol@example.org')
          .executeTakeFirstOrThrow();
        const tokens = await db
          .selectFrom('tokens')
          .select('checked_at')
          .where('user_id', '=', user.id)
          .where('revoked_at', 'is', null)
          .execute();
        return tokens.some((t) => t.checked_at !== null && Date.parse(t.checked_at) >= before);
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

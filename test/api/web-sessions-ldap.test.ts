// The web sign-in's password form with an LDAP directory (a real slapd): a directory name
// and password make a web session, as `petri login --ldap` makes a token; a local account's
// e-mail still signs in with its own password; the directory's refusals show on the page.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser } from '../../src/domain/auth.js';
import { SESSION_COOKIE } from '../../src/domain/web-sessions.js';
import { hashPassword } from '../../src/identity/passwords.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, TestSlapd } from '../identity/slapd.js';
import { buildTestApi } from './test-api.js';

describe('web sign-in with LDAP', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let slapd: TestSlapd;

  const signIn = (login: string, password: string) =>
    api.inject({
      method: 'POST',
      url: '/login/password',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ login, password, next: '/apps' }).toString(),
    });
  const whoAmI = async (res: Awaited<ReturnType<typeof signIn>>) => {
    const raw = res.headers['set-cookie'];
    const line = (Array.isArray(raw) ? raw : [raw ?? '']).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
    assert.ok(line, `no session cookie: ${res.statusCode} ${res.body.slice(0, 300)}`);
    const me = await api.inject({
      method: 'GET',
      url: '/v1/session',
      headers: { cookie: line.split(';')[0] },
    });
    return me.json().user as { email: string; provider: string };
  };

  before(async () => {
    slapd = await TestSlapd.start(
      [
        { uid: 'carol', password: 'carol-password', mail: 'carol@example.org', cn: 'Carol' },
        { uid: 'olaf', password: 'olaf-password', mail: 'olaf@example.org' },
      ],
      [{ cn: 'staff', kind: 'groupOfNames', members: ['carol'] }],
    );
    dir = mkdtempSync(path.join(tmpdir(), 'petri-web-ldap-'));
    db = await openStore(new DataPaths(dir).store);
    await createUser(db, 'lou', 'member', {
      email: 'lou@example.org',
      password_hash: await hashPassword('lou local password'),
    });
    api = await buildTestApi(dir, db, {
      identity: {
        ldap: {
          url: slapd.url,
          bindDn: SERVICE_DN,
          bindPassword: SERVICE_PASSWORD,
          userBase: PEOPLE,
          userFilter: '(&(objectClass=inetOrgPerson)(uid={username}))',
          groupBase: GROUPS,
          allowedGroups: ['staff'],
        },
      },
    });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    await slapd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the page asks for an e-mail or directory user name', async () => {
    const page = await api.inject({ method: 'GET', url: '/login' });
    assert.match(page.body, /E-mail or directory user name/);
  });

  test('a directory name and password make a web session', async () => {
    const res = await signIn('carol', 'carol-password');
    assert.equal(res.statusCode, 303, res.body);
    assert.equal(res.headers.location, '/apps');
    const me = await whoAmI(res);
    assert.equal(me.email, 'carol@example.org');
    assert.equal(me.provider, 'ldap');
  });

  test("a local account's e-mail signs in with its own password", async () => {
    const res = await signIn('lou@example.org', 'lou local password');
    assert.equal(res.statusCode, 303, res.body);
    assert.equal((await whoAmI(res)).provider, 'local');
  });

  test("the directory's refusals are on the page: a wrong password, someone not in an allowed group", async () => {
    const wrong = await signIn('carol', 'not her password');
    assert.equal(wrong.statusCode, 401);
    assert.match(wrong.body, /role="alert"/);
    const outside = await signIn('olaf', 'olaf-password');
    assert.equal(outside.statusCode, 403, outside.body);
    assert.match(outside.body, /role="alert"/);
  });
});

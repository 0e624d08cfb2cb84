// Single sign-on against a real OIDC provider (oidc-provider on 127.0.0.1), through the API
// as the CLI calls it: the browser flow driven without a human (the provider's login and
// consent forms posted, the redirect to the loopback listener caught), the device flow, the
// re-check that ends every token (sessions and API tokens) of someone removed at the
// provider or out of every allowed group (an invited person stays), that makes an admin of
// the admin groups a member again when they leave them, and the answers a
// hostile provider or client gets: forged or replayed state, a stolen code without the
// flow's secret, redirects off the loopback, ID tokens with the wrong issuer, audience,
// nonce, an expired one, one unsigned (alg none), HMAC-signed or signed with another key.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { runCli } from '../../src/cli/main.js';
import { setAnonymousRefusalBudget } from '../../src/domain/audit.js';
import { createUser } from '../../src/domain/auth.js';
import { createInvitation } from '../../src/domain/invitations.js';
import { setPlatformRole } from '../../src/domain/users.js';
import { Identity } from '../../src/identity/index.js';
import { OidcProvider } from '../../src/identity/oidc.js';
import { loadConfig } from '../../src/lib/config.js';
import { UserError } from '../../src/lib/errors.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi, testSecrets } from '../api/test-api.js';
import { Capture } from '../cli/harness.js';
import {
  CLIENT_ID,
  CLIENT_SECRET,
  devicePage,
  HostileIssuer,
  type HostileMode,
  TestBrowser,
  TestOidcProvider,
} from './oidc-provider.js';

// Every refusal of these tests comes from one address: all of them on the record, one by one.
setAnonymousRefusalBudget({ perAddress: 100_000, total: 100_000 });

const BROWSER_SCRIPT = path.join(import.meta.dirname, 'browser.ts');

const CALLBACK_PORT = 1; // never listened on: the test catches the redirect before it leaves

function newSecret(): { secret: string; secretHash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, secretHash: createHash('sha256').update(secret).digest('hex') };
}

async function apiWith(
  dir: string,
  db: Store,
  oidc: Record<string, unknown>,
  more: Record<string, unknown> = {},
): Promise<FastifyInstance> {
  const flags = { identity: { oidc, recheckSeconds: 1, ...more } };
  const config = loadConfig({ dataDir: dir, ...flags });
  const identity = new Identity({ db, config, secrets: testSecrets(), log: createLogger('silent') });
  return buildTestApi(dir, db, flags, { identity });
}

/** Audit events of refused sign-ins, newest last. */
async function refusals(db: Store): Promise<{ actor: string; detail: string }[]> {
  return db
    .selectFrom('audit_events')
    .select(['actor', 'detail'])
    .where('action', '=', 'auth.refused')
    .orderBy('id')
    .execute();
}

describe('OIDC sign-in against a real provider', () => {
  let dir: string;
  let db: Store;
  let provider: TestOidcProvider;
  let api: FastifyInstance;
  let url: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-oidc-'));
    db = await openStore(new DataPaths(dir).store);
    provider = await TestOidcProvider.start([
      { sub: 'ana', email: 'Ana@Example.org', email_verified: true, name: 'Ana', groups: ['staff'] },
      { sub: 'bea', email: 'bea@example.org', email_verified: true, groups: ['staff'] },
      { sub: 'cid', email: 'cid@example.org', email_verified: true, groups: ['staff'] },
      { sub: 'dan', email: 'dan@example.org', email_verified: true, groups: ['staff'] },
      { sub: 'eve', email: 'eve@outside.example', email_verified: true, groups: [] },
      { sub: 'fay', email: 'fay@example.org', email_verified: false, groups: ['staff'] },
      { sub: 'gil', email: 'gil@example.org', email_verified: true, groups: ['staff'] },
      { sub: 'hal', email: 'hal@example.org', email_verified: true, groups: ['staff'] },
      { sub: 'ivo', email: 'ivo@example.org', email_verified: true, groups: ['staff'] },
      { sub: 'jen', email: 'jen@partner.example', email_verified: true, groups: ['staff'] },
      { sub: 'kim', email: 'kim@example.org', email_verified: true, groups: ['staff', 'ops'] },
      { sub: 'lea', email: 'lea@example.org', email_verified: true, groups: ['staff', 'ops'] },
      { sub: 'mo', email: 'mo@example.org', email_verified: true, groups: ['staff'] },
      { sub: 'noa', email: 'noa@example.org', email_verified: true, groups: ['staff'] },
    ]);
    api = await apiWith(dir, db, {
      issuer: provider.issuer,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      allowedGroups: ['staff'],
      adminGroups: ['ops'],
    });
    // Listening too, for the CLI (the other tests inject).
    await api.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await api?.close();
    await provider?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (url: string, payload: unknown) =>
    api.inject({ method: 'POST', url, payload: payload as object });

  /** Starts a browser sign-in and lets `login` sign in at the provider: the redirect's params. */
  async function browse(login: string, redirectUri = `http://127.0.0.1:${CALLBACK_PORT}/callback`) {
    const { secret, secretHash } = newSecret();
    const start = await post('/v1/auth/oidc/start', { redirectUri, secretHash });
    assert.equal(start.statusCode, 200, start.body);
    const { flow, authorizeUrl } = start.json() as { flow: string; authorizeUrl: string };
    const end = await new TestBrowser(login).run(authorizeUrl, (u) => u.href.startsWith(redirectUri));
    assert.ok(end.url, `the provider did not redirect back: ${end.page?.slice(0, 300)}`);
    const p = end.url.searchParams;
    return {
      secret,
      flow,
      authorizeUrl,
      finish: {
        flow,
        state: p.get('state') ?? '',
        code: p.get('code') ?? '',
        iss: p.get('iss') ?? undefined,
        secret,
      },
    };
  }

  const whoami = (token: string) =>
    api.inject({ method: 'GET', url: '/v1/whoami', headers: { authorization: `Bearer ${token}` } });

  test('a person in an allowed group signs in in the browser and gets a session token', async () => {
    const { finish } = await browse('ana');
    const done = await post('/v1/auth/oidc/finish', finish);
    assert.equal(done.statusCode, 200, done.body);
    const { token, user } = done.json() as { token: string; user: { email: string; role: string } };
    assert.equal(user.email, 'ana@example.org');
    assert.equal(user.role, 'member');
    const me = await whoami(token);
    assert.equal(me.statusCode, 200, me.body);
    const row = await db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select(['tokens.kind', 'tokens.expires_at', 'users.provider', 'users.subject'])
      .where('users.email', '=', 'ana@example.org')
      .executeTakeFirstOrThrow();
    assert.equal(row.kind, 'session');
    assert.equal(row.provider, 'oidc');
    assert.equal(row.subject, 'ana');
    const days = (Date.parse(row.expires_at ?? '') - Date.now()) / 86_400_000;
    assert.ok(days > 89 && days <= 90, `session expires in ${days} days`);
  });

  test('a flow is finished once: a replay, even a concurrent one, is refused', async () => {
    const { finish } = await browse('bea');
    const [a, b] = await Promise.all([
      post('/v1/auth/oidc/finish', finish),
      post('/v1/auth/oidc/finish', finish),
    ]);
    assert.deepEqual([a.statusCode, b.statusCode].sort(), [200, 401], `${a.body} ${b.body}`);
    const again = await post('/v1/auth/oidc/finish', finish);
    assert.equal(again.statusCode, 401);
    assert.match(
      again.json().error.message,
      /unknown, already finished or older than 10 minutes; run 'petri login'/,
    );
    const last = (await refusals(db)).at(-1);
    assert.match(last?.detail ?? '', /flow/);
  });

  test('a forged state is refused, and the flow it was tried on is gone', async () => {
    const { finish } = await browse('cid');
    const forged = await post('/v1/auth/oidc/finish', { ...finish, state: `${finish.state}x` });
    assert.equal(forged.statusCode, 401);
    assert.match(forged.json().error.message, /state differs.*forged/);
    assert.match((await refusals(db)).at(-1)?.detail ?? '', /state mismatch/);
    const real = await post('/v1/auth/oidc/finish', finish);
    assert.equal(real.statusCode, 401, 'the flow must not be usable after a forged attempt');
  });

  test('a stolen code without the flow secret signs no one in; the right client still can', async () => {
    const { finish } = await browse('dan');
    const thief = await post('/v1/auth/oidc/finish', {
      ...finish,
      secret: randomBytes(32).toString('base64url'),
    });
    assert.equal(thief.statusCode, 401);
    assert.match(thief.json().error.message, /started by another client/);
    assert.match((await refusals(db)).at(-1)?.detail ?? '', /wrong flow secret/);
    const real = await post('/v1/auth/oidc/finish', finish);
    assert.equal(real.statusCode, 200, real.body);
  });

  test('redirect URIs off the loopback interface are refused (RFC 8252)', async () => {
    for (const redirectUri of [
      'https://evil.example/callback',
      'http://evil.example:8080/callback',
      'http://10.0.0.1:8080/callback',
      'http://127.0.0.1.evil.example:8080/callback',
      'http://127.0.0.1/callback', // no port: not the listener's
      'http://user:pw@127.0.0.1:8080/callback',
      'http://127.0.0.1:8080/callback?next=https://evil.example',
      'javascript:alert(1)',
    ]) {
      const res = await post('/v1/auth/oidc/start', { redirectUri, secretHash: newSecret().secretHash });
      assert.equal(res.statusCode, 400, `${redirectUri}: ${res.body}`);
      assert.match(res.json().error.message, /loopback address like http:\/\/127\.0\.0\.1:PORT/);
    }
    assert.match((await refusals(db)).at(-1)?.detail ?? '', /redirect URI not loopback/);
    const localhost = await post('/v1/auth/oidc/start', { redirectUri: 'http://localhost:9/callback' });
    assert.equal(localhost.statusCode, 200, localhost.body);
    assert.ok(localhost.json().secret, 'a start without secretHash gets a secret to finish with');
  });

  test('someone with no invitation, domain or group is told to ask an admin, on the record; invited, they come in', async () => {
    const { finish } = await browse('eve');
    const res = await post('/v1/auth/oidc/finish', finish);
    assert.equal(res.statusCode, 403, res.body);
    assert.match(
      res.json().error.message,
      /no invitation for eve@outside\.example: ask an admin for an invitation/,
    );
    const last = (await refusals(db)).at(-1);
    assert.equal(last?.actor, 'eve@outside.example');
    const users = await db
      .selectFrom('users')
      .select('id')
      .where('email', '=', 'eve@outside.example')
      .execute();
    assert.equal(users.length, 0);

    // Invited (as an auditor), the same sign-in comes in, with the invitation's role.
    const admin = await createUser(db, 'ops@example.org', 'admin', { email: 'ops@example.org' });
    await createInvitation(db, admin, { email: 'eve@outside.example', role: 'auditor' });
    const invited = await post('/v1/auth/oidc/finish', (await browse('eve')).finish);
    assert.equal(invited.statusCode, 200, invited.body);
    assert.equal(invited.json().user.role, 'auditor');
  });

  test('an e-mail the provider marks unverified is refused', async () => {
    const { finish } = await browse('fay');
    const res = await post('/v1/auth/oidc/finish', finish);
    assert.equal(res.statusCode, 401, res.body);
    assert.match(res.json().error.message, /fay@example\.org is not verified/);
    assert.equal((await refusals(db)).at(-1)?.actor, 'fay@example.org');
  });

  test('the device flow: a code typed at the provider, polled until done', async () => {
    const { secret, secretHash } = newSecret();
    const start = await post('/v1/auth/device/start', { secretHash });
    assert.equal(start.statusCode, 200, start.body);
    const device = start.json() as {
      flow: string;
      userCode: string;
      verificationUri: string;
      interval: number;
    };
    const pending = await post('/v1/auth/device/poll', { flow: device.flow, secret });
    assert.equal(pending.statusCode, 200, pending.body);
    assert.equal(pending.json().status, 'pending');
    // Without a body: the answer carries the secret to poll with.
    const bare = await api.inject({ method: 'POST', url: '/v1/auth/device/start' });
    assert.equal(bare.statusCode, 200, bare.body);
    const { flow, secret: given } = bare.json() as { flow: string; secret: string };
    assert.equal((await post('/v1/auth/device/poll', { flow, secret: given })).json().status, 'pending');
    const wrong = await post('/v1/auth/device/poll', { flow: device.flow, secret: `${secret}x` });
    assert.equal(wrong.statusCode, 401);
    const page = await new TestBrowser('ana').run(devicePage(device.verificationUri, device.userCode));
    assert.match(page.page ?? '', /Sign-in Success/);
    const done = await until(
      async () => {
        const res = await post('/v1/auth/device/poll', { flow: device.flow, secret });
        assert.equal(res.statusCode, 200, res.body);
        return res.json().status === 'done'
          ? (res.json() as { token: string; user: { email: string } })
          : undefined;
      },
      { timeout: (device.interval + 5) * 1000, interval: 250, message: 'the device sign-in to finish' },
    );
    assert.equal(done.user.email, 'ana@example.org');
    assert.equal((await whoami(done.token)).statusCode, 200);
    const replay = await post('/v1/auth/device/poll', { flow: device.flow, secret });
    assert.equal(replay.statusCode, 401);
  });

  test('removed from the group or from the provider: the session stops within the re-check window', async () => {
    // Sessions of people who stay, leave the group, and are removed at the provider.
    const tokens: Record<string, string> = {};
    for (const who of ['bea', 'cid', 'dan']) {
      const { finish } = await browse(who);
      const res = await post('/v1/auth/oidc/finish', finish);
      assert.equal(res.statusCode, 200, `${who}: ${res.body}`);
      tokens[who] = res.json().token;
    }
    provider.setGroups('cid', ['visitors']);
    provider.remove('dan');
    const gone = async (token: string) => (await whoami(token)).statusCode === 401;
    await until(async () => (await gone(tokens.cid!)) && (await gone(tokens.dan!)), {
      timeout: 10_000,
      interval: 200,
      message: 'the sessions of people removed at the provider to be refused',
    });
    const cid = await whoami(tokens.cid!);
    assert.match(cid.json().error.message, /./);
    // bea stays: re-checked (her refresh token rotated) again and again, still in.
    const checkedBefore = await checkedAt(tokens.bea!);
    await until(
      async () => {
        const me = await whoami(tokens.bea!);
        assert.equal(me.statusCode, 200, me.body);
        return (await checkedAt(tokens.bea!)) !== checkedBefore;
      },
      { timeout: 10_000, interval: 200, message: 'the staying session to be re-checked' },
    );
    const recheckRefusals = (await refusals(db)).filter((r) => r.detail.includes('"recheck":true'));
    assert.ok(recheckRefusals.some((r) => r.actor === 'cid@example.org'));
    assert.ok(recheckRefusals.some((r) => r.actor === 'dan@example.org'));
  });

  /** Signs `who` in with the browser flow: the session token and the account's role. */
  async function signedIn(who: string): Promise<{ token: string; role: string }> {
    const res = await post('/v1/auth/oidc/finish', (await browse(who)).finish);
    assert.equal(res.statusCode, 200, `${who}: ${res.body}`);
    return { token: res.json().token, role: res.json().user.role };
  }
  const signInAnswer = async (who: string) => post('/v1/auth/oidc/finish', (await browse(who)).finish);
  const liveTokens = async (email: string) =>
    db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select('tokens.id')
      .where('users.email', '=', email)
      .where('tokens.revoked_at', 'is', null)
      .execute();
  /** Calls whoami with `token` (each answer checked by `check`) until the person was re-checked. */
  async function untilRechecked(
    token: string,
    email: string,
    check: (res: Awaited<ReturnType<typeof whoami>>) => void,
  ): Promise<void> {
    const before = Date.now();
    await until(
      async () => {
        check(await whoami(token));
        const row = await db
          .selectFrom('users')
          .select('checked_at')
          .where('email', '=', email)
          .executeTakeFirstOrThrow();
        return Date.parse(row.checked_at ?? '') >= before;
      },
      { timeout: 5000, interval: 200, message: `${email} to be re-checked` },
    );
  }
  /** Calls whoami until `ready` accepts the answer (the re-check window passing). */
  const whoamiUntil = (
    token: string,
    ready: (res: Awaited<ReturnType<typeof whoami>>) => boolean,
    message: string,
  ) =>
    until(
      async () => {
        const res = await whoami(token);
        return ready(res) ? res : undefined;
      },
      { timeout: 5000, interval: 200, message },
    );

  test('out of every allowed group, someone who came in through one is refused at sign-in, not let back in; an invited person stays', async () => {
    const ivo = await signedIn('ivo');
    const root = await createUser(db, 'root@example.org', 'admin', { email: 'root@example.org' });
    await createInvitation(db, root, { email: 'jen@partner.example', role: 'member' });
    const jen = await signedIn('jen');
    provider.setGroups('ivo', ['visitors']);
    provider.setGroups('jen', ['visitors']);
    // A plain 'petri login' does not let ivo straight back in: refused, on the record, and
    // every token of his ends.
    const again = await signInAnswer('ivo');
    assert.equal(again.statusCode, 403, again.body);
    assert.match(
      again.json().error.message,
      /you are in none of the groups allowed to use Petri \(staff\) at the sign-in provider; you came in through an allowed group, not an invitation.*ask an admin to put you back in one of those groups/,
    );
    assert.deepEqual(await liveTokens('ivo@example.org'), []);
    assert.equal((await whoami(ivo.token)).statusCode, 401);
    const refused = (await refusals(db)).filter((r) => r.actor === 'ivo@example.org');
    assert.match(refused.at(-1)?.detail ?? '', /none of the groups allowed/);
    // jen was invited by name: leaving the groups does not end her access, at the re-check
    // or at sign-in.
    await untilRechecked(jen.token, 'jen@partner.example', (res) =>
      assert.equal(res.statusCode, 200, res.body),
    );
    assert.equal((await signInAnswer('jen')).statusCode, 200);
  });

  test('out of the admin group, an admin it made is a member again (re-check and sign-in, on the record); an admin made by an admin stays', async () => {
    const kim = await signedIn('kim');
    assert.equal(kim.role, 'admin');
    const lea = await signedIn('lea');
    assert.equal(lea.role, 'admin');
    // An admin confirms lea as admin ('petri users role'): hers is an admin's word now.
    const root = await db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', 'root@example.org')
      .executeTakeFirstOrThrow();
    await setPlatformRole(db, root, 'lea@example.org', 'admin');
    provider.setGroups('kim', ['staff']);
    provider.setGroups('lea', ['staff']);
    const demoted = await whoamiUntil(
      kim.token,
      (res) => {
        assert.equal(res.statusCode, 200, res.body);
        return res.json().user.role === 'member';
      },
      "kim's admin role to be taken back at the re-check",
    );
    assert.equal(demoted.json().user.email, 'kim@example.org');
    const event = await db
      .selectFrom('audit_events')
      .select('detail')
      .where('action', '=', 'user.role')
      .where('target', '=', 'kim@example.org')
      .orderBy('id', 'desc')
      .executeTakeFirstOrThrow();
    assert.match(event.detail, /"from":"admin","to":"member","by":"admin group"/);
    // At sign-in as well (no re-check in between): in the group admin, out of it member.
    provider.setGroups('kim', ['staff', 'ops']);
    assert.equal((await signedIn('kim')).role, 'admin');
    provider.setGroups('kim', ['staff']);
    assert.equal((await signedIn('kim')).role, 'member');
    // lea stays admin, re-checked and signed in.
    await untilRechecked(lea.token, 'lea@example.org', (res) =>
      assert.equal(res.json().user.role, 'admin', res.body),
    );
    assert.equal((await signedIn('lea')).role, 'admin');
  });

  test("an API token of someone removed at the provider stops working, even with every session ended; without a refresh token it waits for 'petri login'", async () => {
    const apiToken = async (who: string) => {
      const { token } = await signedIn(who);
      const made = await api.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: { authorization: `Bearer ${token}` },
        payload: { name: 'ci' },
      });
      assert.equal(made.statusCode, 201, made.body);
      // The sign-in session ends (expired); the API token goes on alone.
      await db
        .updateTable('tokens')
        .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
        .where('hash', '=', createHash('sha256').update(token).digest('hex'))
        .execute();
      return made.json().secret as string;
    };
    const mo = await apiToken('mo');
    const noa = await apiToken('noa');
    provider.remove('mo');
    const refused = await whoamiUntil(mo, (res) => res.statusCode === 401, "mo's API token to be refused");
    assert.match(refused.json().error.message, /your sign-in at the sign-in provider ended/);
    assert.deepEqual(await liveTokens('mo@example.org'), []);
    assert.ok(
      (await refusals(db)).some((r) => r.actor === 'mo@example.org' && r.detail.includes('"recheck":true')),
    );

    // No refresh token held for noa (an account from before Petri kept it on the account):
    // past the window her API token is refused, not revoked, until she signs in again.
    await db
      .updateTable('users')
      .set({ recheck_sealed: null, checked_at: new Date(Date.now() - 60_000).toISOString() })
      .where('email', '=', 'noa@example.org')
      .execute();
    const waiting = await whoami(noa);
    assert.equal(waiting.statusCode, 401, waiting.body);
    assert.match(waiting.json().error.message, /holds no refresh token of yours\); run 'petri login' again/);
    const noaTokens = await db
      .selectFrom('tokens')
      .select('revoked_at')
      .where('hash', '=', createHash('sha256').update(noa).digest('hex'))
      .executeTakeFirstOrThrow();
    assert.equal(noaTokens.revoked_at, null, 'the API token is not revoked');
    await signedIn('noa');
    assert.equal((await whoami(noa)).statusCode, 200);
  });

  /** Runs the CLI in-process with live captures, so a test can read its output while it waits. */
  function start(argv: string[], env: Record<string, string>) {
    const stdout = new Capture();
    const stderr = new Capture();
    const configDir = path.join(dir, `config-${Math.random().toString(36).slice(2)}`);
    const done = runCli(argv, { stdout, stderr, env: { PETRI_CONFIG_DIR: configDir, ...env }, cwd: dir });
    return { stdout, stderr, done, configDir };
  }

  test("'petri login' opens the browser, catches the redirect on loopback and stores the session", async () => {
    const pageFile = path.join(dir, 'page.txt');
    const cli = start(['login', '--url', url], {
      BROWSER: `${process.execPath} --import tsx ${BROWSER_SCRIPT} gil ${pageFile} %s`,
    });
    const code = await cli.done;
    assert.equal(code, 0, `${cli.stdout.text}\n${cli.stderr.text}`);
    assert.match(cli.stderr.text, /if it does not open, visit:\n\n {2}http:\/\/127\.0\.0\.1:\d+\/auth\?/);
    assert.match(cli.stdout.text, new RegExp(`Logged in to ${url} as gil@example\\.org \\(member\\)`));
    // The tab's page, as the browser got it once the listener answered.
    const page = await until(() => existsSync(pageFile) && readFileSync(pageFile, 'utf8'), {
      timeout: 5000,
      message: 'the browser to show the page',
    });
    assert.match(page, /^200\n/);
    assert.match(page, /Signed in to Petri as gil@example\.org\. You can close this tab\./);
    const out = new Capture();
    const err = new Capture();
    const whoami = await runCli(['whoami'], {
      stdout: out,
      stderr: err,
      env: { PETRI_CONFIG_DIR: cli.configDir },
      cwd: dir,
    });
    assert.equal(whoami, 0, err.text);
    assert.match(out.text, /gil@example\.org/);
  });

  test("'petri login --device' prints a code, and polls until it was entered at the provider", async () => {
    const cli = start(['login', '--device', '--url', url], {});
    const shown = await until(
      () => /open (\S+) on any device and enter the code\n\n {2}(\S+)\n/.exec(cli.stderr.text),
      { timeout: 10_000, message: 'the CLI to print the device code' },
    );
    const page = await new TestBrowser('hal').run(devicePage(shown[1]!, shown[2]!));
    assert.match(page.page ?? '', /Sign-in Success/);
    const code = await cli.done;
    assert.equal(code, 0, `${cli.stdout.text}\n${cli.stderr.text}`);
    assert.match(cli.stdout.text, /Logged in to .* as hal@example\.org \(member\)/);
  });

  test('Ctrl-C while waiting for the browser ends the login at once and closes the listener; strays are turned away', async () => {
    const cli = start(['login', '--url', url], { BROWSER: 'true' });
    const started = await until(() => /redirect_uri=([^&\s]+)/.exec(cli.stderr.text), {
      timeout: 10_000,
      message: 'the CLI to print the sign-in URL',
    });
    const listener = new URL(decodeURIComponent(started[1]!));
    await until(() => /Waiting for the sign-in/.test(cli.stderr.text), { timeout: 5000 });
    // Something else calling the listener (a web page, a guess) is turned away; the sign-in waits on.
    const stray = await fetch(`${listener.href}?code=attacker&state=forged`);
    assert.equal(stray.status, 400);
    assert.match(await stray.text(), /does not belong to the sign-in in progress/);
    process.emit('SIGINT');
    const code = await cli.done;
    assert.equal(code, 2, cli.stderr.text);
    assert.match(cli.stderr.text, /error: sign-in cancelled/);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(Number(listener.port), '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    assert.ok(refused, `the loopback listener on ${listener.port} is still open`);
  });

  /** When the person a token is for was last re-checked with the provider. */
  async function checkedAt(token: string): Promise<string | null> {
    const row = await db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select('users.checked_at')
      .where('tokens.hash', '=', createHash('sha256').update(token).digest('hex'))
      .executeTakeFirstOrThrow();
    return row.checked_at;
  }
});

describe('OIDC sign-in against a hostile issuer', () => {
  let dir: string;
  let db: Store;
  let hostile: HostileIssuer;
  let api: FastifyInstance;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-oidc-hostile-'));
    db = await openStore(new DataPaths(dir).store);
    hostile = await HostileIssuer.start();
    api = await apiWith(dir, db, {
      issuer: hostile.issuer,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      allowedDomains: ['example.org'],
    });
  });
  after(async () => {
    await api?.close();
    await hostile?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  async function signInWith(mode: HostileMode) {
    hostile.mode = mode;
    const { secret, secretHash } = newSecret();
    const start = await api.inject({
      method: 'POST',
      url: '/v1/auth/oidc/start',
      payload: { redirectUri: 'http://127.0.0.1:1/callback', secretHash },
    });
    assert.equal(start.statusCode, 200, start.body);
    const { flow, authorizeUrl } = start.json() as { flow: string; authorizeUrl: string };
    const asked = new URL(authorizeUrl).searchParams;
    hostile.nonce = asked.get('nonce') ?? '';
    return api.inject({
      method: 'POST',
      url: '/v1/auth/oidc/finish',
      payload: { flow, state: asked.get('state'), code: 'any-code', secret },
    });
  }

  test('a well-made token from it signs in (so the refusals below are the checks at work)', async () => {
    const res = await signInWith('good');
    assert.equal(res.statusCode, 200, res.body);
  });

  for (const [mode, why] of [
    ['wrong-issuer', /iss/],
    ['wrong-audience', /aud/],
    ['expired', /exp/],
    ['wrong-nonce', /nonce/],
    ['alg-none', /alg/],
    ['hs256', /alg|HS256|unsupported/],
    ['foreign-key', /signature/],
  ] as [HostileMode, RegExp][]) {
    test(`an ID token with ${mode} is refused, on the record`, async () => {
      const before = (await refusals(db)).length;
      const res = await signInWith(mode);
      assert.equal(res.statusCode, 401, res.body);
      const message = res.json().error.message as string;
      assert.match(message, /sign-in provider/);
      assert.match(message, why);
      const after = await refusals(db);
      assert.equal(after.length, before + 1);
    });
  }

  test('an ID token without an e-mail is refused', async () => {
    const res = await signInWith('no-email');
    assert.equal(res.statusCode, 401, res.body);
    assert.match(res.json().error.message, /did not say your e-mail/);
  });

  test('one address starting sign-in after sign-in is cut off before the table of flows fills', async () => {
    let refused: { statusCode: number; json(): { error: { message: string } } } | undefined;
    for (let n = 0; n < 40 && !refused; n++) {
      const res = await api.inject({
        method: 'POST',
        url: '/v1/auth/oidc/start',
        payload: { redirectUri: 'http://127.0.0.1:1/callback' },
        remoteAddress: '192.0.2.7',
      });
      if (res.statusCode !== 200) refused = res;
    }
    assert.equal(refused?.statusCode, 429);
    assert.match(
      refused?.json().error.message ?? '',
      /too many sign-ins were started from your address; try again in \d+ seconds/,
    );
    const open = await db.selectFrom('login_flows').select('id').execute();
    assert.ok(open.length <= 40, `${open.length} flows stored`);
    const other = await api.inject({
      method: 'POST',
      url: '/v1/auth/oidc/start',
      payload: { redirectUri: 'http://127.0.0.1:1/callback' },
      remoteAddress: '192.0.2.8',
    });
    assert.equal(other.statusCode, 200, 'another address is not held up');
  });
});

describe('OIDC sign-in with the provider down', () => {
  test('a clear answer after a few tries, and no flow stored; the next sign-in tries again', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-oidc-down-'));
    const db = await openStore(new DataPaths(dir).store);
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const config = loadConfig({
      dataDir: dir,
      identity: {
        oidc: { issuer: `http://127.0.0.1:${port}`, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
      },
    });
    const oidc = new OidcProvider(
      { db, config, secrets: testSecrets(), log: createLogger('silent') },
      config.identity.oidc!,
    );
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const t0 = Date.now();
        await assert.rejects(
          oidc.startBrowser({ redirectUri: 'http://127.0.0.1:1/callback' }),
          (err: Error) => {
            assert.ok(err instanceof UserError && err.code === 'unavailable', String(err));
            assert.match(
              err.message,
              /cannot reach the sign-in provider at http:\/\/127\.0\.0\.1:\d+ .*try again/,
            );
            return true;
          },
        );
        // Tried three times (waiting 250 ms, then 1 s), every time it is asked: a failure is not cached.
        assert.ok(Date.now() - t0 >= 1200, `gave up after ${Date.now() - t0} ms`);
      }
      const flows = await db.selectFrom('login_flows').select('id').execute();
      assert.equal(flows.length, 0);
    } finally {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// `petri users`, `petri tokens`, `petri whoami` and logging out of a sign-in session, against
// the real API (Fastify on loopback over a temp store), as a user types them: golden output
// where it is stable, the secret alone on stdout, usage errors exit 2.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { bootstrapAdmin, createUser, issueToken } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';
import { assertGolden, run } from './harness.js';

describe('petri users, tokens, whoami', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let url: string;
  let admin: string;
  let member: string;
  let anaId: number;
  const env = (token: string, more: Record<string, string> = {}) => ({
    PETRI_URL: url,
    PETRI_TOKEN: token,
    PETRI_CONFIG_DIR: path.join(dir, 'cli'),
    ...more,
  });
  const petri = (token: string, ...argv: string[]) => run(argv, { env: env(token) });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-cli-users-'));
    db = await openStore(new DataPaths(dir).store);
    admin = (await bootstrapAdmin(db))!;
    const ana = await createUser(db, 'ana@example.org', 'member', {
      email: 'ana@example.org',
      provider: 'oidc',
    });
    anaId = ana.id;
    // Checked with her provider just now (this server has none to ask; see identity/index.ts).
    await db
      .updateTable('users')
      .set({ checked_at: new Date().toISOString() })
      .where('id', '=', ana.id)
      .execute();
    member = await issueToken(db, ana.id, 'laptop', {
      kind: 'session',
      expiresAt: '2099-03-01T00:00:00.000Z',
    });
    await db
      .insertInto('teams')
      .values({ name: 'labs', personal_of: null, created_at: '2025-01-01T00:00:00.000Z' })
      .execute();
    api = await buildTestApi(dir, db, { apiHost: 'petri.example.org', httpPort: 80 });
    url = await api.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('petri users: everyone with role, kind, provider, last seen, apps and status; members are refused', async () => {
    await db
      .updateTable('users')
      .set({ created_at: '2025-01-01T00:00:00.000Z', last_seen_at: '2025-02-03T04:05:06.000Z' })
      .where('id', '=', anaId)
      .execute();
    const res = await petri(admin, 'users');
    assert.equal(res.stderr, '');
    assert.equal(res.code, 0);
    await assertGolden('users.txt', res.stdout);

    const json = JSON.parse((await petri(admin, 'users', '--json')).stdout) as { email: string | null }[];
    assert.ok(json.some((u) => u.email === 'ana@example.org'));

    const refused = await petri(member, 'users');
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'error: this is for admins and auditors; ask an admin if you need it\n');
  });

  test('petri users invite: the link alone on stdout, what it grants on stderr; invitations lists it', async () => {
    const res = await petri(
      admin,
      'users',
      'invite',
      'bea@example.org',
      '--role',
      'auditor',
      '--team',
      'labs',
      '--team-role',
      'viewer',
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^http:\/\/petri\.example\.org\/invite\/[A-Za-z0-9_-]{32}\n$/);
    assert.match(
      res.stderr,
      /^Invited bea@example\.org as auditor, in team labs as viewer\. The link works once, until \d{4}-\d\d-\d\d; it is not shown again:\n/,
    );
    const list = await petri(admin, 'users', 'invitations');
    assert.equal(list.code, 0);
    assert.match(
      list.stdout,
      /^ID +E-MAIL +ROLE +TEAM +BY +EXPIRES\n\d+ +bea@example\.org +auditor +labs \(viewer\) +admin +\d{4}-/,
    );
    const id = /^(\d+)/m.exec(list.stdout.split('\n')[1] ?? '')![1]!;
    const cancel = await petri(admin, 'users', 'invitations', 'cancel', id);
    assert.equal(cancel.stdout, 'Withdrew the invitation of bea@example.org; its link no longer works\n');
    assert.equal(
      (await petri(admin, 'users', 'invitations')).stdout,
      "No open invitations; invite someone with 'petri users invite EMAIL'\n",
    );

    const usage = await petri(admin, 'users', 'invite', 'x@example.org', '--role', 'root');
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, "error: --role is one of member, auditor, admin; got 'root'\n");
    const noTeam = await petri(admin, 'users', 'invite', 'x@example.org', '--team-role', 'viewer');
    assert.equal(noTeam.code, 2);
    const bad = await petri(admin, 'users', 'invite', 'not-an-address');
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "error: 'not-an-address' is not an e-mail address like ana@example.org\n");
  });

  test('petri users create-bot prints its token once; the bot is in its team; whoami shows it', async () => {
    const res = await petri(admin, 'users', 'create-bot', 'ci-deploy', '--team', 'labs', '--role', 'member');
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^petri_[A-Za-z0-9_-]{32}\n$/);
    assert.match(res.stderr, /^Created bot ci-deploy in team labs as member; its token never expires\./);
    const bot = res.stdout.trim();
    const who = await petri(bot, 'whoami');
    assert.equal(who.code, 0, who.stderr);
    await assertGolden('whoami-bot.txt', who.stdout.replace(url, 'URL'));

    const usage = await petri(admin, 'users', 'create-bot', 'x', '--team', 'labs', '--role', 'admin');
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, "error: --role is one of member, viewer; got 'admin'\n");
    const missing = await petri(admin, 'users', 'create-bot', 'x', '--role', 'member');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /required option '--team <team>'/);
  });

  test('petri whoami: e-mail, role, teams, and the token with its expiry; --json', async () => {
    const who = await petri(member, 'whoami');
    assert.equal(who.code, 0, who.stderr);
    await assertGolden('whoami.txt', who.stdout.replace(url, 'URL'));
    const json = JSON.parse((await petri(member, 'whoami', '--json')).stdout);
    assert.equal(json.user.email, 'ana@example.org');
    assert.equal(json.token.expiresAt, '2099-03-01T00:00:00.000Z');
    assert.equal(json.url, url);
  });

  test('petri users disable / enable / role', async () => {
    const fay = await createUser(db, 'fay@example.org', 'member', { email: 'fay@example.org' });
    const fayToken = await issueToken(db, fay.id, 'fay');
    const disabled = await petri(admin, 'users', 'disable', 'fay@example.org');
    assert.equal(disabled.stdout, 'Disabled fay@example.org; revoked 1 token and sessions\n');
    const refused = await petri(fayToken, 'apps');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: your account was disabled by an admin on \d{4}-\d\d-\d\d/);
    const enabled = await petri(admin, 'users', 'enable', 'fay@example.org');
    assert.equal(enabled.stdout, "Enabled fay@example.org; they sign in again with 'petri login'\n");
    const role = await petri(admin, 'users', 'role', 'fay@example.org', 'auditor');
    assert.equal(role.stdout, 'fay@example.org is now auditor\n');
    const bad = await petri(admin, 'users', 'role', 'fay@example.org', 'root');
    assert.equal(bad.code, 2);
    const last = await petri(admin, 'users', 'role', 'admin', 'member');
    assert.equal(last.code, 1);
    assert.match(last.stderr, /last admin/);
  });

  test('petri tokens: create prints the secret alone, the list never shows it, revoke stops it', async () => {
    const made = await petri(member, 'tokens', 'create', 'ci', '--expires', '30d');
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^petri_[A-Za-z0-9_-]{32}\n$/);
    assert.match(
      made.stderr,
      /^Created token (\d+) 'ci' for ana@example\.org, expires \d{4}-\d\d-\d\d\. Copy it now/,
    );
    const secret = made.stdout.trim();
    assert.equal((await petri(secret, 'whoami')).code, 0);

    // Stable times for the golden file.
    await db
      .updateTable('tokens')
      .set({
        created_at: '2025-01-02T00:00:00.000Z',
        expires_at: '2099-01-01T00:00:00.000Z',
        last_used_at: null,
      })
      .where('description', '=', 'ci')
      .execute();
    await db
      .updateTable('tokens')
      .set({ created_at: '2025-01-01T00:00:00.000Z' })
      .where('description', '=', 'laptop')
      .execute();
    await db
      .updateTable('tokens')
      .set({ expires_at: '2025-06-01T00:00:00.000Z', created_at: '2025-01-01T00:00:00.000Z' })
      .where(
        'id',
        '=',
        (
          await db
            .insertInto('tokens')
            .values({
              user_id: anaId,
              hash: 'x'.repeat(64),
              description: 'old script',
              created_at: '2025-01-01T00:00:00.000Z',
              last_used_at: '2025-01-05T00:00:00.000Z',
            })
            .returning('id')
            .executeTakeFirstOrThrow()
        ).id,
      )
      .execute();
    const list = await petri(member, 'tokens');
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!list.stdout.includes(secret));
    await assertGolden(
      'tokens.txt',
      list.stdout.replace(/^\d+(\*?) /gm, (_m, star: string) => `ID${star} `),
    );
    assert.equal(list.stderr, '* the token this command used\n');

    const id = /^Created token (\d+)/.exec(made.stderr)![1]!;
    const revoked = await petri(member, 'tokens', 'revoke', id);
    assert.equal(revoked.stdout, `Revoked token ${id} 'ci'\n`);
    const after = await petri(secret, 'apps');
    assert.equal(after.code, 1);
    assert.match(after.stderr, /^error: this token was revoked on \d{4}-\d\d-\d\d; run 'petri login'\n$/);

    for (const argv of [
      ['tokens', 'create', 'x', '--expires', 'soon'],
      ['tokens', 'revoke', 'abc'],
      ['tokens', 'revoke', '0'],
    ]) {
      const usage = await petri(member, ...argv);
      assert.equal(usage.code, 2, argv.join(' '));
    }
    const never = await petri(member, 'tokens', 'create', 'x', '--expires', 'never');
    assert.equal(never.code, 1);
    assert.match(never.stderr, /only an admin may make a token that never expires/);
  });

  test('petri logout ends a sign-in session on the server; an api token given with --token stays', async () => {
    const configDir = path.join(dir, 'logout');
    const loginEnv = { PETRI_CONFIG_DIR: configDir };
    const session = await issueToken(db, anaId, 'session', { kind: 'session' });
    const login = await run(['login', '--url', url, '--token', session], { env: loginEnv });
    assert.equal(login.code, 0, login.stderr);
    const out = await run(['logout'], { env: loginEnv });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^Logged out of http:\/\/127\.0\.0\.1:\d+; removed it from /);
    assert.equal((await petri(session, 'whoami')).code, 1, 'the session is revoked');

    const script = await issueToken(db, anaId, 'script');
    await run(['login', '--url', url, '--token', script], { env: loginEnv });
    await run(['logout'], { env: loginEnv });
    assert.equal((await petri(script, 'whoami')).code, 0, 'an api token is not revoked by logout');
  });
});

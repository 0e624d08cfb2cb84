// `petri audience` against the real API (Fastify on loopback over a temp store), as a user
// types it: the audience and its list, set (with the admin's --approve for personal data),
// invite and remove, invite links (the URL alone on stdout), visitors; golden output where
// it is stable, the server's refusals on one line of stderr, usage errors exit 2.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { recordConsent } from '../../src/domain/audiences.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';
import { assertGolden, run } from './harness.js';

describe('petri audience', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let url: string;
  const tokens: Record<string, string> = {};
  const petri = (who: string, ...argv: string[]) =>
    run(argv, {
      env: { PETRI_URL: url, PETRI_TOKEN: tokens[who], PETRI_CONFIG_DIR: path.join(dir, 'cli') },
      cwd: dir,
    });
  const appId = async (name: string) =>
    (await db.selectFrom('apps').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-cli-audience-'));
    db = await openStore(new DataPaths(dir).store);
    for (const [name, role] of [
      ['root', 'admin'],
      ['ana', 'member'],
    ] as const) {
      const user = await createUser(db, name, role, { email: `${name}@example.org` });
      tokens[name] = await issueToken(db, user.id, 'test');
    }
    api = await buildTestApi(dir, db, { domain: 'petri.test', httpPort: 80 });
    url = await api.listen({ host: '127.0.0.1', port: 0 });
    for (const body of [
      { name: 'club' },
      { name: 'survey', data: 'personal', privacy: 'e-mails, to ask again', retention: '30d' },
    ]) {
      const res = await api.inject({
        method: 'POST',
        url: '/v1/apps',
        payload: body,
        headers: { authorization: `Bearer ${tokens.ana}` },
      });
      assert.equal(res.statusCode, 201, res.body);
    }
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('shows the audience of a new app (staff)', async () => {
    const shown = await petri('ana', 'audience', '--app', 'club');
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(
      shown.stdout,
      'app:      club\naudience: staff (anyone who can sign in to Petri)\nnotice:   version 1\ninvitees: 0\n',
    );
    assert.equal(shown.stderr, '');
    // petri.toml names the app when --app does not.
    writeFileSync(path.join(dir, 'petri.toml'), 'name = "club"\n');
    const json = await petri('ana', 'audience', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).audience, 'staff');
  });

  test('set, invite, remove: what changed, and the list', async () => {
    const set = await petri('ana', 'audience', 'set', 'invite', '--app', 'club');
    assert.equal(set.code, 0, set.stderr);
    assert.equal(
      set.stdout,
      "club is now for invite: only the people invited and invite links\nNobody is invited yet: 'petri audience invite EMAIL... --app club' or 'petri audience links create --app club'\n",
    );
    const invited = await petri(
      'ana',
      'audience',
      'invite',
      'Zoe@Example.org',
      'max@example.org',
      '--app',
      'club',
    );
    assert.equal(invited.code, 0, invited.stderr);
    assert.equal(invited.stdout, 'Invited to club: zoe@example.org, max@example.org\n');
    const again = await petri('ana', 'audience', 'invite', 'max@example.org', '--app', 'club');
    assert.equal(again.stdout, 'Already invited: max@example.org\n');
    const bad = await petri(
      'ana',
      'audience',
      'invite',
      'eve@example.org\r\nX-Petri-User: root',
      '--app',
      'club',
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: .* is not an e-mail address like ana@example.org/);
    assert.equal(bad.stderr.split('\n').length, 2, 'one line');

    await db.updateTable('audience_invitees').set({ created_at: '2026-03-01T10:00:00.000Z' }).execute();
    const shown = await petri('ana', 'audience', '--app', 'club');
    await assertGolden('audience.txt', shown.stdout);

    const removed = await petri('ana', 'audience', 'remove', 'zoe@example.org', '--app', 'club');
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, "Removed zoe@example.org from club's list\n");
    const missing = await petri('ana', 'audience', 'remove', 'zoe@example.org', '--app', 'club');
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      "error: zoe@example.org is not invited to 'club'; list who is with 'petri audience --app club'\n",
    );
    const wrong = await petri('ana', 'audience', 'set', 'everyone', '--app', 'club');
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stderr, "error: audience must be one of staff, invite or public, got 'everyone'\n");
  });

  test('public with personal data: refused for a member, --approve by an admin', async () => {
    const member = await petri('ana', 'audience', 'set', 'public', '--app', 'survey');
    assert.equal(member.code, 1);
    assert.match(
      member.stderr,
      /only an admin may make it public; ask one to run 'petri audience set public --approve --app survey'/,
    );
    const approved = await petri('root', 'audience', 'set', 'public', '--approve', '--app', 'survey');
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(approved.stdout, 'survey is now for public: anyone\n');
  });

  test('links: the URL alone on stdout, the list, revoke; bad numbers are usage errors', async () => {
    const none = await petri('ana', 'audience', 'links', '--app', 'club');
    assert.equal(
      none.stdout,
      "club has no invite links; create one with 'petri audience links create --app club'\n",
    );
    const created = await petri(
      'ana',
      'audience',
      'links',
      'create',
      '--uses',
      '3',
      '--expires',
      '2d',
      '--app',
      'club',
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^http:\/\/club\.petri\.test\/\.petri\/join\/[A-Za-z0-9_-]{43}\n$/);
    assert.match(created.stderr, /^Link 1 lets in 3 people until .*only time its URL is shown/);
    await petri('ana', 'audience', 'links', 'create', '--app', 'club');
    const revoked = await petri('ana', 'audience', 'links', 'revoke', '2', '--app', 'club');
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout, 'Revoked link 2 of club\n');
    await db
      .updateTable('audience_links')
      .set({ expires_at: '2026-03-08T10:00:00.000Z', created_at: '2026-03-01T10:00:00.000Z' })
      .execute();
    const list = await petri('ana', 'audience', 'links', '--app', 'club');
    await assertGolden('audience-links.txt', list.stdout);
    for (const argv of [
      ['links', 'create', '--uses', '0'],
      ['links', 'create', '--uses', 'lots'],
      ['links', 'revoke', 'x'],
    ]) {
      const res = await petri('ana', 'audience', ...argv, '--app', 'club');
      assert.equal(res.code, 2, `${argv.join(' ')}: ${res.stderr}`);
    }
    const far = await petri('ana', 'audience', 'links', 'create', '--expires', '1y', '--app', 'club');
    assert.equal(far.code, 1);
    assert.match(far.stderr, /expires may be at most 90d|expires must be/);
    const gone = await petri('ana', 'audience', 'links', 'revoke', '99', '--app', 'club');
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /has no invite link 99/);
  });

  test('visitors: who consented to which notice; a hostile visitor name cannot write to the terminal', async () => {
    const empty = await petri('ana', 'audience', 'visitors', '--app', 'club');
    assert.equal(empty.stdout, "Nobody has consented to club's notice yet\n");
    const id = await appId('club');
    await recordConsent(db, id, 'max@example.org', 1);
    await recordConsent(db, id, 'invite:1', 1);
    await recordConsent(db, id, 'x\u001b]0;owned\u0007@example.org', 1);
    // A new notice: max consented to the old one.
    await api.inject({
      method: 'PATCH',
      url: '/v1/apps/club/experiment',
      payload: { description: 'A club for testers' },
      headers: { authorization: `Bearer ${tokens.ana}` },
    });
    await recordConsent(db, id, 'invite:1', 2);
    await db
      .updateTable('audience_consents')
      .set({ consented_at: '2026-03-02T09:00:00.000Z', last_visit_at: '2026-03-03T09:00:00.000Z' })
      .where('visitor', '=', 'invite:1')
      .execute();
    await db
      .updateTable('audience_consents')
      .set({
        consented_at: '2026-03-01T09:00:00.000Z',
        last_visit_at: null,
        withdrawn_at: '2026-03-04T09:00:00.000Z',
      })
      .where('visitor', '!=', 'invite:1')
      .execute();
    const list = await petri('ana', 'audience', 'visitors', '--app', 'club');
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!list.stdout.includes('\u001b'));
    await assertGolden('audience-visitors.txt', list.stdout);
  });

  test('invite --link: a personal single-use link for someone outside the organisation, printed once', async () => {
    const linked = await petri('ana', 'audience', 'invite', 'out@partner.example', '--link', '--app', 'club');
    assert.equal(linked.code, 0, linked.stderr);
    assert.match(
      linked.stdout,
      /^Invited to club: out@partner.example\nPersonal link for out@partner.example \(once, until \d{4}-\d\d-\d\d; shown only now\):\n {2}http:\/\/club\.[^/]+\/\.petri\/join\/[A-Za-z0-9_-]{43}\n$/,
    );
    const links = await petri('ana', 'audience', 'links', '--json', '--app', 'club');
    const personal = (JSON.parse(links.stdout) as { email?: string | null; maxUses: number }[]).filter(
      (l) => l.email === 'out@partner.example',
    );
    assert.deepEqual(
      personal.map((l) => l.maxUses),
      [1],
    );
  });
});

// Audiences through the API as people use them (issue 15): the audience of new and old
// apps, setting it (public with personal data is an admin's approval, audited), invitees
// (hostile addresses refused), invite links (the secret shown once, never stored; uses,
// expiry and revocation as the gate will meet them), visitors and their consents, and the
// key and notice versions every change that must end cookies or ask again raises.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import {
  audienceFromManifest,
  hashLinkSecret,
  recordConsent,
  spendLink,
  withdrawConsent,
} from '../../src/domain/audiences.js';
import { describeFromManifest } from '../../src/domain/experiments.js';
import { loadConfig } from '../../src/lib/config.js';
import { DataPaths } from '../../src/lib/paths.js';
import { now, openStore, type Store } from '../../src/store/db.js';
import { addUsers, buildTestApi } from './test-api.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

describe('audiences', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};

  const call = (who: string, method: Method, url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });
  const message = (res: { json: () => { error: { message: string } } }) => res.json().error.message;
  const row = (name: string) =>
    db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
  const events = (action: string, target: string) =>
    db
      .selectFrom('audit_events')
      .select(['actor', 'detail'])
      .where('action', '=', action)
      .where('target', '=', target)
      .orderBy('id')
      .execute();
  const create = async (name: string, body: object = {}) => {
    const res = await call('ana', 'POST', '/v1/apps', { name, team: 'labs', ...body });
    assert.equal(res.statusCode, 201, res.body);
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-audiences-'));
    db = await openStore(new DataPaths(dir).store);
    await addUsers(
      db,
      [
        ['root', 'admin'],
        ['ana', 'member'],
        ['bob', 'member'],
        ['vic', 'member'],
        ['eve', 'member'],
      ],
      tokens,
      ids,
    );
    api = await buildTestApi(dir, db, { domain: 'petri.test', httpPort: 8080 });
    assert.equal((await call('ana', 'POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    for (const [who, role] of [
      ['bob', 'member'],
      ['vic', 'viewer'],
    ]) {
      const res = await call('ana', 'PUT', `/v1/teams/labs/members/${who}@example.org`, { role });
      assert.equal(res.statusCode, 200, res.body);
    }
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a new app is for staff by default; apps from before the upgrade stay public', async () => {
    await create('tool');
    const res = await call('vic', 'GET', '/v1/apps/tool/audience');
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), {
      app: 'tool',
      audience: 'staff',
      noticeVersion: 1,
      keyVersion: 1,
      invitees: [],
      enforced: true,
    });
    // A row written without an audience (as every app was before 0020-audiences) is public.
    const team = await db
      .selectFrom('teams')
      .select('id')
      .where('name', '=', 'labs')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('apps')
      .values({
        name: 'oldie',
        owner_id: ids.ana!,
        team_id: team.id,
        created_at: now(),
        memory_mib: 256,
        cpus: 1,
        pids: 64,
        desired_release_id: null,
        serving_release_id: null,
        boot_timeout_ms: null,
      })
      .execute();
    assert.equal((await call('ana', 'GET', '/v1/apps/oldie/audience')).json().audience, 'public');
    // The inventory says it too.
    const rows = (await call('ana', 'GET', '/v1/inventory')).json().apps as {
      name: string;
      audience: string;
    }[];
    assert.deepEqual(Object.fromEntries(rows.map((r) => [r.name, r.audience])), {
      tool: 'staff',
      oldie: 'public',
    });
    // Outsiders do not learn the app exists; nobody signed in is refused.
    assert.equal((await call('eve', 'GET', '/v1/apps/tool/audience')).statusCode, 404);
    assert.equal((await api.inject({ method: 'GET', url: '/v1/apps/tool/audience' })).statusCode, 401);
  });

  test('audience.default in the configuration picks the audience of new apps, and is checked', () => {
    assert.equal(loadConfig({ dataDir: dir }).audience.default, 'staff');
    assert.equal(
      loadConfig({ dataDir: dir, audience: { default: 'public' } } as never).audience.default,
      'public',
    );
    assert.throws(
      () => loadConfig({ dataDir: dir, audience: { default: 'everyone' } } as never),
      /audience\.default.*"staff", "invite" or "public"/,
    );
    assert.throws(() => loadConfig({ dataDir: dir, audience: { defualt: 'staff' } } as never), /defualt/);
  });

  test('members set the audience, viewers cannot; each change raises the key version and is audited', async () => {
    await create('poll');
    const viewer = await call('vic', 'PUT', '/v1/apps/poll/audience', { audience: 'invite' });
    assert.equal(viewer.statusCode, 403);
    const res = await call('bob', 'PUT', '/v1/apps/poll/audience', { audience: 'Invite' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().audience, 'invite');
    assert.equal(res.json().keyVersion, 2);
    // The same audience again changes nothing, not even the key.
    const again = await call('bob', 'PUT', '/v1/apps/poll/audience', { audience: 'invite' });
    assert.equal(again.json().keyVersion, 2);
    const pub = await call('bob', 'PUT', '/v1/apps/poll/audience', { audience: 'public' });
    assert.equal(pub.statusCode, 200, pub.body);
    assert.equal(pub.json().keyVersion, 3);
    const audits = await events('app.audience', 'poll');
    assert.deepEqual(
      audits.map((e) => [e.actor, JSON.parse(e.detail)]),
      [
        ['bob', { from: 'staff', to: 'invite' }],
        ['bob', { from: 'invite', to: 'public' }],
      ],
    );
    const bad = await call('bob', 'PUT', '/v1/apps/poll/audience', { audience: 'everyone' });
    assert.equal(bad.statusCode, 400);
    assert.equal(message(bad), "audience must be one of staff, invite or public, got 'everyone'");
    const extra = await call('bob', 'PUT', '/v1/apps/poll/audience', { audience: 'staff', who: 1 });
    assert.equal(extra.statusCode, 400);
  });

  test('an app with personal data goes public only with an admin approve, on the record', async () => {
    await create('survey', { data: 'personal', privacy: 'e-mails, to ask again', retention: '30d' });
    const member = await call('ana', 'PUT', '/v1/apps/survey/audience', { audience: 'public' });
    assert.equal(member.statusCode, 403);
    assert.match(message(member), /holds personal data: only an admin may make it public; ask one to run/);
    const forged = await call('ana', 'PUT', '/v1/apps/survey/audience', {
      audience: 'public',
      approve: true,
    });
    assert.equal(forged.statusCode, 403);
    assert.match(message(forged), /--approve is for platform admins/);
    const admin = await call('root', 'PUT', '/v1/apps/survey/audience', { audience: 'public' });
    assert.equal(admin.statusCode, 403);
    assert.match(message(admin), /petri audience set public --approve --app survey/);
    assert.equal((await row('survey')).audience, 'staff');
    const ok = await call('root', 'PUT', '/v1/apps/survey/audience', { audience: 'public', approve: true });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().audience, 'public');
    const [audit] = await events('app.audience', 'survey');
    assert.equal(audit!.actor, 'root');
    assert.deepEqual(JSON.parse(audit!.detail), {
      from: 'staff',
      to: 'public',
      approved: true,
      data: 'personal',
    });
    // petri.toml cannot do what only an admin may.
    await create('survey2', { data: 'sensitive', privacy: 'health', retention: '30d' });
    await assert.rejects(
      audienceFromManifest(db, await row('survey2'), 'public', ids.ana!),
      /petri.toml: audience = "public" .* needs an admin's approval/,
    );
    await audienceFromManifest(db, await row('survey2'), 'invite', ids.ana!);
    assert.equal((await row('survey2')).audience, 'invite');
    const [fromToml] = await events('app.audience', 'survey2');
    assert.deepEqual(JSON.parse(fromToml!.detail), { from: 'staff', to: 'invite', via: 'petri.toml' });
    await assert.rejects(
      audienceFromManifest(db, await row('survey2'), 'friends', ids.ana!),
      /petri.toml: audience must be/,
    );
  });

  test('invitees: added once, lower case; hostile addresses refused; removing one ends every cookie', async () => {
    await create('club');
    const res = await call('ana', 'POST', '/v1/apps/club/audience/invitees', {
      emails: ['Zoe@Example.org', 'max@example.org', 'zoe@example.org'],
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json().added, ['zoe@example.org', 'max@example.org']);
    assert.deepEqual(
      res.json().invitees.map((i: { email: string; invitedBy: string }) => [i.email, i.invitedBy]),
      [
        ['max@example.org', 'ana@example.org'],
        ['zoe@example.org', 'ana@example.org'],
      ],
    );
    const again = await call('bob', 'POST', '/v1/apps/club/audience/invitees', {
      emails: ['max@example.org'],
    });
    assert.deepEqual(again.json().added, []);
    assert.equal((await events('app.audience.invite', 'club')).length, 1);

    for (const hostile of [
      'eve@example.org\r\nX-Petri-User: root@example.org',
      'eve@example.org\nx',
      'ev\u0000e@example.org',
      'eve@exa\u202emple.org',
      'évé@example.org',
      'not-an-address',
      '',
    ]) {
      const bad = await call('ana', 'POST', '/v1/apps/club/audience/invitees', {
        emails: ['ok@example.org', hostile],
      });
      assert.equal(bad.statusCode, 400, `${JSON.stringify(hostile)}: ${bad.body}`);
      assert.match(message(bad), /is not an e-mail address like ana@example.org/);
      assert.doesNotMatch(message(bad), /[\r\n\0]/);
    }
    // A refused batch adds nobody, not even its good addresses.
    const list = (await call('ana', 'GET', '/v1/apps/club/audience')).json();
    assert.deepEqual(
      list.invitees.map((i: { email: string }) => i.email),
      ['max@example.org', 'zoe@example.org'],
    );
    assert.equal(
      (await call('vic', 'POST', '/v1/apps/club/audience/invitees', { emails: ['a@b.org'] })).statusCode,
      403,
    );
    const tooMany = await call('ana', 'POST', '/v1/apps/club/audience/invitees', {
      emails: Array.from({ length: 101 }, (_, i) => `p${i}@example.org`),
    });
    assert.equal(tooMany.statusCode, 400);

    const key = (await row('club')).audience_key_version;
    const removed = await call('ana', 'DELETE', '/v1/apps/club/audience/invitees/ZOE%40example.org');
    assert.equal(removed.statusCode, 200, removed.body);
    assert.deepEqual(
      removed.json().invitees.map((i: { email: string }) => i.email),
      ['max@example.org'],
    );
    assert.equal(removed.json().keyVersion, key + 1);
    const gone = await call('ana', 'DELETE', '/v1/apps/club/audience/invitees/zoe%40example.org');
    assert.equal(gone.statusCode, 404);
    assert.equal(
      message(gone),
      "zoe@example.org is not invited to 'club'; list who is with 'petri audience --app club'",
    );
    assert.equal((await row('club')).audience_key_version, key + 1);
    assert.deepEqual(JSON.parse((await events('app.audience.remove', 'club'))[0]!.detail), {
      email: 'zoe@example.org',
    });
  });

  test('invite links: the URL once, only its hash kept; uses, expiry and revocation hold', async () => {
    await create('party');
    const res = await call('ana', 'POST', '/v1/apps/party/audience/links', { uses: 2, expires: '2d' });
    assert.equal(res.statusCode, 201, res.body);
    const { link, url } = res.json();
    const match = /^http:\/\/party\.petri\.test:8080\/\.petri\/join\/([A-Za-z0-9_-]{43})$/.exec(url);
    assert.ok(match, url);
    const secret = match[1]!;
    assert.equal(link.maxUses, 2);
    assert.equal(link.usesLeft, 2);
    assert.equal(link.state, 'active');
    assert.equal(link.createdBy, 'ana@example.org');
    const days = (Date.parse(link.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 1.99 && days <= 2, String(days));
    // The secret is nowhere in the store: not in the link's row, not in the audit trail.
    const stored = await db
      .selectFrom('audience_links')
      .selectAll()
      .where('id', '=', link.id)
      .executeTakeFirstOrThrow();
    assert.equal(stored.token_hash, hashLinkSecret(secret));
    const audit = await db
      .selectFrom('audit_events')
      .select('detail')
      .where('action', '=', 'app.audience.link')
      .execute();
    assert.ok(audit.length > 0 && audit.every((a) => !a.detail.includes(secret)));
    const listed = await call('vic', 'GET', '/v1/apps/party/audience/links');
    assert.equal(listed.statusCode, 200);
    assert.ok(!listed.body.includes(secret));

    // Defaults: 50 people, 7 days.
    const plain = (await call('bob', 'POST', '/v1/apps/party/audience/links', {})).json();
    assert.equal(plain.link.maxUses, 50);
    assert.ok(Math.abs(Date.parse(plain.link.expiresAt) - Date.now() - 7 * 86_400_000) < 60_000);

    for (const [body, pattern] of [
      [{ uses: 0 }, /^uses must be a whole number of people from 1 to 10000, got 0$/],
      [{ uses: 10_001 }, /^uses must be/],
      [{ expires: '91d' }, /^expires may be at most 90d/],
      [{ expires: 'soon' }, /^expires must be a period like/],
      [{ expires: '-1d' }, /^expires must be a period like/],
    ] as const) {
      const bad = await call('ana', 'POST', '/v1/apps/party/audience/links', body);
      assert.equal(bad.statusCode, 400, JSON.stringify(body));
      assert.match(message(bad), pattern);
    }
    assert.equal((await call('vic', 'POST', '/v1/apps/party/audience/links', {})).statusCode, 403);

    // As the gate will use it: two people, then no more.
    const app = await row('party');
    assert.equal((await spendLink(db, app.id, secret)).id, link.id);
    assert.equal((await spendLink(db, app.id, secret)).id, link.id);
    await assert.rejects(spendLink(db, app.id, secret), /used as many times as it may/);
    await assert.rejects(spendLink(db, app.id, 'x'.repeat(43)), /not one of this app/);
    // Another app's link does not open this one.
    await create('other');
    await assert.rejects(
      spendLink(db, (await row('other')).id, plain.url.split('/').at(-1)),
      /not one of this app/,
    );

    const key = (await row('party')).audience_key_version;
    const revoked = await call('ana', 'DELETE', `/v1/apps/party/audience/links/${plain.link.id}`);
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal(revoked.json().state, 'revoked');
    assert.equal((await row('party')).audience_key_version, key + 1);
    await assert.rejects(spendLink(db, app.id, plain.url.split('/').at(-1)), /was revoked/);
    // Revoking again changes nothing; a link of another app is not found from this one.
    await call('ana', 'DELETE', `/v1/apps/party/audience/links/${plain.link.id}`);
    assert.equal((await row('party')).audience_key_version, key + 1);
    assert.equal(
      (await call('ana', 'DELETE', `/v1/apps/other/audience/links/${plain.link.id}`)).statusCode,
      404,
    );
    const states = (await call('ana', 'GET', '/v1/apps/party/audience/links')).json().links;
    assert.deepEqual(
      states.map((l: { state: string }) => l.state),
      ['used up', 'revoked'],
    );

    // An expired link is refused with its date.
    await db
      .updateTable('audience_links')
      .set({ expires_at: '2020-01-01T00:00:00.000Z', uses_left: 5 })
      .where('id', '=', link.id)
      .execute();
    await assert.rejects(spendLink(db, app.id, secret), /expired on 2020-01-01/);
  });

  test('visitors: consents with their notice version; a new notice asks again, raising both versions', async () => {
    await create('notes', { description: 'Shared notes' });
    const app = await row('notes');
    await recordConsent(db, app.id, 'max@example.org', 1);
    await recordConsent(db, app.id, 'invite:7', 1);
    assert.equal(await withdrawConsent(db, app.id, 'invite:7'), true);
    assert.equal(await withdrawConsent(db, app.id, 'invite:7'), false);
    let res = await call('vic', 'GET', '/v1/apps/notes/audience/visitors');
    assert.equal(res.statusCode, 200, res.body);
    const byVisitor = (list: { visitor: string }[]) =>
      Object.fromEntries(list.map((v) => [v.visitor, v])) as Record<string, Record<string, unknown>>;
    let visitors = byVisitor(res.json().visitors);
    assert.equal(visitors['max@example.org']!.current, true);
    assert.equal(visitors['invite:7']!.current, false);
    assert.ok(visitors['invite:7']!.withdrawnAt);

    // Unchanged description: nothing new to say.
    await call('ana', 'PATCH', '/v1/apps/notes/experiment', { description: 'Shared notes' });
    assert.equal((await row('notes')).notice_version, 1);
    const patched = await call('ana', 'PATCH', '/v1/apps/notes/experiment', {
      data: 'personal',
      privacy: 'names in notes',
      retention: '30d',
    });
    assert.equal(patched.statusCode, 200, patched.body);
    const after = await row('notes');
    assert.equal(after.notice_version, 2);
    assert.equal(after.audience_key_version, app.audience_key_version + 1);
    res = await call('ana', 'GET', '/v1/apps/notes/audience/visitors');
    assert.equal(res.json().noticeVersion, 2);
    visitors = byVisitor(res.json().visitors);
    assert.equal(visitors['max@example.org']!.current, false);
    assert.equal(visitors['max@example.org']!.noticeVersion, 1);
    // Consenting again to the new notice makes it current (and a withdrawn one comes back).
    await recordConsent(db, app.id, 'invite:7', 2);
    visitors = byVisitor((await call('ana', 'GET', '/v1/apps/notes/audience/visitors')).json().visitors);
    assert.equal(visitors['invite:7']!.current, true);
    assert.equal(visitors['invite:7']!.withdrawnAt, null);

    // petri.toml's description changes the notice too, once.
    await describeFromManifest(db, await row('notes'), { retention: '60d' }, ids.ana!);
    assert.equal((await row('notes')).notice_version, 3);
    await describeFromManifest(db, await row('notes'), { retention: '60d' }, ids.ana!);
    assert.equal((await row('notes')).notice_version, 3);
  });

  test('a public app whose data becomes personal or sensitive is taken off public, to staff', async () => {
    await create('board');
    await call('ana', 'PUT', '/v1/apps/board/audience', { audience: 'public' });
    // Anonymous data may stay public.
    await call('ana', 'PATCH', '/v1/apps/board/experiment', { data: 'anonymous' });
    assert.equal((await row('board')).audience, 'public');
    const res = await call('ana', 'PATCH', '/v1/apps/board/experiment', {
      data: 'personal',
      privacy: 'names',
      retention: '30d',
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await row('board')).audience, 'staff');
    const moved = (await events('app.audience', 'board')).map((e) => JSON.parse(e.detail));
    assert.deepEqual(moved.at(-1), {
      from: 'public',
      to: 'staff',
      reason: "data=personal is public only with an admin's approval ('petri audience set public --approve')",
    });
    // An admin's approval of public is of the class it saw: sensitive takes it off again.
    await call('root', 'PUT', '/v1/apps/board/audience', { audience: 'public', approve: true });
    assert.equal((await row('board')).audience, 'public');
    await describeFromManifest(db, await row('board'), { data: 'sensitive' }, ids.ana!);
    assert.equal((await row('board')).audience, 'staff');
    const [last] = (await events('app.audience', 'board')).slice(-1);
    assert.equal(JSON.parse(last!.detail).via, 'petri.toml');
    // Not public: a change of class leaves the audience alone.
    await call('ana', 'PUT', '/v1/apps/board/audience', { audience: 'invite' });
    await call('ana', 'PATCH', '/v1/apps/board/experiment', { data: 'personal' });
    assert.equal((await row('board')).audience, 'invite');
  });

  test('an archived app keeps its audience as it is', async () => {
    await create('old');
    await db.updateTable('apps').set({ stage: 'archived' }).where('name', '=', 'old').execute();
    for (const [method, url, body] of [
      ['PUT', '/v1/apps/old/audience', { audience: 'invite' }],
      ['POST', '/v1/apps/old/audience/invitees', { emails: ['a@example.org'] }],
      ['POST', '/v1/apps/old/audience/links', {}],
    ] as const) {
      const res = await call('ana', method, url, body);
      assert.equal(res.statusCode, 409, `${method} ${url}: ${res.body}`);
      assert.match(message(res), /archived/);
    }
  });
});

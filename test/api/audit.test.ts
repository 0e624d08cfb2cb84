// The audit trail through the API: a change names who made it (user, token, address, request
// id); a refused request is on the record too (denied, with its request id), without the
// route doing anything; a flood of anonymous refusals is counted rather than recorded one by
// one; concurrent requests make one chain; and who sees which events.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import WebSocket from 'ws';
import { pendingAnonymousRefusals, setAnonymousRefusalBudget, verifyAudit } from '../../src/domain/audit.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { now, openStore, type Store } from '../../src/store/db.js';
import type { User } from '../../src/store/schema.js';
import { buildTestApi } from './test-api.js';

interface Event {
  id: number;
  actor: string;
  actorId: number | null;
  tokenId: number | null;
  via: string;
  action: string;
  target: string;
  app: string | null;
  team: string | null;
  outcome: string;
  status: number | null;
  ip: string | null;
  requestId: string | null;
  detail: Record<string, unknown>;
}

describe('the audit trail through the API', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const users = new Map<string, User>();
  const tokens = new Map<string, string>();
  const teams = new Map<string, number>();
  const as = (who: string) => ({ authorization: `Bearer ${tokens.get(who)}` });

  async function list(who: string, query = ''): Promise<Event[]> {
    const res = await api.inject({ method: 'GET', url: `/v1/audit${query}`, headers: as(who) });
    assert.equal(res.statusCode, 200, res.body);
    return res.json().events;
  }

  /** The event recorded for the request with this id (recorded once it was answered). */
  async function eventOf(requestId: string): Promise<Event> {
    return until(
      async () => (await list('admin', '?limit=1000')).find((e) => e.requestId === requestId) ?? undefined,
      { timeout: 5000, message: `the event of request ${requestId}` },
    );
  }

  /** A request whose event is recorded after those of every request answered before it. */
  async function marker(): Promise<void> {
    const res = await api.inject({ method: 'POST', url: '/v1/apps/blog/wake', headers: as('bob') });
    await eventOf(String(res.headers['x-request-id']));
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-audit-api-'));
    db = await openStore(new DataPaths(dir).store);
    for (const [who, role] of [
      ['admin', 'admin'],
      ['ana', 'member'],
      ['vic', 'member'],
      ['bob', 'member'],
      ['aud', 'auditor'],
    ] as const) {
      const user = await createUser(db, who, role, { email: `${who}@example.org` });
      users.set(who, user);
      tokens.set(who, await issueToken(db, user.id, 'test'));
    }
    // lab: ana (member), vic (viewer), with the app blog; other: bob, with the app secret.
    for (const [team, members, app] of [
      [
        'lab',
        [
          ['ana', 'member'],
          ['vic', 'viewer'],
        ],
        'blog',
      ],
      ['other', [['bob', 'admin']], 'secret'],
    ] as const) {
      const { id } = await db
        .insertInto('teams')
        .values({ name: team, personal_of: null, created_at: now() })
        .returning('id')
        .executeTakeFirstOrThrow();
      teams.set(team, id);
      for (const [who, role] of members) {
        await db
          .insertInto('team_members')
          .values({ team_id: id, user_id: users.get(who)!.id, role, created_at: now() })
          .execute();
      }
      await db
        .insertInto('apps')
        .values({
          name: app,
          owner_id: users.get('admin')!.id,
          team_id: id,
          created_at: now(),
          memory_mib: 256,
          cpus: 0.5,
          pids: 128,
        })
        .execute();
    }
    // `petri run` starts a command that prints nothing and exits 0.
    const runOneOff = async () => {
      const out = () => Readable.from([]);
      return {
        stdin: new PassThrough(),
        stdout: out(),
        stderr: out(),
        resize: () => {},
        signal: () => {},
        wait: async () => ({ exitCode: 0, signal: null }),
      };
    };
    api = await buildTestApi(dir, db, {}, { runOneOff });
    await api.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a change names its user, token, address, request id and app and team', async () => {
    // Over a socket, with a body of many packets: its end arrives in the socket's events,
    // outside the request's scope, and the handler's event must still know the request.
    const address = api.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${address.port}/v1/apps/blog`, {
      method: 'PATCH',
      // A request id the client makes up is not taken.
      headers: { ...as('ana'), 'content-type': 'application/json', 'x-request-id': 'made-up' },
      body: `${JSON.stringify({ settings: { idleTimeoutSeconds: 600 } })}${' '.repeat(600_000)}`,
    });
    assert.equal(res.status, 200, await res.text());
    const requestId = String(res.headers.get('x-request-id'));
    assert.match(requestId, /^[0-9a-f-]{36}$/);
    const event = await eventOf(requestId);
    const token = await db
      .selectFrom('tokens')
      .select('id')
      .where('user_id', '=', users.get('ana')!.id)
      .executeTakeFirstOrThrow();
    assert.deepEqual(
      {
        actor: event.actor,
        actorId: event.actorId,
        tokenId: event.tokenId,
        via: event.via,
        action: event.action,
        app: event.app,
        team: event.team,
        outcome: event.outcome,
        ip: event.ip,
      },
      {
        actor: 'ana',
        actorId: users.get('ana')!.id,
        tokenId: token.id,
        via: 'api',
        action: 'app.settings',
        app: 'blog',
        team: 'lab',
        outcome: 'ok',
        ip: '127.0.0.1',
      },
    );
    // The route recorded its own event: no generic one besides (the marker's event is
    // recorded after anything this request would have).
    await marker();
    const same = (await list('admin', '?limit=1000')).filter((e) => e.requestId === requestId);
    assert.equal(same.length, 1);
  });

  test('refused requests are recorded as denied, with their request id, and failed ones as failed', async () => {
    const cases = [
      // Not in the app's team: 404, as if it did not exist.
      { who: 'bob', method: 'PATCH', url: '/v1/apps/blog', status: 404, outcome: 'denied' },
      // A viewer may not change it.
      { who: 'vic', method: 'PATCH', url: '/v1/apps/blog', status: 403, outcome: 'denied' },
      // Only a team admin may destroy it.
      { who: 'ana', method: 'DELETE', url: '/v1/apps/blog?confirm=blog', status: 403, outcome: 'denied' },
      // A bad body of an allowed caller: failed.
      {
        who: 'ana',
        method: 'PATCH',
        url: '/v1/apps/blog',
        status: 400,
        outcome: 'failed',
        body: { nope: 1 },
      },
    ] as const;
    for (const c of cases) {
      const res = await api.inject({
        method: c.method,
        url: c.url,
        headers: as(c.who),
        payload: 'body' in c ? c.body : { settings: { idleTimeoutSeconds: 60 } },
      });
      assert.equal(res.statusCode, c.status, `${c.who} ${c.method} ${c.url}: ${res.body}`);
      const event = await eventOf(String(res.headers['x-request-id']));
      assert.equal(event.actor, c.who);
      assert.equal(event.outcome, c.outcome);
      assert.equal(event.status, c.status);
      assert.equal(event.action, `${c.method} /v1/apps/:name`);
      assert.equal(event.target, 'blog');
      assert.equal((event.detail.error as { code: string }).code, res.json().error.code);
    }
  });

  test('a request for no route is recorded, with its path as the target', async () => {
    const res = await api.inject({ method: 'POST', url: '/v1/nothing/here?x=1', headers: as('bob') });
    assert.equal(res.statusCode, 404);
    const event = await eventOf(String(res.headers['x-request-id']));
    assert.deepEqual(
      [event.actor, event.action, event.target, event.outcome],
      ['bob', 'POST (unknown route)', '/v1/nothing/here', 'denied'],
    );
  });

  test("a refused token is its holder's (expired, revoked), not anonymous", async () => {
    const ana = users.get('ana')!;
    const expired = await issueToken(db, ana.id, 'old', { expiresAt: '2020-01-01T00:00:00.000Z' });
    const res = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/blog',
      headers: { authorization: `Bearer ${expired}` },
      payload: {},
    });
    assert.equal(res.statusCode, 401);
    const event = await eventOf(String(res.headers['x-request-id']));
    const token = await db
      .selectFrom('tokens')
      .select('id')
      .where('description', '=', 'old')
      .executeTakeFirstOrThrow();
    assert.deepEqual(
      [event.actor, event.actorId, event.tokenId, event.outcome, event.status],
      ['ana', ana.id, token.id, 'denied', 401],
    );
    assert.match(String((event.detail.error as { message: string }).message), /expired/);
  });

  test('git pushes are recorded via git; fetches (upload-pack) are reads and are not', async () => {
    const basic = (who: string) => `Basic ${Buffer.from(`x:${tokens.get(who)}`).toString('base64')}`;
    const push = await api.inject({
      method: 'POST',
      url: '/v1/apps/blog/git/git-receive-pack',
      headers: { authorization: basic('bob'), 'content-type': 'application/x-git-receive-pack-request' },
      payload: Buffer.alloc(0),
    });
    assert.equal(push.statusCode, 404);
    const event = await eventOf(String(push.headers['x-request-id']));
    assert.deepEqual(
      [event.actor, event.via, event.action, event.outcome],
      ['bob', 'git', 'POST /v1/apps/:name/git/git-receive-pack', 'denied'],
    );
    const fetch = await api.inject({
      method: 'POST',
      url: '/v1/apps/blog/git/git-upload-pack',
      headers: { authorization: basic('bob'), 'content-type': 'application/x-git-upload-pack-request' },
      payload: Buffer.alloc(0),
    });
    assert.equal(fetch.statusCode, 404);
    await marker();
    const all = await list('admin', '?limit=1000');
    assert.equal(
      all.find((e) => e.requestId === fetch.headers['x-request-id']),
      undefined,
    );
  });

  test("a refused 'petri run' (a WebSocket upgrade) is on the record", async () => {
    const address = api.server.address() as { port: number };
    const ws = new WebSocket(`ws://127.0.0.1:${address.port}/v1/apps/blog/run`, { headers: as('bob') });
    const status = await new Promise<number>((resolve, reject) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('bob may not run in blog')));
      ws.on('error', reject);
    });
    assert.equal(status, 404);
    const event = await until(
      async () => (await list('admin', '?action=GET')).find((e) => e.action === 'GET /v1/apps/:name/run'),
      { timeout: 5000, message: 'the refused run' },
    );
    assert.deepEqual([event.actor, event.outcome, event.status], ['bob', 'denied', 404]);
  });

  test("a 'petri run' session names its user, token and request, from the command's start", async () => {
    const address = api.server.address() as { port: number };
    const ws = new WebSocket(`ws://127.0.0.1:${address.port}/v1/apps/blog/run`, { headers: as('ana') });
    await new Promise<void>((resolve, reject) => {
      ws.on('upgrade', () => resolve());
      ws.on('unexpected-response', (_req, res) => reject(new Error(`answered ${res.statusCode}`)));
      ws.on('error', reject);
    });
    ws.send(JSON.stringify({ command: ['psql'], tty: false }));
    await new Promise((resolve) => ws.on('close', resolve));
    const event = await until(
      async () => (await list('admin', '?action=app.run')).find((e) => e.actor === 'ana'),
      { timeout: 5000, message: 'the run' },
    );
    const ana = users.get('ana')!;
    assert.deepEqual(
      [event.actor, event.actorId, event.via, event.outcome, event.team],
      ['ana', ana.id, 'api', 'ok', 'lab'],
    );
    assert.notEqual(event.tokenId, null);
    assert.match(String(event.requestId), /^[0-9a-f-]{36}$/);
    await marker();
    const same = (await list('admin', '?limit=1000')).filter((e) => e.requestId === event.requestId);
    assert.equal(same.length, 1, 'the session recorded its event: no generic one besides');
  });

  test('100 concurrent changing requests make one unbroken chain, one event each', async () => {
    const before = (await verifyAudit(db)).checked;
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        api.inject({
          method: 'PATCH',
          url: '/v1/apps/blog',
          headers: as(i % 4 === 0 ? 'bob' : 'ana'),
          payload: i % 2 === 0 ? { settings: { idleTimeoutSeconds: 60 + i } } : { nope: i },
        }),
      ),
    );
    const ids = answers.map((a) => String(a.headers['x-request-id']));
    assert.equal(new Set(ids).size, 100);
    await until(async () => (await verifyAudit(db)).checked >= before + 100, {
      timeout: 10_000,
      message: '100 events',
    });
    const result = await verifyAudit(db);
    assert.equal(result.ok, true, result.firstBad?.reason);
    const events = await list('admin', '?limit=1000');
    for (const id of ids) assert.equal(events.filter((e) => e.requestId === id).length, 1, id);
  });

  test("members see their teams' events and their own; admins and auditors everything", async () => {
    // bob acts on his team's app, and is refused on lab's.
    await api.inject({
      method: 'PATCH',
      url: '/v1/apps/secret',
      headers: as('bob'),
      payload: { settings: { idleTimeoutSeconds: 900 } },
    });
    const probe = await api.inject({ method: 'POST', url: '/v1/apps/blog/sleep', headers: as('bob') });
    await eventOf(String(probe.headers['x-request-id']));

    const ana = await list('ana', '?limit=1000');
    assert.ok(ana.length > 0);
    assert.ok(
      ana.every((e) => e.team === 'lab' || e.actor === 'ana'),
      'ana sees lab and herself only',
    );
    assert.ok(!ana.some((e) => e.app === 'secret'), "ana sees nothing of other's app");
    // lab sees who probed its app.
    assert.ok(ana.some((e) => e.actor === 'bob' && e.app === 'blog' && e.outcome === 'denied'));

    const bob = await list('bob', '?limit=1000');
    assert.ok(bob.some((e) => e.app === 'secret' && e.team === 'other'));
    // His own refused probe is his to see, but not whose app it was.
    const own = bob.find((e) => e.requestId === probe.headers['x-request-id']);
    assert.equal(own?.team, null);
    assert.ok(!bob.some((e) => e.team === 'lab'));
    assert.ok(!bob.some((e) => e.actor === 'ana'));
    // Nor can he find it out by filtering on a team he is not in.
    const byTeam = await api.inject({ method: 'GET', url: '/v1/audit?team=lab', headers: as('bob') });
    assert.equal(byTeam.statusCode, 404);
    assert.match(byTeam.json().error.message, /no team 'lab'/);

    const aud = await list('aud', '?limit=1000');
    const admin = await list('admin', '?limit=1000');
    assert.deepEqual(
      aud.map((e) => e.id),
      admin.map((e) => e.id),
    );
    assert.ok(aud.some((e) => e.app === 'secret') && aud.some((e) => e.app === 'blog'));
  });

  test('the filters: app, team, user (e-mail or name), since, action, outcome, and pages', async () => {
    const blog = await list('aud', '?app=blog&limit=1000');
    assert.ok(blog.length > 0 && blog.every((e) => e.app === 'blog'));
    const lab = await list('aud', '?team=lab&limit=1000');
    assert.ok(lab.length > 0 && lab.every((e) => e.team === 'lab'));
    const byEmail = await list('aud', '?user=bob@example.org&limit=1000');
    const byName = await list('aud', '?user=bob&limit=1000');
    assert.ok(byEmail.length > 0 && byEmail.every((e) => e.actor === 'bob'));
    assert.deepEqual(
      byEmail.map((e) => e.id),
      byName.map((e) => e.id),
    );
    assert.ok((await list('aud', '?since=1h')).length > 0);
    assert.deepEqual(await list('aud', '?since=2099-01-01'), []);
    assert.ok(
      (await list('aud', `?until=${encodeURIComponent(new Date(Date.now() - 3600_000).toISOString())}`))
        .length === 0,
    );
    const settings = await list('aud', '?action=app&limit=1000');
    assert.ok(settings.length > 0 && settings.every((e) => e.action.startsWith('app.')));
    // LIKE's wildcards are plain characters here.
    assert.deepEqual(await list('aud', '?action=%25'), []);
    assert.deepEqual(await list('aud', '?action=_pp'), []);
    const denied = await list('aud', '?outcome=denied&limit=1000');
    assert.ok(denied.length > 0 && denied.every((e) => e.outcome === 'denied'));

    const first = await api.inject({ method: 'GET', url: '/v1/audit?limit=3', headers: as('aud') });
    const page = first.json() as { events: Event[]; next: number };
    assert.equal(page.events.length, 3);
    assert.equal(page.next, page.events[2]!.id);
    const second = await list('aud', `?limit=3&before=${page.next}`);
    assert.ok(second.every((e) => e.id < page.next));

    for (const [query, why] of [
      ['since=yesterday', /since must be a duration/],
      ['limit=1001', /limit/],
      ['outcome=maybe', /outcome/],
    ] as const) {
      const res = await api.inject({ method: 'GET', url: `/v1/audit?${query}`, headers: as('aud') });
      assert.equal(res.statusCode, 400, query);
      assert.match(res.json().error.message, why);
    }
  });

  test('verify: admins and auditors; members are refused; a broken chain is named', async () => {
    const ok = await api.inject({ method: 'GET', url: '/v1/audit/verify', headers: as('aud') });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().ok, true);
    assert.equal(ok.json().firstBad, null);
    const member = await api.inject({ method: 'GET', url: '/v1/audit/verify', headers: as('ana') });
    assert.equal(member.statusCode, 403);
    const anon = await api.inject({ method: 'GET', url: '/v1/audit/verify' });
    assert.equal(anon.statusCode, 401);
  });

  test('a flood of anonymous refusals is counted, not recorded one by one', async () => {
    setAnonymousRefusalBudget({ perAddress: 3, total: 5, windowMs: 600_000 });
    const countAnonymous = async () =>
      Number(
        (
          await sql<{ n: number }>`select count(*) as n from audit_events where actor = 'anonymous'`.execute(
            db,
          )
        ).rows[0]?.n,
      );
    const start = await countAnonymous();
    const anonymous = (ip: string, i: number) =>
      api.inject({
        method: 'POST',
        url: '/v1/apps/blog/sleep',
        headers: i % 2 ? { authorization: 'Bearer forged' } : {},
        remoteAddress: ip,
      });
    // 40 from one address, then 40 from 40 addresses.
    for (let i = 0; i < 40; i++) assert.equal((await anonymous('10.6.6.6', i)).statusCode, 401);
    for (let i = 0; i < 40; i++) assert.equal((await anonymous(`10.7.0.${i}`, i)).statusCode, 401);
    // One by one: 3 of the first address, 2 more of the others (the total is 5); the rest counted.
    await until(() => pendingAnonymousRefusals() === 75, { timeout: 3000, message: '75 counted' });
    assert.equal((await countAnonymous()) - start, 5);
    // Once the window is over, the next event writes the count of the rest.
    setAnonymousRefusalBudget({ windowMs: 1 });
    const summary = await until(
      async () => {
        await anonymous('10.8.0.1', 0);
        const rows = await db
          .selectFrom('audit_events')
          .selectAll()
          .where('action', '=', 'audit.suppressed')
          .execute();
        return rows[0];
      },
      { timeout: 5000, message: 'the count of suppressed refusals' },
    );
    const detail = JSON.parse(summary.detail) as {
      count: number;
      addresses: number;
      busiestAddresses: Record<string, number>;
    };
    assert.equal(detail.count, 75);
    assert.equal(detail.addresses, 39);
    assert.equal(detail.busiestAddresses['10.6.6.6'], 37);
    assert.equal(summary.outcome, 'denied');
    // A known user is never budgeted: their refusals are all recorded.
    const before = (await verifyAudit(db)).checked;
    for (let i = 0; i < 8; i++) {
      await api.inject({
        method: 'POST',
        url: '/v1/apps/blog/sleep',
        headers: as('bob'),
        remoteAddress: '10.6.6.6',
      });
    }
    await until(async () => (await verifyAudit(db)).checked >= before + 8, { timeout: 3000 });
    assert.equal((await verifyAudit(db)).ok, true);
    setAnonymousRefusalBudget({ perAddress: 10, total: 60, windowMs: 600_000 });
  });
});

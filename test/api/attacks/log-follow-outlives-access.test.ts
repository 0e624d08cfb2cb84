// Attack: `petri logs --follow` (GET /v1/apps/:name/logs?follow=true) was authorized once, when
// the stream opened; the stream then followed the log FILE named after the app for as long
// as the client kept the connection. A viewer who opened it kept reading the app's logs
// (where apps print their secrets) after an admin disabled them, after they were taken out of
// the team, and after the app was destroyed and another team made an app of the same name:
// the new app's lines went to the old follower. Deploy streams were alike.
//
// Now: every long-lived request is in the API's registry of open streams
// (src/api/open-streams.ts); the routes that end access end them at once, and every few
// seconds all of them are decided again, for what no route tells (a token that expires).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { RECHECK_MS } from '../../../src/api/open-streams.js';
import { createUser, issueToken } from '../../../src/domain/auth.js';
import { newDeployId } from '../../../src/domain/deploys.js';
import { DataPaths } from '../../../src/lib/paths.js';
import { until } from '../../../src/lib/until.js';
import { DeployLogs } from '../../../src/logs/deploy-log.js';
import { LogStore } from '../../../src/logs/log-store.js';
import { now, openStore, type Store } from '../../../src/store/db.js';
import type { User } from '../../../src/store/schema.js';
import { buildTestApi } from '../test-api.js';
import { unusedAddons } from '../unused.js';

/** How long a stream may take to end after the route that ended access answered. */
const DEADLINE_MS = 3000;

describe('a log stream opened before the caller lost access', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let logs: LogStore;
  let port: number;
  const users = new Map<string, User>();
  const tokens = new Map<string, string>();
  const appIds = new Map<string, number>();

  async function team(name: string, members: [string, 'admin' | 'member' | 'viewer'][]) {
    const { id } = await db
      .insertInto('teams')
      .values({ name, personal_of: null, created_at: now() })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (const [who, role] of members) {
      await db
        .insertInto('team_members')
        .values({ team_id: id, user_id: users.get(who)!.id, role, created_at: now() })
        .execute();
    }
    return id;
  }

  async function app(name: string, teamId: number) {
    const { id } = await db
      .insertInto('apps')
      .values({
        name,
        owner_id: users.get('admin')!.id,
        team_id: teamId,
        created_at: now(),
        memory_mib: 256,
        cpus: 0.5,
        pids: 128,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    appIds.set(name, id);
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-attack-logs-'));
    db = await openStore(new DataPaths(dir).store);
    for (const [who, role] of [
      ['admin', 'admin'],
      ['vic', 'member'],
      ['val', 'member'],
      ['ola', 'member'],
      ['bob', 'member'],
      ['dee', 'member'],
      ['exp', 'member'],
    ] as const) {
      const user = await createUser(db, who, role, { email: `${who}@example.org` });
      users.set(who, user);
      tokens.set(who, await issueToken(db, user.id, 'test'));
    }
    const lab = await team('lab', [
      ['vic', 'viewer'],
      ['val', 'viewer'],
      ['ola', 'viewer'],
      ['dee', 'viewer'],
      ['exp', 'viewer'],
    ]);
    for (const name of ['blog', 'wiki', 'shop', 'docs', 'mail']) await app(name, lab);
    logs = new LogStore({ dir: new DataPaths(dir).logs });
    // One line each, so a follow stream's answer starts at once.
    for (const name of ['blog', 'wiki', 'shop', 'docs', 'mail']) logs.append(name, 'web.1', 'started\n');
    // Destroying an app asks the add-on service to back up and remove its add-ons: it has none.
    const addons = new Proxy(unusedAddons(), {
      get: (target, name) => (name === 'destroyAllOf' ? async () => {} : Reflect.get(target, name)),
    });
    api = await buildTestApi(dir, db, {}, { logs, addons });
    await api.listen({ port: 0, host: '127.0.0.1' });
    port = (api.server.address() as AddressInfo).port;
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const admin = (method: 'POST' | 'DELETE', url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens.get('admin')}` } });

  /** Opens a streaming GET as `who` and waits (with a deadline) for its first line; `text()`
   * is what arrived so far, `ended()` whether the server ended it. */
  async function stream(who: string, url: string, firstLine: RegExp) {
    let received = '';
    let ended = false;
    let status = 0;
    const req = request({
      host: '127.0.0.1',
      port,
      path: url,
      headers: { authorization: `Bearer ${tokens.get(who)}` },
    });
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        received += c;
      });
      res.on('end', () => {
        ended = true;
      });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    req.end();
    // The stream is registered before its first line is sent.
    await until(() => firstLine.test(received), {
      timeout: DEADLINE_MS,
      message: `the first line of ${url}`,
    });
    assert.equal(status, 200);
    return {
      text: () => received,
      ended: () => ended,
      close: () => req.destroy(),
    };
  }

  const follow = (who: string, appName: string) =>
    stream(who, `/v1/apps/${appName}/logs?follow=true&lines=1`, /started/);

  async function endsWithin(s: { ended: () => boolean; text: () => string }, ms: number, why: RegExp) {
    await until(() => s.ended(), { timeout: ms, message: 'the stream ended' });
    const last = JSON.parse(s.text().trim().split('\n').at(-1)!) as { source: string; text: string };
    assert.equal(last.source, 'petri');
    assert.match(last.text, why);
  }

  test('a disabled viewer: the stream ends at once, before any later line', async () => {
    const s = await follow('vic', 'blog');
    const off = await admin('POST', '/v1/users/vic@example.org/disable');
    assert.equal(off.statusCode, 200, off.body);
    logs.append('blog', 'web.1', 'DATABASE_URL=postgres://blog:s3cret@db/blog\n');
    await endsWithin(s, DEADLINE_MS, /stream ended: account disabled/);
    s.close();
    assert.doesNotMatch(s.text(), /s3cret/, 'a disabled user received log lines written after');
  });

  test('a viewer taken out of the team: the stream ends at once, before any later line', async () => {
    const s = await follow('val', 'wiki');
    const out = await admin('DELETE', '/v1/teams/lab/members/val@example.org');
    assert.equal(out.statusCode, 204, out.body);
    logs.append('wiki', 'web.1', 'after-removal token=abc123\n');
    await endsWithin(s, DEADLINE_MS, /stream ended: app 'wiki' not found/);
    s.close();
    assert.doesNotMatch(s.text(), /abc123/, 'someone out of the team received log lines written after');
  });

  test("a follower of a destroyed app: its stream ends with the app, and never reads another team's new app of that name", async () => {
    const s = await follow('ola', 'shop');
    // An admin destroys the app (its row and its log files go), and another team, which
    // ola is not in, makes an app called shop.
    const gone = await admin('DELETE', '/v1/apps/shop?confirm=shop');
    assert.equal(gone.statusCode, 204, gone.body);
    const other = await team('other', [['bob', 'admin']]);
    await app('shop', other);
    logs.append('shop', 'web.1', 'STRIPE_KEY=sk_live_other_team\n');
    await endsWithin(s, DEADLINE_MS, /stream ended: app 'shop' was destroyed/);
    s.close();
    assert.doesNotMatch(s.text(), /sk_live_other_team/, "the new app's lines went to the old app's follower");
  });

  test('a deploy stream ends when its viewer is taken out of the team', async () => {
    const id = newDeployId();
    await db
      .insertInto('deploys')
      .values({
        id,
        app_id: appIds.get('docs')!,
        status: 'building',
        error: null,
        release_id: null,
        created_by: users.get('admin')!.id,
        created_at: now(),
        started_at: now(),
        finished_at: null,
      })
      .execute();
    // The build writes a line, which the stream sends on.
    const deployLogs = new DeployLogs((a, d) => new DataPaths(dir).deployLog(a, d));
    deployLogs.append(appIds.get('docs')!, id, 'build', 'compiling\n');
    const s = await stream('dee', `/v1/apps/docs/deploys/${id}/stream`, /compiling/);
    const out = await admin('DELETE', '/v1/teams/lab/members/dee@example.org');
    assert.equal(out.statusCode, 204, out.body);
    await endsWithin(s, DEADLINE_MS, /stream ended: app 'docs' not found/);
    s.close();
  });

  test('an expired token, which no route tells about: the stream ends within the periodic re-check', async () => {
    const s = await follow('exp', 'mail');
    // The token's expiry passes (set behind the API's back: no route is called).
    await db
      .updateTable('tokens')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('user_id', '=', users.get('exp')!.id)
      .execute();
    await endsWithin(s, RECHECK_MS + DEADLINE_MS, /stream ended: the token this began with expired/);
    s.close();
  });
});

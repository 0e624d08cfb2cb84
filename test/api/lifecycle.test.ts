// POST /v1/apps/:name/renew and the lifecycle's marks on every answer about an app: who may
// renew for how long (a clear error naming the maximum beyond it), bad periods, the
// Petri-Warning header before and after expiry, what an expired or archived app refuses,
// and what a renewal brings back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/domain/apps.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { DAY_MS } from '../../src/domain/lifecycle.js';
import { endAlert, startAlert } from '../../src/domain/metrics.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';
import { buildTestApi } from './test-api.js';

describe('renewing experiments, and the warnings of their expiry', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};
  const users: Record<string, User> = {};

  const call = (who: string, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
    api.inject({
      method,
      url,
      headers: { authorization: `Bearer ${tokens[who]}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
  const renew = (who: string, app: string, body?: unknown) =>
    call(who, 'POST', `/v1/apps/${app}/renew`, body);
  const row = (name: string) =>
    db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirstOrThrow() as Promise<App>;
  const set = (name: string, values: Partial<App>) =>
    db.updateTable('apps').set(values).where('name', '=', name).execute();
  const inDays = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString();

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-renew-'));
    db = await openStore(new DataPaths(dir).store);
    for (const [name, role] of [
      ['root', 'admin'],
      ['ana', 'member'],
    ] as const) {
      users[name] = await createUser(db, name, role, { email: `${name}@example.org` });
      tokens[name] = await issueToken(db, users[name].id, 'test');
    }
    for (const name of ['lab', 'soon', 'gone', 'kept', 'old', 'handoff']) {
      await createApp(db, users.ana!, name, { memoryMiB: 64, cpus: 1, pids: 32 });
    }
    api = await buildTestApi(dir, db, { lifecycle: { defaultDays: 30, maxDays: 60 } });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('its team renews up to lifecycle.maxDays; beyond it, an error naming the maximum', async () => {
    const byDefault = await renew('ana', 'lab');
    assert.equal(byDefault.statusCode, 200, byDefault.body);
    const body = byDefault.json();
    const days = (Date.parse(body.expiresAt) - Date.now()) / DAY_MS;
    assert.ok(days > 29.99 && days <= 30, `the default period, lifecycle.defaultDays: ${days}`);
    assert.equal(body.was, 'live');
    assert.equal(body.app.name, 'lab');
    assert.equal((await row('lab')).expires_at, body.expiresAt);

    const longest = await renew('ana', 'lab', { for: '60d' });
    assert.equal(longest.statusCode, 200, longest.body);
    const beyond = await renew('ana', 'lab', { for: '61d' });
    assert.equal(beyond.statusCode, 400);
    assert.match(
      beyond.json().error.message,
      /^for: 61d is beyond the maximum renewal of 60 days \(lifecycle\.maxDays\)/,
    );
    assert.equal((await row('lab')).expires_at, longest.json().expiresAt, 'unchanged');
    const weeks = await renew('ana', 'lab', { for: '9w' });
    assert.equal(weeks.statusCode, 400, '63 days');
    assert.match(weeks.json().error.message, /maximum renewal of 60 days/);

    // A platform admin gives any period.
    const admin = await renew('root', 'lab', { for: '400d' });
    assert.equal(admin.statusCode, 200, admin.body);
    assert.ok(Date.parse(admin.json().expiresAt) - Date.now() > 399 * DAY_MS);

    const audited = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'app.renew')
      .where('target', '=', 'lab')
      .execute();
    assert.equal(audited.length, 3, 'each renewal, not the refusals');
    assert.deepEqual(
      audited.map((e) => JSON.parse(e.detail).for),
      ['30 days', '60 days', '400 days'],
    );
  });

  test('a period that is not one is refused, naming the field', async () => {
    for (const bad of ['soon', '0d', '-5d', '1e9d', '90 days', '', '100000000d', '0.0001s']) {
      const res = await renew('root', 'lab', { for: bad });
      assert.equal(res.statusCode, 400, `${bad}: ${res.body}`);
      assert.match(res.json().error.message, /^for must be a period like 90d/, bad);
    }
    const typo = await renew('ana', 'lab', { four: '9d' });
    assert.equal(typo.statusCode, 400);
    assert.match(typo.json().error.message, /unknown body field 'four'/);
    const number = await renew('ana', 'lab', { for: 9 });
    assert.equal(number.statusCode, 400, 'a number is not a period: 9 what?');
  });

  test('every answer about an app that expires within 14 days carries the warning', async () => {
    await set('soon', { expires_at: inDays(3) });
    const info = await call('ana', 'GET', '/v1/apps/soon');
    assert.equal(info.statusCode, 200);
    assert.match(
      String(info.headers['petri-warning']),
      /^'soon' expires in 3 days \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\); renew it with 'petri apps renew soon'$/,
    );
    // Any route of the app, even one that fails.
    const ps = await call('ana', 'GET', '/v1/apps/soon/ps');
    assert.ok(ps.headers['petri-warning']);
    const refused = await call('ana', 'PATCH', '/v1/apps/soon', { limits: { memoryMiB: 1 } });
    assert.equal(refused.statusCode, 400);
    assert.ok(refused.headers['petri-warning']);
    // Not an app 15 days away, nor the list of apps.
    await set('kept', { expires_at: inDays(15) });
    assert.equal((await call('ana', 'GET', '/v1/apps/kept')).headers['petri-warning'], undefined);
    assert.equal((await call('ana', 'GET', '/v1/apps')).headers['petri-warning'], undefined);
    // The renewal's own answer is about the renewed app: no warning.
    const renewed = await renew('ana', 'soon');
    assert.equal(renewed.headers['petri-warning'], undefined);
  });

  test('an open alert (crash loop, 5xx, memory) rides every answer about the app until it ends', async () => {
    await set('kept', { expires_at: inDays(60) });
    const kept = await row('kept');
    await startAlert(
      db,
      kept.id,
      'crash-loop',
      "its processes restarted 3 times in 10 minutes: look at 'petri logs' and 'petri ps'",
      new Date().toISOString(),
    );
    const info = await call('ana', 'GET', '/v1/apps/kept');
    assert.equal(
      info.headers['petri-warning'],
      "'kept' its processes restarted 3 times in 10 minutes: look at 'petri logs' and 'petri ps'",
    );
    // Beside an expiry warning: one header line each.
    await set('kept', { expires_at: inDays(2) });
    const both = (await call('ana', 'GET', '/v1/apps/kept/ps')).headers['petri-warning'];
    assert.ok(Array.isArray(both) && both.length === 2, String(both));
    assert.match(both[0]!, /expires in 48 hours/);
    await endAlert(db, kept.id, 'crash-loop', new Date().toISOString());
    await set('kept', { expires_at: inDays(60) });
    assert.equal((await call('ana', 'GET', '/v1/apps/kept')).headers['petri-warning'], undefined);
  });

  test('an expired app says so, refuses to start processes, and a renewal brings it back', async () => {
    const expiredAt = new Date(Date.now() - 3600_000).toISOString();
    await set('gone', { expires_at: expiredAt, expired_at: expiredAt });
    const info = await call('ana', 'GET', '/v1/apps/gone');
    assert.match(
      String(info.headers['petri-warning']),
      /^'gone' expired on .* UTC: it is stopped and its URL answers 410; 'petri apps renew gone' brings it back with its data \(it is archived on .* UTC otherwise\)$/,
    );
    for (const [method, url] of [
      ['POST', '/v1/apps/gone/wake'],
      ['POST', '/v1/apps/gone/restart'],
    ] as const) {
      const res = await call('ana', method, url, {});
      assert.equal(res.statusCode, 409, `${url}: ${res.body}`);
      assert.match(
        res.json().error.message,
        /expired on .*: its processes stay stopped until 'petri apps renew gone'/,
      );
    }
    const back = await renew('ana', 'gone', { for: '7d' });
    assert.equal(back.statusCode, 200, back.body);
    assert.equal(back.json().was, 'expired');
    const after = await row('gone');
    assert.equal(after.expired_at, null);
    assert.equal(after.stage, 'experiment');
  });

  test('an archived app refuses changes; a renewal brings its name back as a new experiment', async () => {
    const at = new Date(Date.now() - 3600_000).toISOString();
    await set('old', { stage: 'archived', expired_at: at, archived_at: at });
    const info = await call('ana', 'GET', '/v1/apps/old');
    assert.equal(info.statusCode, 200, 'it can still be read');
    assert.match(String(info.headers['petri-warning']), /^'old' was archived on .* UTC/);
    const change = await call('ana', 'PATCH', '/v1/apps/old/config', { set: { A: '1' } });
    assert.equal(change.statusCode, 409, change.body);
    assert.match(
      change.json().error.message,
      /^'old' was archived on .*'petri apps renew old' brings the name back/,
    );
    const back = await renew('ana', 'old');
    assert.equal(back.statusCode, 200, back.body);
    assert.equal(back.json().was, 'archived');
    const after = await row('old');
    assert.equal(after.stage, 'experiment');
    assert.equal(after.archived_at, null);
    assert.equal(after.expired_at, null);
  });

  test('a graduating or graduated app has nothing to renew', async () => {
    await set('handoff', { stage: 'graduating' });
    const res = await renew('ana', 'handoff');
    assert.equal(res.statusCode, 409);
    assert.match(res.json().error.message, /is graduating: its expiry is suspended/);
    await set('handoff', { stage: 'graduated', expires_at: null });
    const done = await renew('root', 'handoff');
    assert.equal(done.statusCode, 409);
    assert.match(done.json().error.message, /has graduated: it no longer expires/);
  });
});

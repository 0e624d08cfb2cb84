// Team quotas through the API: apps, memory of the instances a team's apps want (sleeping
// ones included) and add-ons. Over a quota: 403 quota_exceeded with the figure and the
// limit, nothing changed. Checked where apps are created, scaled, given more memory,
// transferred, and where add-ons are created, in the same transaction as the write: many
// requests at once get exactly the room there is, never more.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { insertProvisioningAddon } from '../../src/domain/addons.js';
import { sleepApp } from '../../src/domain/apps.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { formatMiB } from '../../src/domain/quotas.js';
import { loadConfig } from '../../src/lib/config.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';
import { buildTestApi, testSecrets } from './test-api.js';
import { yieldingStore } from './yielding-store.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

describe('team quotas', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};
  const users: Record<string, User> = {};

  const call = (who: string, method: Method, url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });
  const error = (res: { json: () => { error: { code: string; message: string } } }) => res.json().error;
  const appRow = (name: string) =>
    db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirstOrThrow() as Promise<App>;
  const formation = async (name: string) =>
    (await call('root', 'GET', `/v1/apps/${name}/ps`)).json().formation;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-quotas-'));
    db = await openStore(new DataPaths(dir).store);
    for (const [name, role] of [
      ['root', 'admin'],
      ['lea', 'member'],
      ['max', 'member'],
    ] as const) {
      users[name] = await createUser(db, name, role, { email: `${name}@example.org` });
      tokens[name] = await issueToken(db, users[name].id, 'test');
    }
    // The configured defaults: small, so that the tests reach them.
    api = await buildTestApi(dir, db, { quotas: { apps: 3, memoryMiB: 2048, addons: 2 } });
    assert.equal((await call('lea', 'POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    await call('lea', 'PUT', '/v1/teams/labs/members/max@example.org', { role: 'member' });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the configuration gives every team its defaults; they are validated', () => {
    assert.deepEqual(loadConfig({ dataDir: dir }).quotas, { apps: 20, memoryMiB: 8192, addons: 10 });
    assert.throws(() => loadConfig({ dataDir: dir, quotas: { apps: -1 } }), /quotas.apps/);
    assert.throws(() => loadConfig({ dataDir: dir, quotas: { memory: 8 } }), /no 'quotas.memory'/);
    assert.throws(() => loadConfig({ dataDir: dir, quotas: 'big' }), /configuration 'quotas'/);
  });

  test('memory reads as people say it', () => {
    assert.equal(formatMiB(512), '512 MiB');
    assert.equal(formatMiB(1024), '1 GiB');
    assert.equal(formatMiB(7680), '7.5 GiB');
    assert.equal(formatMiB(2047), '2 GiB');
  });

  test('a team member sees the quotas; only platform admins change them', async () => {
    const seen = await call('max', 'GET', '/v1/teams/labs/quotas');
    assert.equal(seen.statusCode, 200);
    assert.deepEqual(seen.json(), {
      team: 'labs',
      apps: { used: 0, limit: 3, custom: false },
      memoryMiB: { used: 0, limit: 2048, custom: false },
      addons: { used: 0, limit: 2, custom: false },
    });
    const byTeamAdmin = await call('lea', 'PATCH', '/v1/teams/labs/quotas', { apps: 100 });
    assert.equal(byTeamAdmin.statusCode, 403);
    const bad = await call('root', 'PATCH', '/v1/teams/labs/quotas', { apps: -5 });
    assert.equal(bad.statusCode, 400);
    const unknown = await call('root', 'PATCH', '/v1/teams/labs/quotas', { cpus: 5 });
    assert.equal(unknown.statusCode, 400);
    const missing = await call('root', 'PATCH', '/v1/teams/nowhere/quotas', { apps: 5 });
    assert.equal(missing.statusCode, 404);
    const set = await call('root', 'PATCH', '/v1/teams/labs/quotas', { memoryMiB: 1024 });
    assert.equal(set.statusCode, 200, set.body);
    assert.deepEqual(set.json().memoryMiB, { used: 0, limit: 1024, custom: true });
    assert.deepEqual(set.json().apps, { used: 0, limit: 3, custom: false });
  });

  test('scaling past the memory quota is refused with the figure and the limit', async () => {
    assert.equal((await call('lea', 'POST', '/v1/apps', { name: 'web-a', team: 'labs' })).statusCode, 201);
    // One web at 512 MiB (the default limits) of 1 GiB: one more fits, then no more.
    assert.equal((await call('max', 'PATCH', '/v1/apps/web-a/formation', { web: 2 })).statusCode, 200);
    const over = await call('max', 'PATCH', '/v1/apps/web-a/formation', { web: 4 });
    assert.equal(over.statusCode, 403);
    assert.deepEqual(error(over), {
      code: 'quota_exceeded',
      message:
        'team labs runs 1 GiB of 1 GiB; web=4 at 512 MiB needs 1 GiB more: scale down or remove something first, or ask a platform admin to raise it (petri quotas labs --memory 2G)',
    });
    assert.deepEqual(await formation('web-a'), { web: 2 });
    // Scaling down is always allowed, even over a quota lowered below what runs.
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { memoryMiB: 256 });
    assert.equal((await call('max', 'PATCH', '/v1/apps/web-a/formation', { web: 1 })).statusCode, 200);
    assert.equal((await call('max', 'PATCH', '/v1/apps/web-a/formation', { web: 2 })).statusCode, 403);
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { memoryMiB: 1024 });
  });

  test('a higher memory limit must fit too; a new app needs room for its one web', async () => {
    // web-a: web=1 at 512 MiB of 1 GiB.
    const limits = await call('max', 'PATCH', '/v1/apps/web-a', { limits: { memoryMiB: 1536 } });
    assert.equal(limits.statusCode, 403);
    assert.match(error(limits).message, /^team labs runs 512 MiB of 1 GiB; web-a at 1.5 GiB per instance/);
    assert.equal((await appRow('web-a')).memory_mib, 512);
    assert.equal(
      (await call('max', 'PATCH', '/v1/apps/web-a', { limits: { memoryMiB: 1024 } })).statusCode,
      200,
    );
    const create = await call('max', 'POST', '/v1/apps', { name: 'web-b', team: 'labs' });
    assert.equal(create.statusCode, 403);
    assert.match(
      error(create).message,
      /team labs runs 1 GiB of 1 GiB; a new app 'web-b' \(web=1 at 512 MiB\)/,
    );
    // Lowering a limit is always fine; other teams are not affected.
    assert.equal(
      (await call('max', 'PATCH', '/v1/apps/web-a', { limits: { memoryMiB: 256 } })).statusCode,
      200,
    );
    assert.equal((await call('max', 'POST', '/v1/apps', { name: 'max-own' })).statusCode, 201);
  });

  test("a sleeping app's instances count: waking it must not take the team over", async () => {
    // web-a: web=1 at 256 MiB, asleep; 768 MiB of 1 GiB free.
    await sleepApp(db, { name: 'test' }, await appRow('web-a'), 'test');
    const quotas = (await call('lea', 'GET', '/v1/teams/labs/quotas')).json();
    assert.equal(quotas.memoryMiB.used, 256);
    assert.equal((await call('lea', 'POST', '/v1/apps', { name: 'web-c', team: 'labs' })).statusCode, 201);
    const more = await call('lea', 'PATCH', '/v1/apps/web-c/formation', { web: 2 });
    assert.equal(more.statusCode, 403);
    assert.match(error(more).message, /runs 768 MiB of 1 GiB; web=2 at 512 MiB needs 512 MiB more/);
  });

  test('the number of apps is bounded per team', async () => {
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { memoryMiB: 100_000 });
    // labs has web-a and web-c: one more of 3.
    assert.equal((await call('lea', 'POST', '/v1/apps', { name: 'web-d', team: 'labs' })).statusCode, 201);
    const fourth = await call('lea', 'POST', '/v1/apps', { name: 'web-e', team: 'labs' });
    assert.equal(fourth.statusCode, 403);
    assert.equal(
      error(fourth).message,
      "team labs has 3 of 3 apps; a new app 'web-e' (web=1 at 512 MiB) needs 1 more: scale down or remove something first, or ask a platform admin to raise it (petri quotas labs --apps 4)",
    );
    // The personal team has its own count.
    assert.equal((await call('lea', 'POST', '/v1/apps', { name: 'lea-own' })).statusCode, 201);
  });

  test("moving an app in must fit the target team's quotas; moving out frees them", async () => {
    // labs is full (3 of 3 apps): lea's own app cannot come in.
    const full = await call('lea', 'POST', '/v1/apps/lea-own/transfer', { team: 'labs' });
    assert.equal(full.statusCode, 403);
    assert.match(
      error(full).message,
      /team labs has 3 of 3 apps; lea-own \(1 instance at 512 MiB, 0 add-ons\) needs 1 more/,
    );
    assert.equal((await call('lea', 'GET', '/v1/apps/lea-own')).json().team, 'lea');
    const out = await call('lea', 'POST', '/v1/apps/web-d/transfer', { team: 'lea' });
    assert.equal(out.statusCode, 200, out.body);
    assert.equal(out.json().team, 'lea');
    assert.equal((await call('lea', 'POST', '/v1/apps/lea-own/transfer', { team: 'labs' })).statusCode, 200);
    // The memory of the app's instances counts against the target's memory quota.
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { apps: 10, memoryMiB: 1024 });
    await call('lea', 'PATCH', '/v1/apps/web-d/formation', { web: 3 });
    const heavy = await call('lea', 'POST', '/v1/apps/web-d/transfer', { team: 'labs' });
    assert.equal(heavy.statusCode, 403);
    assert.match(error(heavy).message, /web-d \(3 instances at 512 MiB, 0 add-ons\) needs 1.5 GiB more/);
    assert.equal(
      (await call('lea', 'GET', '/v1/apps/web-d')).json().team,
      'lea',
      'the refused transfer left the app where it was',
    );
  });

  test('add-ons are bounded per team', async () => {
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { addons: 1 });
    const app = await appRow('web-c');
    const add = (i: number) =>
      insertProvisioningAddon(
        db,
        testSecrets(),
        users.lea!,
        app,
        {
          type: 'redis',
          name: `cache-${i}`,
          envVar: `CACHE_${i}_URL`,
          mode: 'managed',
          resourcePrefix: 'petri_t',
        },
        Number.POSITIVE_INFINITY,
        { apps: 3, memoryMiB: 2048, addons: 2 },
      );
    await add(0);
    await assert.rejects(add(1), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'quota_exceeded');
      assert.match(
        err.message,
        /^team labs has 1 of 1 add-ons; a new redis add-on 'cache-1' of web-c needs 1 more/,
      );
      return true;
    });
    const quotas = (await call('max', 'GET', '/v1/teams/labs/quotas')).json();
    assert.deepEqual(quotas.addons, { used: 1, limit: 1, custom: true });
  });

  test('many requests at once get exactly the room there is', async (t) => {
    const racing = await buildTestApi(dir, yieldingStore(db), {
      quotas: { apps: 3, memoryMiB: 2048, addons: 2 },
    });
    const race = (who: string, method: Method, url: string, payload?: object) =>
      racing.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });
    t.after(() => racing.close());
    // Memory: room for exactly one more instance of 512 MiB, asked by 8 apps at once.
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { apps: 100, memoryMiB: 100_000 });
    const names = Array.from({ length: 8 }, (_, i) => `race-${i}`);
    for (const name of names) {
      assert.equal((await call('lea', 'POST', '/v1/apps', { name, team: 'labs' })).statusCode, 201);
    }
    const used = (await call('lea', 'GET', '/v1/teams/labs/quotas')).json().memoryMiB.used;
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { memoryMiB: used + 512 });
    const scales = await Promise.all(
      names.map((name) => race('max', 'PATCH', `/v1/apps/${name}/formation`, { web: 2 })),
    );
    assert.deepEqual(scales.map((r) => r.statusCode).sort(), [200, 403, 403, 403, 403, 403, 403, 403]);
    const memory = (await call('lea', 'GET', '/v1/teams/labs/quotas')).json().memoryMiB;
    assert.equal(memory.used, memory.limit);

    // Apps: room for two, asked for by 10 creations at once.
    const apps = (await call('lea', 'GET', '/v1/teams/labs/quotas')).json().apps.used;
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { apps: apps + 2, memoryMiB: 1_000_000 });
    const creates = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        race('max', 'POST', '/v1/apps', { name: `burst-${i}`, team: 'labs' }),
      ),
    );
    assert.equal(creates.filter((r) => r.statusCode === 201).length, 2);
    assert.ok(creates.every((r) => r.statusCode === 201 || error(r).code === 'quota_exceeded'));
    assert.equal((await call('lea', 'GET', '/v1/teams/labs/quotas')).json().apps.used, apps + 2);

    // Limits: three apps of one instance each asking for 512 MiB more, room for one.
    const single: string[] = [];
    for (const name of names) if ((await formation(name)).web === 1) single.push(name);
    const now = (await call('lea', 'GET', '/v1/teams/labs/quotas')).json().memoryMiB.used;
    await call('root', 'PATCH', '/v1/teams/labs/quotas', { memoryMiB: now + 512 });
    const raised = await Promise.all(
      single
        .slice(0, 3)
        .map((name) => race('max', 'PATCH', `/v1/apps/${name}`, { limits: { memoryMiB: 1024 } })),
    );
    assert.deepEqual(raised.map((r) => r.statusCode).sort(), [200, 403, 403]);

    // Transfers: three of max's apps moving into a team with room for one more app.
    await call('root', 'PATCH', '/v1/teams/max/quotas', { apps: 10 });
    for (const name of ['move-1', 'move-2', 'move-3']) {
      assert.equal((await call('max', 'POST', '/v1/apps', { name })).statusCode, 201);
    }
    await call('lea', 'POST', '/v1/teams', { name: 'small' });
    await call('lea', 'PUT', '/v1/teams/small/members/max@example.org', { role: 'member' });
    await call('root', 'PATCH', '/v1/teams/small/quotas', { apps: 1 });
    const moves = await Promise.all(
      ['move-1', 'move-2', 'move-3'].map((name) =>
        race('max', 'POST', `/v1/apps/${name}/transfer`, { team: 'small' }),
      ),
    );
    assert.deepEqual(moves.map((r) => r.statusCode).sort(), [200, 403, 403]);
    assert.deepEqual((await call('max', 'GET', '/v1/teams/small')).json().apps.length, 1);

    // Add-ons: the team has room for one more; three are created at once.
    await call('root', 'PATCH', '/v1/teams/small/quotas', { addons: 1 });
    const moved = await appRow(moves.find((r) => r.statusCode === 200)!.json().name);
    const created = await Promise.allSettled(
      [0, 1, 2].map((i) =>
        insertProvisioningAddon(
          yieldingStore(db),
          testSecrets(),
          users.max!,
          moved,
          { type: 'redis', name: `c-${i}`, envVar: `C_${i}_URL`, mode: 'managed', resourcePrefix: 'petri_t' },
          Number.POSITIVE_INFINITY,
          { apps: 3, memoryMiB: 2048, addons: 2 },
        ),
      ),
    );
    assert.deepEqual(created.map((r) => r.status).sort(), ['fulfilled', 'rejected', 'rejected']);
  });
  test('an archived app counts for nothing; bringing it back needs room like a new app', async () => {
    assert.equal((await call('lea', 'POST', '/v1/teams', { name: 'tidy' })).statusCode, 201);
    await call('root', 'PATCH', '/v1/teams/tidy/quotas', { apps: 1, memoryMiB: 100_000 });
    assert.equal((await call('lea', 'POST', '/v1/apps', { name: 'old-idea', team: 'tidy' })).statusCode, 201);
    // The lifecycle loop archived it (as src/domain/lifecycle.ts marks a finished archive).
    const archivedAt = new Date().toISOString();
    await db
      .updateTable('apps')
      .set({ stage: 'archived', archived_at: archivedAt, expired_at: archivedAt })
      .where('name', '=', 'old-idea')
      .execute();
    const quotas = (await call('lea', 'GET', '/v1/teams/tidy/quotas')).json();
    assert.equal(quotas.apps.used, 0, 'the archived app takes no room');
    assert.equal(quotas.memoryMiB.used, 0);
    assert.equal((await call('lea', 'POST', '/v1/apps', { name: 'new-idea', team: 'tidy' })).statusCode, 201);
    // The team is full again: the archived app cannot come back until there is room.
    const back = await call('lea', 'POST', '/v1/apps/old-idea/renew', {});
    assert.equal(back.statusCode, 403, back.body);
    assert.match(
      error(back).message,
      /team tidy has 1 of 1 apps; bringing back the archived 'old-idea' needs 1 more/,
    );
    assert.equal((await appRow('old-idea')).stage, 'archived', 'the refused renewal changed nothing');
    await call('root', 'PATCH', '/v1/teams/tidy/quotas', { apps: 2 });
    const renewed = await call('lea', 'POST', '/v1/apps/old-idea/renew', {});
    assert.equal(renewed.statusCode, 200, renewed.body);
    assert.equal((await appRow('old-idea')).stage, 'experiment');
  });
});

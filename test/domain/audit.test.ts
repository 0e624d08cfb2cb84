// The audit trail's chain: every event carries the hash of the one before it, so an event
// changed, deleted, inserted or moved after the fact is found by verifyAudit (the tampering
// done here with raw SQL, as someone with the store's file would). Also: an install's
// earlier events join the chain in migration 0008, and the store refuses UPDATE and DELETE.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { auditScope, parseAuditTime, recordAudit, verifyAudit } from '../../src/domain/audit.js';
import { createUser } from '../../src/domain/auth.js';
import { Loop } from '../../src/lib/loop.js';
import { until } from '../../src/lib/until.js';
import { chainHash } from '../../src/store/audit-chain.js';
import { openStore, type Store } from '../../src/store/db.js';
import { migrationProvider } from '../../src/store/migrations.js';

async function tamper(db: Store, statement: string): Promise<void> {
  // Someone with the file: the triggers are no obstacle to them.
  await sql.raw('drop trigger if exists audit_events_no_update').execute(db);
  await sql.raw('drop trigger if exists audit_events_no_delete').execute(db);
  await sql.raw(statement).execute(db);
}

async function events(db: Store, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) {
    await recordAudit(db, { name: 'ana', ip: '10.0.0.1' }, 'config.change', 'blog', { set: [`K${i}`] });
  }
}

describe('the audit chain', () => {
  let dir: string;
  let db: Store;

  beforeEach(async () => {
    await db?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = mkdtempSync(path.join(tmpdir(), 'petri-audit-'));
    db = await openStore(path.join(dir, 'petri.db'));
  });
  after(async () => {
    await db?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('an untouched trail verifies, and names its newest event and hash', async () => {
    assert.deepEqual(await verifyAudit(db), { ok: true, checked: 0, last: null });
    await events(db, 5);
    const result = await verifyAudit(db);
    const last = await db
      .selectFrom('audit_events')
      .select(['id', 'hash'])
      .orderBy('id', 'desc')
      .executeTakeFirst();
    assert.deepEqual(result, { ok: true, checked: 5, last });
  });

  test('the store itself refuses to change or delete an event', async () => {
    await events(db, 2);
    await assert.rejects(sql`update audit_events set actor = 'eve' where id = 1`.execute(db), /append-only/);
    await assert.rejects(sql`delete from audit_events where id = 2`.execute(db), /append-only/);
    assert.equal((await verifyAudit(db)).ok, true);
  });

  test('a changed event is found, by its id', async () => {
    await events(db, 5);
    await tamper(db, `update audit_events set actor = 'eve' where id = 3`);
    const result = await verifyAudit(db);
    assert.equal(result.ok, false);
    assert.equal(result.checked, 2);
    assert.equal(result.firstBad?.id, 3);
    assert.match(result.firstBad?.reason ?? '', /event 3 was changed/);
  });

  test('a changed event whose hash was recomputed breaks the link to the next one', async () => {
    await events(db, 5);
    const row = await db.selectFrom('audit_events').selectAll().where('id', '=', 3).executeTakeFirstOrThrow();
    const forged = { ...row, detail: '{"set":["NOTHING"]}' };
    await tamper(
      db,
      `update audit_events set detail = '${forged.detail}', hash = '${chainHash(row.prev_hash, forged)}' where id = 3`,
    );
    const result = await verifyAudit(db);
    assert.equal(result.firstBad?.id, 4);
    assert.match(result.firstBad?.reason ?? '', /does not follow event 3/);
  });

  test('a deleted event is found: in the middle, at the start, and at the end', async () => {
    await events(db, 6);
    await tamper(db, 'delete from audit_events where id = 3');
    assert.deepEqual((await verifyAudit(db)).firstBad, {
      id: 4,
      reason: 'event 4 does not follow event 2: event 3 is missing (deleted)',
    });

    await tamper(db, 'delete from audit_events where id in (1, 2)');
    assert.equal((await verifyAudit(db)).firstBad?.id, 4);
    assert.match((await verifyAudit(db)).firstBad?.reason ?? '', /events 1 to 3 are missing/);
  });

  test('the newest events deleted are found, also once new events follow them', async () => {
    await events(db, 6);
    await tamper(db, 'delete from audit_events where id >= 5');
    const result = await verifyAudit(db);
    assert.equal(result.ok, false);
    assert.equal(result.checked, 4);
    assert.deepEqual(result.firstBad, {
      id: 5,
      reason: 'events 5 to 6 are missing (deleted) (the newest ones)',
    });
    // A new event does not take the deleted ones' place: the gap stays visible.
    await events(db, 1);
    assert.equal(
      (await db.selectFrom('audit_events').select('id').orderBy('id', 'desc').executeTakeFirst())?.id,
      7,
    );
    assert.match((await verifyAudit(db)).firstBad?.reason ?? '', /events 5 to 6 are missing/);
  });

  test('an event inserted in the middle is found', async () => {
    await events(db, 5);
    // Make room after event 2 and put a well-formed event there, chained onto event 2.
    await tamper(db, 'update audit_events set id = id + 100 where id >= 3');
    await tamper(db, 'update audit_events set id = id - 99 where id >= 103');
    const two = await db.selectFrom('audit_events').selectAll().where('id', '=', 2).executeTakeFirstOrThrow();
    const forged = { ...two, id: 3, actor: 'eve', detail: '{}' };
    const hash = chainHash(two.hash, forged);
    await tamper(
      db,
      `insert into audit_events (id, at, actor, action, target, detail, source_ip, actor_id, token_id, via, app,
        team_id, outcome, status, request_id, prev_hash, hash)
       values (3, '${two.at}', 'eve', 'config.change', 'blog', '{}', '10.0.0.1', null, null, 'system', 'blog',
        null, 'ok', null, null, '${two.hash}', '${hash}')`,
    );
    const result = await verifyAudit(db);
    assert.equal(result.ok, false);
    assert.equal(result.checked, 3, 'the forged event itself chains onto event 2');
    assert.equal(result.firstBad?.id, 4);
  });

  test('two events swapped are found', async () => {
    await events(db, 4);
    await tamper(db, 'update audit_events set id = 100 where id = 2');
    await tamper(db, 'update audit_events set id = 2 where id = 3');
    await tamper(db, 'update audit_events set id = 3 where id = 100');
    const result = await verifyAudit(db);
    assert.equal(result.firstBad?.id, 2);
    assert.match(result.firstBad?.reason ?? '', /changed/);
  });

  test('100 events recorded at once make one unbroken chain', async () => {
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        i % 3 === 0
          ? // Some inside a caller's transaction, as createApp and setConfig record theirs.
            db.transaction().execute((tx) => recordAudit(tx, { name: 'ana' }, 'app.create', `app-${i}`))
          : recordAudit(db, { name: 'ana' }, 'app.create', `app-${i}`),
      ),
    );
    const result = await verifyAudit(db);
    assert.equal(result.ok, true, result.firstBad?.reason);
    assert.equal(result.checked, 100);
    const prevs = await db.selectFrom('audit_events').select('prev_hash').execute();
    assert.equal(
      new Set(prevs.map((r) => r.prev_hash)).size,
      100,
      'no two events claim the same predecessor',
    );
  });

  test('an event recorded in a transaction that rolls back leaves no trace in the chain', async () => {
    await events(db, 2);
    await assert.rejects(
      db.transaction().execute(async (tx) => {
        await recordAudit(tx, { name: 'ana' }, 'app.create', 'doomed');
        throw new Error('quota');
      }),
      /quota/,
    );
    await events(db, 1);
    assert.deepEqual(
      (await db.selectFrom('audit_events').select('id').orderBy('id').execute()).map((r) => r.id),
      [1, 2, 3],
    );
    assert.equal((await verifyAudit(db)).ok, true);
  });

  test('an event about an app belongs to its team; the user who made it is named by id', async () => {
    const ana = await createUser(db, 'ana', 'member');
    const team = await db
      .selectFrom('teams')
      .select('id')
      .where('personal_of', '=', ana.id)
      .executeTakeFirstOrThrow();
    await db
      .insertInto('apps')
      .values({
        name: 'blog',
        owner_id: ana.id,
        team_id: team.id,
        created_at: new Date().toISOString(),
        memory_mib: 256,
        cpus: 0.5,
        pids: 128,
      })
      .execute();
    await recordAudit(db, { name: 'ana', userId: ana.id }, 'config.change', 'blog', { set: ['A'] });
    await recordAudit(db, { name: 'petri' }, 'app.sleep', 'blog', { reason: 'idle' });
    const rows = await db.selectFrom('audit_events').selectAll().orderBy('id').execute();
    assert.deepEqual(
      rows.map((r) => [r.actor, r.actor_id, r.via, r.app, r.team_id, r.outcome]),
      [
        ['ana', ana.id, 'system', 'blog', team.id, 'ok'],
        ['petri', null, 'system', 'blog', team.id, 'ok'],
      ],
    );
  });
});

test("the platform's own events do not take on the request that nudged its loop", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-audit-loop-'));
  const db = await openStore(path.join(dir, 'petri.db'));
  // As the idle controller is made at the server's start, and puts alpha to sleep.
  const loop = new Loop({
    what: 'looking for idle apps',
    pass: () => recordAudit(db, { name: 'petri' }, 'app.sleep', 'alpha', { reason: 'idle' }),
    intervalMs: 3_600_000,
    logger: { info: () => {}, error: () => {} },
  });
  try {
    // ana's request about blog nudges it (as a deploy or a scale nudges the reconcilers).
    await auditScope.run(
      {
        requestId: 'req-of-ana',
        ip: '10.0.0.5',
        via: 'api',
        app: 'blog',
        principal: () => ({ userId: 1, name: 'ana', tokenId: 3 }),
        targetTeamId: () => undefined,
        recorded: [],
      },
      async () => loop.nudge(),
    );
    const event = await until(() => db.selectFrom('audit_events').selectAll().executeTakeFirst(), {
      timeout: 5000,
      message: 'the pass',
    });
    assert.deepEqual(
      [event.actor, event.actor_id, event.via, event.app, event.request_id, event.source_ip],
      ['petri', null, 'system', 'alpha', null, null],
    );
  } finally {
    await loop.stop();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('migration 0008', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-audit-migration-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("an install's earlier events join the chain, with their user, app and team", async () => {
    const db = new Kysely<Record<string, Record<string, unknown>>>({
      dialect: new SqliteDialect({ database: new SQLite(path.join(dir, 'petri.db')) }),
    });
    try {
      const migrator = new Migrator({ db, provider: migrationProvider });
      assert.equal((await migrator.migrateTo('0007-people-and-teams')).error, undefined);
      const at = '2026-01-01T00:00:00.000Z';
      await db.insertInto('users').values({ name: 'admin', role: 'admin', created_at: at }).execute();
      await db.insertInto('teams').values({ name: 'admin', personal_of: 1, created_at: at }).execute();
      await db
        .insertInto('apps')
        .values({
          name: 'blog',
          owner_id: 1,
          team_id: 1,
          created_at: at,
          memory_mib: 256,
          cpus: 0.5,
          pids: 128,
        })
        .execute();
      const old = (actor: string, action: string, target: string) => ({
        at,
        actor,
        action,
        target,
        detail: '{}',
        source_ip: '10.0.0.9',
      });
      await db
        .insertInto('audit_events')
        .values([
          old('admin', 'app.create', 'blog'),
          old('admin', 'config.change', 'blog'),
          old('petri', 'app.sleep', 'blog'),
          old('admin', 'app.destroy', 'gone'),
        ])
        .execute();
      assert.equal((await migrator.migrateToLatest()).error, undefined);
      const rows = await db.selectFrom('audit_events').selectAll().orderBy('id').execute();
      assert.deepEqual(
        rows.map((r) => [r.id, r.actor_id, r.via, r.app, r.team_id, r.outcome]),
        [
          [1, 1, 'api', 'blog', 1, 'ok'],
          [2, 1, 'api', 'blog', 1, 'ok'],
          [3, null, 'system', 'blog', 1, 'ok'],
          [4, 1, 'api', 'gone', null, 'ok'],
        ],
      );
      const store = db as unknown as Store;
      assert.deepEqual(await verifyAudit(store), {
        ok: true,
        checked: 4,
        last: { id: 4, hash: rows[3]!.hash as string },
      });
      // New events continue the same chain.
      await recordAudit(store, { name: 'admin', userId: 1 }, 'app.create', 'blog2');
      assert.equal((await verifyAudit(store)).checked, 5);
    } finally {
      await db.destroy();
    }
  });
});

test('audit times: durations back from now, dates and times; anything else is refused', () => {
  const now = Date.parse('2026-03-10T12:00:00.000Z');
  assert.equal(parseAuditTime('since', '7d', now), '2026-03-03T12:00:00.000Z');
  assert.equal(parseAuditTime('since', '30m', now), '2026-03-10T11:30:00.000Z');
  assert.equal(parseAuditTime('since', '2w', now), '2026-02-24T12:00:00.000Z');
  assert.equal(parseAuditTime('since', '2026-03-01', now), '2026-03-01T00:00:00.000Z');
  assert.equal(parseAuditTime('since', '2026-03-01T10:00:00+02:00', now), '2026-03-01T08:00:00.000Z');
  for (const bad of ['7', 'd7', 'yesterday', '2026-13-45', "1' or 1=1", '99999999d']) {
    assert.throws(() => parseAuditTime('since', bad, now), /since must be a duration back from now/);
  }
});

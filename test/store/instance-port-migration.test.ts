// Migration 0006 makes instances.port nullable by rebuilding the table: the rows of an
// earlier Petri (their instances still running) come through whole, ports included.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { migrationProvider } from '../../src/store/migrations.js';

test('instances keep their rows and ports through 0006, and a new row may have no port', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-migration-'));
  const db = new Kysely<Record<string, Record<string, unknown>>>({
    dialect: new SqliteDialect({ database: new SQLite(path.join(dir, 'petri.db')) }),
  });
  try {
    const migrator = new Migrator({ db, provider: migrationProvider });
    assert.equal((await migrator.migrateTo('0005-sleep')).error, undefined);
    const row = {
      id: 'old-web-1-abc',
      app_id: 1,
      release_id: 2,
      type: 'web',
      idx: 1,
      port: 41234,
      state: 'up',
      started_at: '2026-01-01T00:00:00.000Z',
      ready_at: '2026-01-01T00:00:01.000Z',
      restarts: 3,
      exit_code: null,
      exit_reason: 'earlier crash',
      next_start_at: null,
      stop_deadline: null,
      generation: 4,
      signalled_at: null,
      address: '10.213.0.7',
    };
    await db.insertInto('instances').values(row).execute();
    await assert.rejects(
      db
        .insertInto('instances')
        .values({ ...row, id: 'no-port', port: null })
        .execute(),
      /NOT NULL/,
    );
    assert.equal((await migrator.migrateToLatest()).error, undefined);
    assert.deepEqual(await db.selectFrom('instances').selectAll().execute(), [row]);
    await db
      .insertInto('instances')
      .values({ ...row, id: 'new-web-1-def', port: null })
      .execute();
    const fresh = await db
      .selectFrom('instances')
      .selectAll()
      .where('id', '=', 'new-web-1-def')
      .executeTakeFirst();
    assert.equal(fresh?.port, null);
    const { rows } = await sql<{
      name: string;
    }>`select name from sqlite_master where name like 'instances%'`.execute(db);
    assert.deepEqual(
      rows.map((r) => r.name),
      ['instances'],
      'no table left behind',
    );
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

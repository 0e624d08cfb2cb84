// An install from before people and teams (migrations up to 0006: one admin, its token, its
// apps) upgraded: the admin token keeps working as the first admin's, an api token that
// never expires; the admin is in their personal team as its admin, and the apps are in it;
// identity.adminEmail then gives the admin the e-mail their single sign-on will bring.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { authenticate, bootstrapAdmin, hashToken } from '../../src/domain/auth.js';
import { openStore } from '../../src/store/db.js';
import { migrationProvider } from '../../src/store/migrations.js';

test("the old admin token is the first admin's; their apps are in their personal team", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-people-migration-'));
  const file = path.join(dir, 'petri.db');
  const old = new Kysely<Record<string, Record<string, unknown>>>({
    dialect: new SqliteDialect({ database: new SQLite(file) }),
  });
  const token = 'petri_an-old-admin-token-from-admin.token';
  try {
    const migrator = new Migrator({ db: old, provider: migrationProvider });
    assert.equal((await migrator.migrateTo('0006-instance-port-nullable')).error, undefined);
    const at = '2026-01-01T00:00:00.000Z';
    await old.insertInto('users').values({ id: 1, name: 'admin', role: 'admin', created_at: at }).execute();
    await old
      .insertInto('tokens')
      .values({
        user_id: 1,
        hash: hashToken(token),
        description: 'created at first start',
        created_at: at,
        last_used_at: null,
      })
      .execute();
    for (const name of ['blog', 'shop']) {
      await old
        .insertInto('apps')
        .values({ name, owner_id: 1, created_at: at, memory_mib: 512, cpus: 1, pids: 256 })
        .execute();
    }
  } finally {
    await old.destroy();
  }

  // What `petri server` does at start: open (and migrate) the store, then the first start's check.
  const db = await openStore(file);
  try {
    assert.equal(await bootstrapAdmin(db), undefined, 'no second admin is made');
    const { user, token: row } = await authenticate(db, token);
    assert.equal(user.name, 'admin');
    assert.equal(user.role, 'admin');
    assert.equal(user.kind, 'person');
    assert.equal(user.disabled_at, null);
    assert.equal(row.kind, 'api');
    assert.equal(row.expires_at, null);
    assert.equal(row.revoked_at, null);

    const team = await db
      .selectFrom('teams')
      .selectAll()
      .where('personal_of', '=', user.id)
      .executeTakeFirstOrThrow();
    assert.equal(team.name, 'admin');
    const membership = await db
      .selectFrom('team_members')
      .select('role')
      .where('team_id', '=', team.id)
      .where('user_id', '=', user.id)
      .executeTakeFirstOrThrow();
    assert.equal(membership.role, 'admin');
    const apps = await db.selectFrom('apps').select(['name', 'team_id']).orderBy('name').execute();
    assert.deepEqual(apps, [
      { name: 'blog', team_id: team.id },
      { name: 'shop', team_id: team.id },
    ]);

    // identity.adminEmail, set on a later start: the admin gets it, once, and keeps it.
    await bootstrapAdmin(db, { adminEmail: 'Root@Example.org' });
    const withEmail = await db
      .selectFrom('users')
      .selectAll()
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    assert.equal(withEmail.email, 'root@example.org');
    await bootstrapAdmin(db, { adminEmail: 'other@example.org' });
    assert.equal(
      (await db.selectFrom('users').select('email').where('id', '=', user.id).executeTakeFirstOrThrow())
        .email,
      'root@example.org',
      'an e-mail the admin has is not replaced',
    );
    assert.equal((await authenticate(db, token)).user.id, user.id, 'the token still works');
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a first start with identity.adminEmail: the admin has it, a personal team, and a never-expiring api token', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-first-start-'));
  const db = await openStore(path.join(dir, 'petri.db'));
  try {
    const token = await bootstrapAdmin(db, { adminEmail: 'ops@example.org' });
    assert.ok(token);
    const { user, token: row } = await authenticate(db, token);
    assert.equal(user.email, 'ops@example.org');
    assert.equal(user.role, 'admin');
    assert.equal(row.kind, 'api');
    assert.equal(row.expires_at, null);
    assert.ok(
      await db.selectFrom('teams').select('id').where('personal_of', '=', user.id).executeTakeFirst(),
    );
    assert.equal(await bootstrapAdmin(db, { adminEmail: 'ops@example.org' }), undefined);
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

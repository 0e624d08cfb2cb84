// An install from before Petri recorded how each account came in (migrations before
// 0019-admission) upgraded: invited accounts are 'invitation', the first admin and bots
// 'admin' (never asked again), SSO and LDAP accounts made by the sign-in policy 'policy'
// (asked again at each sign-in and re-check); an admin role the admin groups gave is theirs
// to take back, one an admin gave is not; the newest live session's re-check data becomes
// its person's. Then any role change outside sign-in makes the role an admin's.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { recordAudit } from '../../src/domain/audit.js';
import { openStore, type Store } from '../../src/store/db.js';
import { migrationProvider } from '../../src/store/migrations.js';

test('accounts from before 0019 get how they came in, where their admin role came from, and their re-check data', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-admission-migration-'));
  const file = path.join(dir, 'petri.db');
  const old = new Kysely<Record<string, Record<string, unknown>>>({
    dialect: new SqliteDialect({ database: new SQLite(file) }),
  });
  try {
    const names = Object.keys(await migrationProvider.getMigrations()).sort();
    const before = names[names.indexOf('0019-admission') - 1];
    assert.ok(before, 'a migration before 0019-admission');
    assert.equal(
      (await new Migrator({ db: old, provider: migrationProvider }).migrateTo(before)).error,
      undefined,
    );
    const at = '2026-01-01T00:00:00.000Z';
    const user = (id: number, name: string, role: string, provider: string, kind = 'person') =>
      old
        .insertInto('users')
        .values({
          id,
          name,
          role,
          created_at: at,
          email: kind === 'bot' ? null : name.includes('@') ? name : `${name}@example.org`,
          kind,
          provider,
          subject: provider === 'oidc' || provider === 'ldap' ? `sub-${id}` : null,
        })
        .execute();
    await user(1, 'admin', 'admin', 'oidc'); // the first admin, linked to single sign-on later
    await user(2, 'ana@example.org', 'member', 'oidc'); // invited
    await user(3, 'bo@example.org', 'admin', 'oidc'); // made admin by the admin group at a sign-in
    await user(4, 'cy@example.org', 'admin', 'ldap'); // came in by group, made admin by an admin
    await user(5, 'dee@example.org', 'admin', 'ldap'); // came in admin (only the groups did that)
    await user(6, 'ci', 'member', 'bot', 'bot');
    await user(7, 'eve@example.org', 'member', 'ldap'); // came in by group
    await old
      .insertInto('invitations')
      .values({
        email: 'ana@example.org',
        role: 'member',
        token_hash: 'h',
        created_by: 1,
        created_at: at,
        expires_at: at,
        used_at: at,
        used_by: 2,
      })
      .execute();
    const store = old as unknown as Store;
    await recordAudit(store, { name: 'bo@example.org' }, 'user.role', 'bo@example.org', {
      from: 'member',
      to: 'admin',
      by: 'admin group',
    });
    await recordAudit(store, { name: 'cy@example.org' }, 'user.role', 'cy@example.org', {
      from: 'member',
      to: 'admin',
      by: 'admin group',
    });
    await recordAudit(store, { name: 'admin' }, 'user.role', 'cy@example.org', {
      from: 'admin',
      to: 'admin',
    });
    const session = (id: number, userId: number, sealed: string, revoked: string | null, checked: string) =>
      old
        .insertInto('tokens')
        .values({
          id,
          user_id: userId,
          hash: `hash-${id}`,
          description: 'sign-in',
          created_at: at,
          kind: 'session',
          recheck_sealed: sealed,
          checked_at: checked,
          revoked_at: revoked,
        })
        .execute();
    await session(1, 2, 'older', null, '2026-01-01T00:10:00.000Z');
    await session(2, 2, 'newer', null, '2026-01-01T00:20:00.000Z');
    await session(3, 2, 'revoked', at, '2026-01-01T00:30:00.000Z');
  } finally {
    await old.destroy();
  }

  const db = await openStore(file);
  try {
    const rows = await db
      .selectFrom('users')
      .select(['id', 'admitted_by', 'role_from', 'recheck_sealed', 'checked_at'])
      .orderBy('id')
      .execute();
    assert.deepEqual(
      rows.map((r) => [r.id, r.admitted_by, r.role_from]),
      [
        [1, 'admin', null],
        [2, 'invitation', null],
        [3, 'policy', 'groups'],
        [4, 'policy', null],
        [5, 'policy', 'groups'],
        [6, 'admin', null],
        [7, 'policy', null],
      ],
    );
    assert.equal(rows[1]?.recheck_sealed, 'newer', "the newest live session's data");
    assert.equal(rows[1]?.checked_at, '2026-01-01T00:20:00.000Z');
    assert.equal(rows[2]?.recheck_sealed, null);

    // A role set outside sign-in (petri users role, even to the same role) is an admin's.
    await db.updateTable('users').set({ role: 'admin' }).where('id', '=', 3).execute();
    // Sign-in sets the role and where it came from together: kept.
    await db.updateTable('users').set({ role: 'admin', role_from: 'groups' }).where('id', '=', 7).execute();
    const after = await db
      .selectFrom('users')
      .select(['id', 'role_from'])
      .where('id', 'in', [3, 5, 7])
      .execute();
    assert.deepEqual(
      after.map((r) => [r.id, r.role_from]),
      [
        [3, null],
        [5, 'groups'],
        [7, 'groups'],
      ],
    );
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Opens the SQLite store (WAL, synchronous=FULL: desired-state writes must survive a
// crash of the control plane or the host) and brings its schema up to date.
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { migrationProvider } from './migrations.js';
import type { Database } from './schema.js';

export type Store = Kysely<Database>;

export async function openStore(file: string): Promise<Store> {
  mkdirSync(path.dirname(file), { recursive: true });
  const sqlite = new SQLite(file);
  // The store holds hashes and (later) encrypted secrets: root only.
  chmodSync(file, 0o600);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  if (error)
    throw new Error(`store migration failed (${results?.map((r) => r.migrationName).join(', ')}): ${error}`);
  return db;
}

export function now(): string {
  return new Date().toISOString();
}

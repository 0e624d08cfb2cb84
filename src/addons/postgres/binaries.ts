// Where PostgreSQL's programs are: the managed server (initdb, postgres) and the provider
// (pg_dump, pg_restore, psql) both need them; here, apart from the provider, so that
// starting the server does not load the pg client.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** The binary of the newest PostgreSQL installed (Debian's layout), else the one on PATH:
 * pg_dump must be at least as new as the server it dumps. */
export function postgresBinary(name: string): string {
  const root = '/usr/lib/postgresql';
  let majors: number[] = [];
  try {
    majors = readdirSync(root)
      .filter((d) => /^\d+(\.\d+)?$/.test(d))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    // No Debian-style installation: fall back to PATH.
  }
  for (const major of majors) {
    const file = path.join(root, String(major), 'bin', name);
    if (existsSync(file)) return file;
  }
  return name;
}

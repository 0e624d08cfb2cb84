// What the benches share: percentiles of latencies, a keep-alive client that times GETs, and
// the admin and a member with their tokens (the API benches' two callers).
import http from 'node:http';
import { bootstrapAdmin, createUser, issueToken } from '../src/domain/auth.js';
import type { Store } from '../src/store/db.js';

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** One keep-alive connection that times GETs with a token. */
export function client(port: number, token: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = async (url: string): Promise<number> => {
    const started = performance.now();
    const status = await new Promise<number>((resolve, reject) => {
      http
        .get(
          { host: '127.0.0.1', port, path: url, agent, headers: { authorization: `Bearer ${token}` } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        )
        .on('error', reject);
    });
    if (status !== 200) throw new Error(`GET ${url}: ${status}`);
    return performance.now() - started;
  };
  return {
    get,
    /** Latencies (ms) of `n` sequential GETs of `url`. */
    async times(url: string, n: number): Promise<number[]> {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(await get(url));
      return out;
    },
    close: () => agent.destroy(),
  };
}

/** The bootstrapped admin and a member (member@example.org), each with a token. */
export async function adminAndMember(db: Store) {
  const adminToken = (await bootstrapAdmin(db))!;
  const owner = await db
    .selectFrom('users')
    .select('id')
    .where('role', '=', 'admin')
    .executeTakeFirstOrThrow();
  const person = await createUser(db, 'member@example.org', 'member', { email: 'member@example.org' });
  const memberToken = await issueToken(db, person.id, 'bench');
  return { ownerId: owner.id, adminToken, memberId: person.id, memberToken };
}

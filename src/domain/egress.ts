// What apps talk to: the hosts each release declared, and every attempt the egress proxy
// saw (allowed or refused), counted per app and host.
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';
import { releaseEgress } from './release-json.js';

export interface EgressAttempt {
  app: string;
  host: string;
  port: number;
  allowed: boolean;
  count: number;
  lastSeen: string;
  lastReason: string | null;
}

/** Adds counted attempts (deltas since the last call) to the store, in one transaction. */
export type EgressDelta = Omit<EgressAttempt, 'lastReason'> & { lastReason?: string | null };

export async function recordEgressAttempts(db: Store, deltas: EgressDelta[]): Promise<void> {
  if (deltas.length === 0) return;
  await db.transaction().execute(async (tx) => {
    const apps = new Map(
      (await tx.selectFrom('apps').select(['id', 'name']).execute()).map((a) => [a.name, a.id]),
    );
    for (const d of deltas) {
      const appId = apps.get(d.app);
      if (appId === undefined) continue;
      await tx
        .insertInto('egress_attempts')
        .values({
          app_id: appId,
          host: d.host,
          port: d.port,
          allowed: d.allowed ? 1 : 0,
          count: d.count,
          last_seen: d.lastSeen,
          last_reason: d.lastReason ?? null,
        })
        .onConflict((oc) =>
          oc.columns(['app_id', 'host', 'port', 'allowed']).doUpdateSet((eb) => ({
            count: eb('egress_attempts.count', '+', eb.ref('excluded.count')),
            last_seen: eb.ref('excluded.last_seen'),
            last_reason: eb.ref('excluded.last_reason'),
          })),
        )
        .execute();
    }
  });
}

/** The patterns the app's serving (else desired) release declared. */
export async function declaredEgress(db: Store, app: App): Promise<string[]> {
  const id = app.serving_release_id ?? app.desired_release_id;
  if (id === null) return [];
  const release = await db.selectFrom('releases').select('egress').where('id', '=', id).executeTakeFirst();
  return release ? releaseEgress(release) : [];
}

export async function egressAttempts(db: Store, app?: App): Promise<EgressAttempt[]> {
  let q = db
    .selectFrom('egress_attempts')
    .innerJoin('apps', 'apps.id', 'egress_attempts.app_id')
    .select([
      'apps.name as app',
      'egress_attempts.host',
      'egress_attempts.port',
      'egress_attempts.allowed',
      'egress_attempts.count',
      'egress_attempts.last_seen',
      'egress_attempts.last_reason',
    ])
    .orderBy('apps.name')
    .orderBy('egress_attempts.host')
    .orderBy('egress_attempts.port');
  if (app) q = q.where('egress_attempts.app_id', '=', app.id);
  const rows = await q.execute();
  return rows.map((r) => ({
    app: r.app,
    host: r.host,
    port: r.port,
    allowed: r.allowed === 1,
    count: r.count,
    lastSeen: r.last_seen,
    lastReason: r.last_reason,
  }));
}

/** Who is behind each instance address, and what each may reach: the egress proxy's map. */
export async function egressOfInstances(
  db: Store,
): Promise<{ address: string; app: string; allowed: string[] }[]> {
  const rows = await db
    .selectFrom('instances')
    .innerJoin('apps', 'apps.id', 'instances.app_id')
    .innerJoin('releases', 'releases.id', 'instances.release_id')
    .select(['instances.address', 'apps.name', 'releases.egress'])
    .where('instances.address', 'is not', null)
    .execute();
  return rows.flatMap((r) =>
    r.address === null ? [] : [{ address: r.address, app: r.name, allowed: releaseEgress(r) }],
  );
}

// Which runtimes apps run on: the Node.js version of each app's serving and desired release,
// for `petri stacks` (the runtime cache itself is lib/runtime-cache.ts).
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';

/** Node.js version -> names of the given apps whose serving or desired release runs on it
 * (both while a deploy moves an app from one to the other). One query, however many apps. */
export async function appsByNodeVersion(db: Store, apps: App[]): Promise<Map<string, string[]>> {
  const ids = new Set<number>();
  const names = new Map<number, string>();
  for (const app of apps) {
    for (const id of [app.serving_release_id, app.desired_release_id]) {
      if (id !== null) {
        ids.add(id);
        names.set(id, app.name);
      }
    }
  }
  const byVersion = new Map<string, Set<string>>();
  if (ids.size === 0) return new Map();
  const rows = await db
    .selectFrom('releases')
    .select(['id', 'node_version'])
    .where('id', 'in', [...ids])
    .where('node_version', 'is not', null)
    .execute();
  for (const row of rows) {
    const name = names.get(row.id);
    if (!row.node_version || !name) continue;
    const set = byVersion.get(row.node_version) ?? new Set<string>();
    set.add(name);
    byVersion.set(row.node_version, set);
  }
  return new Map([...byVersion].map(([v, set]) => [v, [...set].sort()]));
}

/** Every Node.js version some release runs on, the old ones a rollback may return to included:
 * the runtime cache never removes these. */
export async function nodeVersionsInUse(db: Store): Promise<Set<string>> {
  const rows = await db
    .selectFrom('releases')
    .select('node_version')
    .distinct()
    .where('node_version', 'is not', null)
    .execute();
  return new Set(rows.flatMap((r) => (r.node_version ? [r.node_version] : [])));
}

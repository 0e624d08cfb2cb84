// Who is behind a sandbox address, for the egress proxy: an app instance (allowed what its
// release declared), a release command (the same), or a build (allowed the package
// registries the operator configured). Instances are known from the store; builds and
// other sandboxes are looked up from the driver's own records.
import type { Store } from '../store/db.js';

export interface EgressClient {
  app: string;
  allowed: readonly string[];
}

export interface SandboxLookup {
  sandboxAt(address: string): Promise<{ kind: string; id: string } | undefined>;
}

export class EgressClients {
  private byAddress = new Map<string, EgressClient>();

  constructor(
    private readonly db: Store,
    private readonly driver: SandboxLookup,
    private readonly buildEgress: readonly string[],
  ) {}

  /** An instance that just started: known at once, before the next refresh. */
  set(address: string, client: EgressClient): void {
    this.byAddress.set(address, client);
  }

  /** Rebuilds the instance map from the store (each reconcile pass). */
  async refresh(): Promise<void> {
    const rows = await this.db
      .selectFrom('instances')
      .innerJoin('apps', 'apps.id', 'instances.app_id')
      .innerJoin('releases', 'releases.id', 'instances.release_id')
      .select(['instances.address', 'apps.name', 'releases.egress'])
      .where('instances.address', 'is not', null)
      .execute();
    const next = new Map<string, EgressClient>();
    for (const r of rows) next.set(r.address!, { app: r.name, allowed: JSON.parse(r.egress) as string[] });
    this.byAddress = next;
  }

  async identify(address: string): Promise<EgressClient | undefined> {
    const known = this.byAddress.get(address);
    if (known) return known;
    const sandbox = await this.driver.sandboxAt(address);
    if (!sandbox) return undefined;
    const build = /^build-(d[a-z0-9]+)-\d+$/.exec(sandbox.id);
    if (build) {
      const row = await this.db
        .selectFrom('deploys')
        .innerJoin('apps', 'apps.id', 'deploys.app_id')
        .select('apps.name')
        .where('deploys.id', '=', build[1]!)
        .executeTakeFirst();
      return row && { app: row.name, allowed: this.buildEgress };
    }
    const phase = await this.db
      .selectFrom('releases')
      .innerJoin('apps', 'apps.id', 'releases.app_id')
      .select(['apps.name', 'releases.egress'])
      .where('releases.phase_instance', '=', sandbox.id)
      .executeTakeFirst();
    if (phase) return { app: phase.name, allowed: JSON.parse(phase.egress) as string[] };
    const oneOff = /^run-([a-z][a-z0-9-]*)-[a-z0-9]+$/.exec(sandbox.id);
    if (oneOff) {
      const row = await this.db
        .selectFrom('apps')
        .innerJoin('releases', 'releases.id', 'apps.serving_release_id')
        .select(['apps.name', 'releases.egress'])
        .where('apps.name', '=', oneOff[1]!)
        .executeTakeFirst();
      return row && { app: row.name, allowed: JSON.parse(row.egress) as string[] };
    }
    return undefined;
  }
}

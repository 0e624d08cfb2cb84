// Who is behind a sandbox address, for the egress proxy: an app instance (allowed what its
// release declared), a release command (the same), or a build (allowed the package
// registries the operator configured). Instances are known from the store; builds and
// other sandboxes are looked up from the driver's own records.
import { appNameOfDeploy } from '../domain/deploys.js';
import { egressOfInstances, egressOfReleasePhase, egressOfServingRelease } from '../domain/egress.js';
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
    const next = new Map<string, EgressClient>();
    for (const r of await egressOfInstances(this.db)) next.set(r.address, { app: r.app, allowed: r.allowed });
    this.byAddress = next;
  }

  async identify(address: string): Promise<EgressClient | undefined> {
    const known = this.byAddress.get(address);
    if (known) return known;
    const sandbox = await this.driver.sandboxAt(address);
    if (!sandbox) return undefined;
    const build = /^build-(d[a-z0-9]+)-\d+$/.exec(sandbox.id);
    if (build) {
      const app = await appNameOfDeploy(this.db, build[1]!);
      return app === undefined ? undefined : { app, allowed: this.buildEgress };
    }
    const phase = await egressOfReleasePhase(this.db, sandbox.id);
    if (phase) return phase;
    const oneOff = /^run-([a-z][a-z0-9-]*)-[a-z0-9]+$/.exec(sandbox.id);
    if (oneOff) return egressOfServingRelease(this.db, oneOff[1]!);
    return undefined;
  }
}

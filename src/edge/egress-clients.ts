// Who is behind a sandbox address, for the egress proxy: an app instance (allowed what its
// release declared), a release command or a one-off (the same), or a build (allowed the
// package registries the operator configured). Instances are known from the store; other
// sandboxes by the labels the driver keeps for them (never by parsing their ids).

import { egressOfInstances } from '../domain/egress.js';
import { releasesByIds } from '../domain/instances.js';
import { releaseEgress } from '../domain/release-json.js';
import type { SandboxLabels } from '../runtime/driver.js';
import type { Store } from '../store/db.js';

export interface EgressClient {
  app: string;
  allowed: readonly string[];
}

export interface SandboxLookup {
  sandboxAt(address: string): Promise<SandboxLabels | undefined>;
}

export class EgressClients {
  private byAddress = new Map<string, EgressClient>();
  /** Releases are immutable: what one declared is read once. */
  private readonly egressOfRelease = new Map<number, readonly string[]>();

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
    const labels = await this.driver.sandboxAt(address);
    if (!labels) return undefined;
    if (labels.kind === 'build') return { app: labels.app, allowed: this.buildEgress };
    if (labels.release === undefined) return undefined;
    const allowed = await this.declaredBy(labels.release);
    return allowed && { app: labels.app, allowed };
  }

  private async declaredBy(releaseId: number): Promise<readonly string[] | undefined> {
    let allowed = this.egressOfRelease.get(releaseId);
    if (!allowed) {
      const release = (await releasesByIds(this.db, [releaseId])).get(releaseId);
      if (!release) return undefined;
      allowed = releaseEgress(release);
      this.egressOfRelease.set(releaseId, allowed);
    }
    return allowed;
  }
}

// How many one-off runs (`petri run`) go at once, per app and per owner. Each holds a
// sandbox (an address on the shared network, cgroups, memory, a disk) like an instance, so
// they get ceilings of their own (ceilings.oneOffsPerApp, oneOffsPerOwner). Counted in
// memory: no one-off outlives the control plane that runs it (reclaimTasks at start).
import type { Ceilings } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import type { App } from '../store/schema.js';

export class OneOffSlots {
  private readonly byApp = new Map<number, number>();
  private readonly byOwner = new Map<number, number>();

  constructor(private readonly ceilings: Pick<Ceilings, 'oneOffsPerApp' | 'oneOffsPerOwner'>) {}

  /** A slot for a one-off of `app`, or a 429 naming the ceiling it would pass. Taken at once
   * (no await between check and count), so concurrent requests cannot both pass; the
   * returned function gives it back, once however often it is called. */
  take(app: App): () => void {
    const ofApp = this.byApp.get(app.id) ?? 0;
    const ofOwner = this.byOwner.get(app.owner_id) ?? 0;
    if (ofApp >= this.ceilings.oneOffsPerApp) {
      throw new UserError(
        'too_many_requests',
        `${app.name} already has ${ofApp} one-off runs going, the ceiling of ${this.ceilings.oneOffsPerApp} per app (ceilings.oneOffsPerApp); end one first`,
      );
    }
    if (ofOwner >= this.ceilings.oneOffsPerOwner) {
      throw new UserError(
        'too_many_requests',
        `the apps of ${app.name}'s owner already have ${ofOwner} one-off runs going, the ceiling of ${this.ceilings.oneOffsPerOwner} per owner (ceilings.oneOffsPerOwner); end one first`,
      );
    }
    this.byApp.set(app.id, ofApp + 1);
    this.byOwner.set(app.owner_id, ofOwner + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      decrement(this.byApp, app.id);
      decrement(this.byOwner, app.owner_id);
    };
  }

  /** One-off runs going for `app`, for its owner: what the ceilings are checked against. */
  count(app: Pick<App, 'id' | 'owner_id'>): { app: number; owner: number } {
    return { app: this.byApp.get(app.id) ?? 0, owner: this.byOwner.get(app.owner_id) ?? 0 };
  }
}

function decrement(counts: Map<number, number>, key: number): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

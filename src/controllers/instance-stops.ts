// How instances go: a retired instance drains (the router holds no request on it, or its
// deadline passed), gets SIGTERM then SIGKILL, and its row and files are removed once it no
// longer runs; processes no row knows of are stopped, and a destroyed app's files removed.
// A stop that fails is tried again on that instance after a growing delay: never a hot loop.
import type { Logger } from 'pino';
import { deleteInstance, listAppIds, updateInstance } from '../domain/instances.js';
import type { Backoff } from '../lib/backoff.js';
import type { PetriConfig } from '../lib/config.js';
import type { RepeatedErrorLog } from '../lib/log-dedupe.js';
import type { DataPaths } from '../lib/paths.js';
import { removeTree } from '../lib/remove-tree.js';
import type { Router } from '../router/router.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';
import type { Instance } from '../store/schema.js';

/** After SIGTERM, how long a drained instance gets to exit before SIGKILL. */
const KILL_GRACE_MS = 10_000;

export interface InstanceStopsDeps {
  db: Store;
  driver: RuntimeDriver;
  router: Router;
  paths: DataPaths;
  config: PetriConfig;
  logger: Logger;
}

export class InstanceStops {
  /** Instances whose stop() is in flight in this process. */
  private readonly stopping = new Set<string>();

  constructor(
    private readonly deps: InstanceStopsDeps,
    /** The reconciler's per-object retries: a failed stop of ID waits under `stop ID`. */
    private readonly retries: Backoff,
    private readonly errors: RepeatedErrorLog,
    /** Wakes the reconciler: a stop worked, a later pass sees the instance gone. */
    private readonly nudge: () => void,
  ) {}

  /** True while a stop of the instance is under way in this process. */
  inFlight(id: string): boolean {
    return this.stopping.has(id);
  }

  /** True while a failed stop of the instance waits out its delay. */
  waiting(id: string): boolean {
    return !this.retries.ready(`stop ${id}`);
  }

  /** No longer routed: drain, then stop. */
  async retire(row: Instance): Promise<void> {
    await updateInstance(this.deps.db, row.id, {
      state: 'stopping',
      stop_deadline: new Date(Date.now() + this.deps.config.drainGraceMs).toISOString(),
    });
  }

  /** A stopping instance gets SIGTERM once the router holds no request on it (or its
   * drain deadline passed), then SIGKILL after KILL_GRACE_MS. */
  async drain(row: Instance): Promise<void> {
    if (this.stopping.has(row.id)) return;
    const deadlinePassed = !row.stop_deadline || Date.parse(row.stop_deadline) <= Date.now();
    if (!deadlinePassed && !(await this.deps.router.drained(row.id))) return;
    if (!row.signalled_at)
      await updateInstance(this.deps.db, row.id, { signalled_at: new Date().toISOString() });
    this.kill(row, KILL_GRACE_MS);
  }

  /** Stops an instance in the background; a later pass sees it gone. */
  kill(row: Instance, graceMs = 0): void {
    this.stopInBackground(row.id, graceMs);
  }

  /** A stop that fails waits out its backoff before the next attempt, and only a stop that
   * worked wakes the loop at once (a failed one woke it at once, forever: issue 11). */
  private stopInBackground(id: string, graceMs: number): void {
    const key = `stop ${id}`;
    if (this.stopping.has(id) || !this.retries.ready(key)) return;
    this.stopping.add(id);
    void this.deps.driver.stop(id, graceMs).then(
      () => {
        this.stopping.delete(id);
        this.retries.succeeded(key);
        this.errors.resolved(key, { instance: id });
        this.nudge();
      },
      (err: unknown) => {
        this.stopping.delete(id);
        const retryInMs = this.retries.failed(key);
        // The message stays the same from one attempt to the next, so repeats are counted.
        this.errors.error(key, err, 'instance stop failed; trying again after a growing delay', {
          instance: id,
          retryInMs,
        });
      },
    );
  }

  /** Removes the row and files of an instance that no longer runs. */
  async forget(row: Instance): Promise<void> {
    const { db, driver, paths } = this.deps;
    const workDir = paths.instance(row.app_id, row.id);
    await driver.removeFiles({ id: row.id, workDir });
    await deleteInstance(db, row.id);
  }

  /** Processes the driver runs that nothing in the store knows of (a crash between a
   * start and its row), stopped. */
  async stopOrphans(
    world: Map<string, InstanceStatus>,
    rows: Instance[],
    phaseIds: Set<string>,
  ): Promise<void> {
    const known = new Set(rows.map((r) => r.id));
    for (const [id, status] of world) {
      if (known.has(id) || phaseIds.has(id) || this.stopping.has(id) || !status.running) continue;
      if (this.retries.failures(`stop ${id}`) === 0)
        this.deps.logger.warn({ instance: id }, 'stopping an instance no row knows of');
      this.stopInBackground(id, 0);
    }
  }

  /** Files of apps that were destroyed, once nothing of theirs runs. */
  async removeDestroyedApps(rows: Instance[]): Promise<void> {
    // Listed afresh: an app created during this pass may already be receiving an upload.
    const live = new Set(await listAppIds(this.deps.db));
    const running = new Set(rows.map((r) => r.app_id));
    for (const id of await this.deps.paths.appIds()) {
      if (live.has(id) || running.has(id)) continue;
      // Not fs.rm: a build of the app may still run, swapping what it wrote (lib/remove-tree).
      await removeTree(this.deps.paths.app(id));
    }
  }
}

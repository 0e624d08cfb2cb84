// The instance reconciler: level-triggered, it compares what the store wants (each app's
// desired release and formation) with what runs (a full listing from the runtime driver)
// and moves one toward the other: release phase, start, health-check, route, drain,
// restart with backoff. Every decision is written to the store before acting, so it can be
// killed at any point and run again from the top with the same result. An operation that
// fails on an object (a stop, a removal, a step) is retried on that object with growing
// delays, and the same error is logged once with a count: never a hot loop.
import type { Logger } from 'pino';
import { appUrl, findApp } from '../domain/apps.js';
import { newId } from '../domain/ids.js';
import {
  deleteInstance,
  formationEntries,
  insertInstance,
  listAllApps,
  listInstances,
  releasesByIds,
  updateInstance,
} from '../domain/instances.js';
import { releaseEgress, releaseProcessTypes } from '../domain/release-json.js';
import { failRelease, markReleaseServing } from '../domain/releases.js';
import { Backoff } from '../lib/backoff.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { RepeatedErrorLog } from '../lib/log-dedupe.js';
import { Loop } from '../lib/loop.js';
import type { DataPaths } from '../lib/paths.js';
import { freePort } from '../lib/ports.js';
import { removeTree } from '../lib/remove-tree.js';
import type { SecretBox } from '../lib/secrets.js';
import { until } from '../lib/until.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { Router, RouteSpec } from '../router/router.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.js';
import { instanceSpec, type SpecContext } from '../specs/sandbox-specs.js';
import type { Store } from '../store/db.js';
import type { App, Instance, Release } from '../store/schema.js';
import { checkHealth } from './health.js';
import { planApp } from './plan.js';
import { ReleasePhase } from './release-phase.js';

/** How often a starting web process is checked between passes. */
const READINESS_POLL_MS = 10;

/** What the reconciler tells the egress proxy's map of who is behind each address: the map
 * itself (edge/egress-clients.ts) is wired by server.ts, as controllers/ never import edge/. */
export interface EgressClientMap {
  set(address: string, client: { app: string; allowed: readonly string[] }): void;
  refresh(): Promise<void>;
}

export interface ReconcilerDeps {
  db: Store;
  driver: RuntimeDriver;
  router: Router;
  paths: DataPaths;
  config: PetriConfig;
  secrets: SecretBox;
  logs: LogStore;
  deployLogs: DeployLogs;
  logger: Logger;
  /** What sandboxes use as HTTP(S)_PROXY, when they have their own network. */
  egressProxyUrl?: string;
  /** Tells the egress proxy who is behind each instance address. */
  egressClients?: EgressClientMap;
}

const MAX_BACKOFF_MS = 60_000;
/** An instance that stayed up this long before crashing starts its backoff afresh. */
const STABLE_AFTER_MS = 60_000;
/** After SIGTERM, how long a drained instance gets to exit before SIGKILL. */
const KILL_GRACE_MS = 10_000;

export class InstanceReconciler {
  private readonly loop: Loop;
  private intervalMs = 1000;
  private stopped = false;
  /** True while instances are starting or stopping: passes then run often. */
  private busy = false;
  private lastRoutes: string | undefined;
  /** Instances whose stop() is in flight in this process. */
  private readonly stopping = new Set<string>();
  private readonly pidsLimitNoted = new Set<string>();
  private readonly phase: ReleasePhase;
  /** Per object (a step's name, `stop ID`): when a failed operation may run again. */
  private readonly retries = new Backoff({ initialMs: 1000, maxMs: MAX_BACKOFF_MS });
  private readonly errors: RepeatedErrorLog;
  /** What sandbox specs are built from (specs/). */
  private readonly specs: SpecContext;

  constructor(private readonly deps: ReconcilerDeps) {
    this.errors = new RepeatedErrorLog(deps.logger);
    this.loop = new Loop({
      what: 'reconcile pass',
      pass: () => this.pass(),
      // Soon while instances start or stop, at the interval otherwise.
      intervalMs: () => (this.busy ? 50 : this.intervalMs),
      // A failing pass is tried again every second at most: what it converges is every app.
      maxBackoffMs: 1000,
      logger: deps.logger,
    });
    this.specs = {
      config: deps.config,
      paths: deps.paths,
      secrets: deps.secrets,
      egressProxyUrl: deps.egressProxyUrl,
    };
    this.phase = new ReleasePhase({
      ...deps,
      specs: this.specs,
      note: (app, release, text) => {
        this.rememberRelease(release);
        this.note(app, release.id, text);
      },
      output: (app, release, lines) => {
        const deployId = this.deployOf.get(release.id);
        if (deployId && lines.length > 0)
          deps.deployLogs.append(app.id, deployId, 'release', `${lines.join('\n')}\n`);
      },
    });
  }

  start(intervalMs = 1000): void {
    this.intervalMs = intervalMs;
    this.loop.start();
  }

  /** Stops the loop and waits for a pass in flight, so nothing starts after this resolves. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
  }

  /** Something changed: run a pass as soon as possible. */
  nudge(): void {
    this.loop.nudge();
  }

  /** One pass; concurrent callers share it and a caller during a pass gets one more after. */
  reconcileNow(): Promise<void> {
    return this.loop.runNow();
  }

  private async pass(): Promise<void> {
    const { db, driver } = this.deps;
    // Act only on a full listing of what runs: acting on a partial view after a restart
    // would start duplicates or kill what should live.
    const world = new Map((await driver.list()).map((s) => [s.id, s]));
    let rows = await listInstances(db);
    const releases = await releasesByIds(db, [...new Set(rows.map((r) => r.release_id))]);
    for (const release of releases.values()) this.rememberRelease(release);
    // Each step reads the app afresh: an earlier step of this pass may have changed it.
    for (const row of rows) {
      await this.retried(`instance ${row.id}`, async () =>
        this.observe(row, world.get(row.id), await this.freshApp(row.app_id), releases),
      );
    }
    await this.stopOrphans(world, rows, await this.phase.knownIds());

    const routes: RouteSpec[] = [];
    const switched: App[] = [];
    const retire: Instance[] = [];
    // One listing for every app of the pass: what observe left (an app's own launches
    // change only its own rows, which converge does not need to see again).
    const rowsByApp = new Map<number, Instance[]>();
    for (const row of await listInstances(db))
      rowsByApp.set(row.app_id, [...(rowsByApp.get(row.app_id) ?? []), row]);
    for (const { id } of await listAllApps(db)) {
      // Not held back after a failure: the step also yields the app's route, and skipping it
      // would take the app off the router. What it retries backs off on its own (restarts,
      // the release phase).
      await this.step(`app ${id}`, async () => {
        const app = await this.freshApp(id);
        if (!app) return;
        const plan = await this.converge(app, world, rowsByApp.get(id) ?? []);
        routes.push({
          host: `${app.name}.${this.deps.config.domain}`,
          app: app.name,
          servers: plan.servers.map((r) => ({ id: r.id, address: r.address ?? '127.0.0.1', port: r.port })),
        });
        if (plan.switchToDesired) switched.push(app);
        retire.push(...plan.retire);
      });
    }
    const key = JSON.stringify(routes);
    if (key !== this.lastRoutes) {
      await this.deps.router.apply(routes);
      this.lastRoutes = key;
    }
    // Only once the router serves the new release is it the serving one; only once the
    // router no longer sends to an instance may it be stopped.
    for (const app of switched) await this.retried(`switch ${app.name}`, () => this.switched(app));
    for (const row of retire) await this.retried(`retire ${row.id}`, () => this.retire(row));

    rows = await listInstances(db);
    for (const row of rows.filter((r) => r.state === 'stopping')) {
      await this.retried(`drain ${row.id}`, () => this.drain(row));
    }
    // An instance waiting out the delay of a failed stop needs no quick passes.
    this.busy =
      rows.some(
        (r) =>
          r.state === 'starting' ||
          (r.state === 'stopping' &&
            this.retries.ready(`stop ${r.id}`) &&
            this.retries.ready(`instance ${r.id}`)),
      ) || this.phase.busy;
    await this.deps.egressClients?.refresh();
    await this.removeDestroyedApps(rows);
  }

  /** One step of a pass; its failure is logged (once while it repeats) and does not stop
   * the others. */
  private async step(what: string, run: () => Promise<void>): Promise<void> {
    try {
      await run();
      this.errors.resolved(what);
    } catch (err) {
      this.errors.error(what, err, `reconciling ${what} failed`);
    }
  }

  /** A step that, once failed, waits out its backoff before it runs again on its object. */
  private async retried(what: string, run: () => Promise<void>): Promise<void> {
    if (!this.retries.ready(what)) return;
    await this.step(what, async () => {
      try {
        await run();
      } catch (err) {
        this.retries.failed(what);
        throw err;
      }
      this.retries.succeeded(what);
    });
  }

  private freshApp(id: number): Promise<App | undefined> {
    return findApp(this.deps.db, id);
  }

  /** Updates one instance row from what the driver says about its process. */
  private async observe(
    row: Instance,
    status: InstanceStatus | undefined,
    app: App | undefined,
    releases: Map<number, Release>,
  ): Promise<void> {
    const { db } = this.deps;
    const alive = status?.running === true;
    const release = releases.get(row.release_id);
    // Where the instance is reached is the driver's to say, every pass: a driver may move it.
    if (status && (status.address ?? null) !== row.address) {
      await updateInstance(db, row.id, { address: status.address ?? null });
      row = { ...row, address: status.address ?? null };
    }
    if (row.state === 'stopping') {
      if (!alive && !this.stopping.has(row.id)) await this.forget(row);
      return;
    }
    if (!app || !release) {
      await updateInstance(db, row.id, { state: 'stopping', stop_deadline: new Date().toISOString() });
      return;
    }
    const name = `${row.type}.${row.idx}`;
    const isNew = app.serving_release_id !== row.release_id;
    if (alive && status?.limitHit === 'pids' && !this.pidsLimitNoted.has(row.id)) {
      // Said once per instance: the counter only grows, and forks keep failing while it does.
      this.pidsLimitNoted.add(row.id);
      this.note(
        app,
        row.release_id,
        `${name} hit its process limit (${app.pids}); new processes and threads fail`,
      );
    }
    if (row.state === 'starting') {
      if (!alive) {
        const why = `${name} exited during start (${describeExit(status, app)})`;
        return isNew ? this.failStart(app, row, why) : this.crashed(app, row, status, why);
      }
      if (await this.isHealthy(row, release)) {
        await updateInstance(db, row.id, { state: 'up', ready_at: new Date().toISOString() });
        this.note(app, row.release_id, `${name} is up${row.type === 'web' ? ` on port ${row.port}` : ''}`);
        return;
      }
      const timeout = app.boot_timeout_ms ?? this.deps.config.bootTimeoutMs;
      if (Date.now() - Date.parse(row.started_at) > timeout) {
        const seconds = Math.round(timeout / 1000);
        const why = release.health_path
          ? `${name} did not answer ${release.health_path} with 2xx/3xx within ${seconds} s`
          : `${name} did not listen on PORT (${row.port}) within ${seconds} s; make the app listen on the port in the PORT environment variable`;
        return isNew ? this.failStart(app, row, why) : this.crashed(app, row, status, why);
      }
      return;
    }
    if (row.state === 'up' && !alive) {
      return this.crashed(app, row, status, `${name} exited (${describeExit(status, app)})`);
    }
    if (row.state === 'crashed') {
      if (alive) return this.kill(row); // a start that timed out: make sure it is gone first
      // A sleeping app's crashed process stays down (the plan retires it).
      if (row.next_start_at && Date.parse(row.next_start_at) <= Date.now() && app.sleeping_since === null)
        await this.launch(app, release, row);
    }
  }

  /** Checks a starting web process every few ms and wakes the reconciler the moment it
   * answers, instead of at the next pass: a woken app's visitor is waiting for it. */
  private watchReadiness(row: Instance, release: Release, app: App): void {
    const timeout = app.boot_timeout_ms ?? this.deps.config.bootTimeoutMs;
    void until(async () => this.stopped || (await this.isHealthy(row, release)), {
      timeout,
      interval: READINESS_POLL_MS,
    })
      .then(() => this.nudge())
      .catch(() => {}); // the pass reports a start that never became healthy
  }

  private async isHealthy(row: Instance, release: Release): Promise<boolean> {
    if (row.type !== 'web') return true;
    return checkHealth(row.address ?? '127.0.0.1', row.port, release.health_path);
  }

  private async crashed(
    app: App,
    row: Instance,
    status: InstanceStatus | undefined,
    why: string,
  ): Promise<void> {
    const upFor = row.ready_at ? Date.now() - Date.parse(row.ready_at) : 0;
    const restarts = upFor > STABLE_AFTER_MS ? 1 : row.restarts + 1;
    const delay = Math.min(1000 * 2 ** (restarts - 1), MAX_BACKOFF_MS);
    await updateInstance(this.deps.db, row.id, {
      state: 'crashed',
      restarts,
      exit_code: status?.exitCode ?? null,
      exit_reason: why,
      next_start_at: new Date(Date.now() + delay).toISOString(),
    });
    this.note(app, row.release_id, `${why}; restarting in ${Math.round(delay / 1000)} s`);
    if (status?.running) this.kill(row);
  }

  /** A new release's instance failed to start: the release fails, the old one serves on. */
  private async failStart(app: App, row: Instance, why: string): Promise<void> {
    const { db, driver, logs } = this.deps;
    await driver.flushOutput();
    const source = `${row.type}.${row.idx}`;
    const last = logs
      .read(app.name, { lines: 10, sources: [source], since: new Date(row.started_at) })
      .map((l) => `  ${l.text}`);
    const message = last.length > 0 ? `${why}; its last output:\n${last.join('\n')}` : why;
    this.note(app, row.release_id, why);
    this.closeDeployLog(row.release_id);
    await failRelease(db, row.release_id, message);
    await updateInstance(db, row.id, {
      state: 'stopping',
      exit_reason: why,
      stop_deadline: new Date().toISOString(),
    });
  }

  /** Runs the release phase, then starts what the plan lacks. */
  private async converge(app: App, world: Map<string, InstanceStatus>, rows: Instance[]) {
    const { db } = this.deps;
    const desired =
      app.desired_release_id === null
        ? undefined
        : (await releasesByIds(db, [app.desired_release_id])).get(app.desired_release_id);
    const phaseDone = desired ? await this.phase.advance(app, desired, world) : true;
    const formation = await formationEntries(db, app.id);
    // Afresh: a failing release phase has just put the desired release back, and a request
    // may have woken the app since this pass began.
    const fresh = (await this.freshApp(app.id)) ?? app;
    const plan = planApp({
      app: fresh,
      desiredTypes: desired ? releaseProcessTypes(desired) : {},
      formation,
      rows,
      releasePhaseDone: phaseDone,
      sleeping: fresh.sleeping_since !== null,
    });
    if (desired) {
      this.rememberRelease(desired);
      for (const l of plan.launch) await this.launch(app, desired, undefined, l.type, l.idx, l.generation);
    }
    return plan;
  }

  /** Starts an instance: a new row, or a crashed row started again. */
  private async launch(
    app: App,
    release: Release,
    existing?: Instance,
    type?: string,
    idx?: number,
    generation = 0,
  ): Promise<void> {
    const { db, driver } = this.deps;
    const processType = existing?.type ?? type!;
    const index = existing?.idx ?? idx!;
    const command = releaseProcessTypes(release)[processType];
    if (!command) return;
    let row: Instance;
    if (existing) {
      await driver.stop(existing.id, 0);
      await updateInstance(db, existing.id, {
        state: 'starting',
        started_at: new Date().toISOString(),
        ready_at: null,
        next_start_at: null,
      });
      row = { ...existing, state: 'starting', started_at: new Date().toISOString() };
    } else {
      const id = newId(`${app.name}-${processType.replace(/_/g, '-')}-${index}-`).toLowerCase();
      row = await insertInstance(db, {
        id,
        app_id: app.id,
        release_id: release.id,
        type: processType,
        idx: index,
        port: await freePort(),
        generation,
      });
    }
    try {
      const started = await driver.start(
        instanceSpec(this.specs, {
          app,
          release,
          id: row.id,
          type: processType,
          index,
          port: row.port,
          command,
        }),
      );
      await updateInstance(db, row.id, { address: started.address ?? null });
      if (started.address) {
        this.deps.egressClients?.set(started.address, {
          app: app.name,
          allowed: releaseEgress(release),
        });
      }
      this.note(app, release.id, `starting ${processType}.${index} (v${release.version}): ${command}`);
      if (processType === 'web')
        this.watchReadiness({ ...row, address: started.address ?? null }, release, app);
    } catch (err) {
      const why = `${processType}.${index} could not be started: ${errorMessage(err)}`;
      this.deps.logger.error({ err, instance: row.id }, 'instance start failed');
      if (app.serving_release_id !== release.id) await this.failStart(app, row, why);
      else await this.crashed(app, row, undefined, why);
    }
  }

  /** The desired release serves now: its deploy's followers learn it after the last line. */
  private async switched(app: App): Promise<void> {
    const releaseId = app.desired_release_id!;
    const release = (await releasesByIds(this.deps.db, [releaseId])).get(releaseId);
    if (release) this.rememberRelease(release);
    this.note(app, releaseId, `v${release?.version} serves at ${appUrl(this.deps.config, app.name)}`);
    this.closeDeployLog(releaseId);
    await markReleaseServing(this.deps.db, app.id, releaseId);
    this.nudge();
  }

  /** No longer routed: drain, then stop. */
  private async retire(row: Instance): Promise<void> {
    await updateInstance(this.deps.db, row.id, {
      state: 'stopping',
      stop_deadline: new Date(Date.now() + this.deps.config.drainGraceMs).toISOString(),
    });
  }

  /** A stopping instance gets SIGTERM once the router holds no request on it (or its
   * drain deadline passed), then SIGKILL after KILL_GRACE_MS. */
  private async drain(row: Instance): Promise<void> {
    if (this.stopping.has(row.id)) return;
    const deadlinePassed = !row.stop_deadline || Date.parse(row.stop_deadline) <= Date.now();
    if (!deadlinePassed && !(await this.deps.router.drained(row.id))) return;
    if (!row.signalled_at)
      await updateInstance(this.deps.db, row.id, { signalled_at: new Date().toISOString() });
    this.kill(row, KILL_GRACE_MS);
  }

  /** Stops an instance in the background; a later pass sees it gone. */
  private kill(row: Instance, graceMs = 0): void {
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
  private async forget(row: Instance): Promise<void> {
    const { db, driver, paths } = this.deps;
    const workDir = paths.instance(row.app_id, row.id);
    await driver.removeFiles({ id: row.id, workDir });
    await deleteInstance(db, row.id);
  }

  /** Processes the driver runs that nothing in the store knows of (a crash between a
   * start and its row), stopped. */
  private async stopOrphans(
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
  private async removeDestroyedApps(rows: Instance[]): Promise<void> {
    // Listed afresh: an app created during this pass may already be receiving an upload.
    const live = new Set((await listAllApps(this.deps.db)).map((a) => a.id));
    for (const id of await this.deps.paths.appIds()) {
      if (live.has(id) || rows.some((r) => r.app_id === id)) continue;
      // Not fs.rm: a build of the app may still run, swapping what it wrote (lib/remove-tree).
      await removeTree(this.deps.paths.app(id));
    }
  }

  /** A platform message in the app's log (source "petri") and in the release's deploy output. */
  private note(app: App, releaseId: number, text: string): void {
    this.deps.logs.append(app.name, 'petri', `${text}\n`);
    const deployId = this.deployOf.get(releaseId);
    if (deployId) this.deps.deployLogs.append(app.id, deployId, 'petri', `${text}\n`);
  }

  /** Deploy ids of releases, for notes; filled lazily from the store. */
  private readonly deployOf = new Map<number, string | null>();

  private closeDeployLog(releaseId: number): void {
    const deployId = this.deployOf.get(releaseId);
    if (deployId) this.deps.deployLogs.close(deployId);
  }

  /** Remembers which deploy a release came from (called with every release a pass sees). */
  private rememberRelease(release: Release): void {
    this.deployOf.set(release.id, release.deploy_id);
  }
}

function describeExit(status: InstanceStatus | undefined, app?: App): string {
  if (!status) return 'its process is gone';
  if (status.oomKilled)
    return app ? `killed: memory limit ${app.memory_mib} MiB` : 'killed: memory limit reached';
  if (status.signal) return `killed by ${status.signal}`;
  if (status.exitCode !== undefined && status.exitCode !== null) return `exit code ${status.exitCode}`;
  return 'its process is gone';
}

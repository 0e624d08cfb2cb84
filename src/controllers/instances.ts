// The instance reconciler: level-triggered, it compares what the store wants (each app's
// desired release and formation) with what runs (a full listing from the runtime driver)
// and moves one toward the other: release phase, start, health-check, route, drain,
// restart with backoff. Every decision is written to the store before acting, so it can be
// killed at any point and run again from the top with the same result. An operation that
// fails on an object (a stop, a removal, a step) is retried on that object with growing
// delays, and the same error is logged once with a count: never a hot loop. A pass is this
// file; each instance's steps are instance-supervisor.ts, stopping and removal instance-stops.ts.
import type { Logger } from 'pino';
import { appUrl, findApp } from '../domain/apps.js';
import { userName } from '../domain/auth.js';
import { formationEntries, listAllApps, listInstances, releasesByIds } from '../domain/instances.js';
import { routeAnswerOf, stoppedByLifecycle, userNames } from '../domain/lifecycle.js';
import { releaseProcessTypes } from '../domain/release-json.js';
import { markReleaseServing } from '../domain/releases.js';
import { Backoff } from '../lib/backoff.js';
import type { PetriConfig } from '../lib/config.js';
import { RepeatedErrorLog } from '../lib/log-dedupe.js';
import { Loop } from '../lib/loop.js';
import type { DataPaths } from '../lib/paths.js';
import type { SecretBox } from '../lib/secrets.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { Router, RouteSpec } from '../router/router.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';
import type { App, Instance } from '../store/schema.js';
import { InstanceStops } from './instance-stops.js';
import { type EgressClientMap, InstanceSupervisor } from './instance-supervisor.js';
import { planApp } from './plan.js';
import { ReleaseNotes } from './release-notes.js';
import { ReleasePhase } from './release-phase.js';

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

export class InstanceReconciler {
  private readonly loop: Loop;
  private intervalMs = 1000;
  private stopped = false;
  /** True while instances are starting or stopping: passes then run often. */
  private busy = false;
  private lastRoutes: string | undefined;
  private readonly phase: ReleasePhase;
  private readonly notes: ReleaseNotes;
  private readonly stops: InstanceStops;
  private readonly supervisor: InstanceSupervisor;
  /** Per object (a step's name, `stop ID`): when a failed operation may run again. */
  private readonly retries = new Backoff({ initialMs: 1000, maxMs: MAX_BACKOFF_MS });
  private readonly errors: RepeatedErrorLog;

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
    const specs = {
      config: deps.config,
      paths: deps.paths,
      secrets: deps.secrets,
      egressProxyUrl: deps.egressProxyUrl,
    };
    const notes = new ReleaseNotes(deps);
    this.notes = notes;
    this.stops = new InstanceStops(deps, this.retries, this.errors, () => this.nudge());
    this.supervisor = new InstanceSupervisor(deps, {
      specs,
      notes,
      stops: this.stops,
      nudge: () => this.nudge(),
      stopped: () => this.stopped,
    });
    this.phase = new ReleasePhase({
      ...deps,
      specs,
      note: (app, release, text) => {
        notes.remember(release);
        notes.note(app, release.id, text);
      },
      output: (app, release, lines) => notes.releaseOutput(app, release, lines),
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
    for (const release of releases.values()) this.notes.remember(release);
    // Each step reads the app afresh: an earlier step of this pass may have changed it.
    for (const row of rows) {
      await this.retried(`instance ${row.id}`, async () =>
        this.supervisor.observe(row, world.get(row.id), await this.freshApp(row.app_id), releases),
      );
    }
    await this.stops.stopOrphans(world, rows, await this.phase.knownIds());

    const routes: RouteSpec[] = [];
    const switched: App[] = [];
    const retire: Instance[] = [];
    // One listing for every app of the pass: what observe left (an app's own launches
    // change only its own rows, which converge does not need to see again).
    const rowsByApp = new Map<number, Instance[]>();
    for (const row of await listInstances(db))
      rowsByApp.set(row.app_id, [...(rowsByApp.get(row.app_id) ?? []), row]);
    const apps = await listAllApps(db);
    // The owners named by the router's answers: one query in a pass that needs any.
    let owners: Promise<Map<number, string>> | undefined;
    const ownerName = async (userId: number): Promise<string | undefined> => {
      owners ??= userNames(
        db,
        apps.map((a) => a.owner_id),
      );
      return (await owners).get(userId) ?? userName(db, userId);
    };
    for (const { id } of apps) {
      // Not held back after a failure: the step also yields the app's route, and skipping it
      // would take the app off the router. What it retries backs off on its own (restarts,
      // the release phase).
      await this.step(`app ${id}`, async () => {
        const app = await this.freshApp(id);
        if (!app) return;
        const plan = await this.converge(app, world, rowsByApp.get(id) ?? []);
        // An experiment that ended, awaits review or moved: the router answers for it.
        const answer = await routeAnswerOf(this.deps.db, app, ownerName);
        routes.push({
          host: `${app.name}.${this.deps.config.domain}`,
          app: app.name,
          ...(answer ? { answer } : {}),
          // An instance whose port the driver has not said yet is not routed.
          servers: plan.servers.flatMap((r) =>
            r.port === null ? [] : [{ id: r.id, address: r.address ?? '127.0.0.1', port: r.port }],
          ),
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
    for (const row of retire) await this.retried(`retire ${row.id}`, () => this.stops.retire(row));

    rows = await listInstances(db);
    for (const row of rows.filter((r) => r.state === 'stopping')) {
      await this.retried(`drain ${row.id}`, () => this.stops.drain(row));
    }
    // An instance waiting out the delay of a failed stop needs no quick passes.
    this.busy =
      rows.some(
        (r) =>
          r.state === 'starting' ||
          (r.state === 'stopping' && !this.stops.waiting(r.id) && this.retries.ready(`instance ${r.id}`)),
      ) || this.phase.busy;
    await this.deps.egressClients?.refresh();
    await this.stops.removeDestroyedApps(rows);
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

  /** Runs the release phase, then starts what the plan lacks. */
  private async converge(app: App, world: Map<string, InstanceStatus>, rows: Instance[]) {
    const { db } = this.deps;
    const desired =
      app.desired_release_id === null
        ? undefined
        : (await releasesByIds(db, [app.desired_release_id])).get(app.desired_release_id);
    // Expired or archived: not even a release command runs until a renewal (a deploy taken
    // meanwhile waits with its release phase pending).
    const stopped = stoppedByLifecycle(app);
    const phaseDone = desired && !stopped ? await this.phase.advance(app, desired, world) : !desired;
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
      // Expired or archived: nothing runs, as while asleep (its formation is kept for a renewal).
      sleeping: fresh.sleeping_since !== null || stoppedByLifecycle(fresh),
    });
    if (desired) {
      this.notes.remember(desired);
      for (const l of plan.launch)
        await this.supervisor.launch(app, desired, undefined, l.type, l.idx, l.generation);
    }
    return plan;
  }

  /** The desired release serves now: its deploy's followers learn it after the last line. */
  private async switched(app: App): Promise<void> {
    const releaseId = app.desired_release_id!;
    const release = (await releasesByIds(this.deps.db, [releaseId])).get(releaseId);
    if (release) this.notes.remember(release);
    this.notes.note(app, releaseId, `v${release?.version} serves at ${appUrl(this.deps.config, app.name)}`);
    this.notes.close(releaseId);
    await markReleaseServing(this.deps.db, app.id, releaseId);
    this.nudge();
  }
}

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
import { verifiedDomainsByApp } from '../domain/domains.js';
import { allFormations, appsByIds, listAllApps, listInstances, releasesByIds } from '../domain/instances.js';
import { routeAnswerOf, stoppedByLifecycle, userNames } from '../domain/lifecycle.js';
import { releaseProcessTypes } from '../domain/release-json.js';
import { markReleaseServing } from '../domain/releases.js';
import { routeGateOf } from '../domain/route-gate.js';
import { Backoff } from '../lib/backoff.js';
import type { PetriConfig } from '../lib/config.js';
import { RepeatedErrorLog } from '../lib/log-dedupe.js';
import { Loop, type PassOutcome } from '../lib/loop.js';
import type { DataPaths } from '../lib/paths.js';
import type { SecretBox } from '../lib/secrets.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { Router, RouteSpec } from '../router/router.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';
import type { App, Instance, Release } from '../store/schema.js';
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
  /** A web process of the app is up (the waker hands its held requests over). */
  onWebUp?: (appId: number) => void;
  /** The router's routes changed (hosts that may want certificates of their own). */
  onRoutesChanged?: () => void;
}

const MAX_BACKOFF_MS = 60_000;
/** Passes that find nothing to do come less often, up to this many intervals apart (30 s by
 * default): a quiet host then costs almost nothing. Any change nudges a pass at once (the
 * API, the waker, the idle and lifecycle loops, and an instance's exit where the driver
 * tells of it); what no one tells is seen within that time. */
const MAX_QUIET_INTERVALS = 30;
/** The same when the driver does not tell of exits: a crashed process is restarted that late. */
const MAX_QUIET_INTERVALS_UNTOLD = 5;

export class InstanceReconciler {
  private readonly loop: Loop;
  private intervalMs = 1000;
  private stopped = false;
  /** True while instances are starting or stopping: passes then run often. */
  private busy = false;
  private lastRoutes: string | undefined;
  /** Stops hearing of exits (set while the driver tells of them). */
  private exitsTold: (() => void) | undefined;
  private limitsTold: (() => void) | undefined;
  /** Each release's process types, parsed once: a release never changes them, and a pass
   * reads them for every app. */
  private readonly processTypes = new Map<number, Record<string, string>>();
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
      // Quiet passes (below) back off, further when the driver tells of exits.
      quietMaxMs: () => this.intervalMs * (this.exitsTold ? MAX_QUIET_INTERVALS : MAX_QUIET_INTERVALS_UNTOLD),
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
    try {
      this.exitsTold = this.deps.driver.onExit?.(() => this.nudge());
    } catch (err) {
      this.deps.logger.warn({ err }, 'cannot hear of instance exits; looking for them every few seconds');
    }
    try {
      this.limitsTold = this.deps.driver.onLimitHit?.(() => this.nudge());
    } catch (err) {
      this.deps.logger.warn({ err }, 'cannot hear of limits hit; they are noted at the next pass');
    }
    this.loop.start();
  }

  /** Stops the loop and waits for a pass in flight, so nothing starts after this resolves. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.exitsTold?.();
    this.limitsTold?.();
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

  /** Quiet when it changed nothing and every instance is up. */
  private async pass(): Promise<PassOutcome | undefined> {
    const { db, driver } = this.deps;
    const began = performance.now();
    // Act only on a full listing of what runs: acting on a partial view after a restart
    // would start duplicates or kill what should live.
    const world = new Map((await driver.list()).map((s) => [s.id, s]));
    // A constant number of queries per pass, however many apps: each listing is read once
    // and the steps take their rows from it (a thousand idle apps cost what ten do).
    let rows = await listInstances(db);
    // Only the apps of those rows: with most apps asleep, a pass reads a thousand full app
    // rows once (below), not twice.
    const appsAtStart = await appsByIds(db, [...new Set(rows.map((r) => r.app_id))]);
    const releases = await releasesByIds(db, [...new Set(rows.map((r) => r.release_id))]);
    for (const release of releases.values()) this.notes.remember(release);
    for (const row of rows) {
      await this.retried(`instance ${row.id}`, async () => {
        // A starting instance may fail its release, which changes its app (the desired
        // release goes back): its steps read the app afresh, as do those after it.
        const app = row.state === 'starting' ? await this.freshApp(row.app_id) : appsAtStart.get(row.app_id);
        await this.supervisor.observe(row, world.get(row.id), app, releases);
      });
    }
    await this.stops.stopOrphans(world, rows, await this.phase.knownIds());

    const routes: RouteSpec[] = [];
    const switched: App[] = [];
    const retire: Instance[] = [];
    // Listed after the instances' steps, which may have changed apps and rows: what the
    // apps' steps need, each in one query (an app's own launches change only its own rows,
    // which converge does not need to see again).
    const rowsByApp = new Map<number, Instance[]>();
    for (const row of await listInstances(db))
      rowsByApp.set(row.app_id, [...(rowsByApp.get(row.app_id) ?? []), row]);
    const apps = await listAllApps(db);
    const desired = await releasesByIds(db, [
      ...new Set(apps.flatMap((a) => (a.desired_release_id === null ? [] : [a.desired_release_id]))),
    ]);
    const formations = await allFormations(db);
    // Verified custom domains route as the app's own host does (issue 20). One still verified
    // after the platform's domain changed to one above it is left out: it would take the host
    // of an app or the API's.
    const { domain, apiHost } = this.deps.config;
    const customHosts = await verifiedDomainsByApp(db);
    const platformHost = (host: string) => host === apiHost || host.endsWith(`.${domain}`);
    // The owners named by the router's answers: one query in a pass that needs any.
    let owners: Promise<Map<number, string>> | undefined;
    const ownerName = async (userId: number): Promise<string | undefined> => {
      owners ??= userNames(
        db,
        apps.map((a) => a.owner_id),
      );
      return (await owners).get(userId) ?? userName(db, userId);
    };
    for (const listed of apps) {
      // Not held back after a failure: the step also yields the app's route, and skipping it
      // would take the app off the router. What it retries backs off on its own (restarts,
      // the release phase).
      await this.step(`app ${listed.id}`, async () => {
        const { app, plan } = await this.converge(listed, world, rowsByApp.get(listed.id) ?? [], {
          desired,
          formation: formations.get(listed.id) ?? new Map(),
        });
        // An experiment that ended or moved: the router answers for it.
        const answer = await routeAnswerOf(this.deps.db, app, ownerName);
        const route: RouteSpec = {
          host: `${app.name}.${this.deps.config.domain}`,
          app: app.name,
          ...(answer ? { answer } : {}),
          // Staff, invite or awaiting review: only visitors the gate let in reach it.
          ...(answer ? {} : routeGateOf(app, this.deps.secrets)),
          // An instance whose port the driver has not said yet is not routed.
          servers: plan.servers.flatMap((r) =>
            r.port === null ? [] : [{ id: r.id, address: r.address ?? '127.0.0.1', port: r.port }],
          ),
        };
        // An app whose host is the API's (made before that name was refused, or the API host
        // moved under the domain) is left out: the router would refuse every route with it.
        if (route.host !== apiHost) routes.push(route);
        for (const host of customHosts.get(app.id) ?? []) {
          if (!platformHost(host)) routes.push({ ...route, host });
        }
        if (plan.switchToDesired) switched.push(app);
        retire.push(...plan.retire);
      });
    }
    const key = JSON.stringify(routes);
    const quiet = key === this.lastRoutes && switched.length === 0 && retire.length === 0;
    if (key !== this.lastRoutes) {
      await this.deps.router.apply(routes);
      this.lastRoutes = key;
      this.deps.onRoutesChanged?.();
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
    const settled = quiet && !this.busy && rows.every((r) => r.state === 'up');
    await this.deps.egressClients?.refresh();
    await this.stops.removeDestroyedApps(rows);
    // What a pass costs (bench/density.ts reads it at debug level).
    this.deps.logger.debug(
      { ms: Math.round((performance.now() - began) * 10) / 10, apps: apps.length, instances: rows.length },
      'reconcile pass',
    );
    return settled ? 'quiet' : undefined;
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

  /** Runs the release phase, then starts what the plan lacks. `app` is as the pass listed
   * it; the plan is made on the app as it is after the release phase. */
  private async converge(
    app: App,
    world: Map<string, InstanceStatus>,
    rows: Instance[],
    listed: {
      desired: Map<number, Release>;
      formation: Map<string, { quantity: number; generation: number }>;
    },
  ): Promise<{ app: App; plan: ReturnType<typeof planApp> }> {
    const desired = app.desired_release_id === null ? undefined : listed.desired.get(app.desired_release_id);
    // Expired or archived: not even a release command runs until a renewal (a deploy taken
    // meanwhile waits with its release phase pending).
    const stopped = stoppedByLifecycle(app);
    if (desired && stopped) await this.phase.halt(app, desired);
    const phaseDone = desired && !stopped ? await this.phase.advance(app, desired, world) : !desired;
    // Afresh after a release phase that is under way: a failing one has just put the desired
    // release back. A request that wakes the app meanwhile nudges another pass.
    const phaseActed =
      desired !== undefined && (desired.phase_status === 'pending' || desired.phase_status === 'running');
    const fresh = phaseActed ? ((await this.freshApp(app.id)) ?? app) : app;
    const plan = planApp({
      app: fresh,
      desiredTypes: desired ? this.processTypesOf(desired) : {},
      formation: listed.formation,
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
    return { app: fresh, plan };
  }

  private processTypesOf(release: Release): Record<string, string> {
    let types = this.processTypes.get(release.id);
    if (types === undefined) {
      // Bounded: releases no app wants any more are forgotten with the rest now and then.
      if (this.processTypes.size >= 10_000) this.processTypes.clear();
      types = releaseProcessTypes(release);
      this.processTypes.set(release.id, types);
    }
    return types;
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

// The instance reconciler: level-triggered, it compares what the store wants (each app's
// desired release and formation) with what runs (a full listing from the runtime driver)
// and moves one toward the other: start, health-check, route, drain, restart with backoff.
// Every decision is written to the store before acting, so it can be killed at any point
// and run again from the top with the same result.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { appLimits } from '../domain/apps.js';
import { failDeploy, markReleaseServing, releasingDeployOf } from '../domain/deploys.js';
import { newId } from '../domain/ids.js';
import {
  deleteInstance,
  formationOf,
  insertInstance,
  listAllApps,
  listInstances,
  releasesByIds,
  updateInstance,
} from '../domain/instances.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import type { DataPaths } from '../lib/paths.js';
import { freePort, isListening } from '../lib/ports.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { OutputTailer } from '../logs/output-tailer.js';
import type { Router, RouteSpec } from '../router/router.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';
import type { App, Instance, Release } from '../store/schema.js';

export interface ReconcilerDeps {
  db: Store;
  driver: RuntimeDriver;
  router: Router;
  paths: DataPaths;
  config: PetriConfig;
  logs: LogStore;
  tailer: OutputTailer;
  deployLogs: DeployLogs;
  logger: Logger;
}

const MAX_BACKOFF_MS = 60_000;
/** An instance that stayed up this long before crashing starts its backoff afresh. */
const STABLE_AFTER_MS = 60_000;

export class InstanceReconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private lastRoutes: string | undefined;
  /** Instances whose stop() is in flight in this process. */
  private readonly stopping = new Set<string>();

  constructor(private readonly deps: ReconcilerDeps) {}

  start(intervalMs = 1000): void {
    const loop = async () => {
      if (this.stopped) return;
      await this.reconcileNow();
      this.timer = setTimeout(loop, this.busy ? 50 : intervalMs);
    };
    void loop();
  }

  /** Stops the loop and waits for a pass in flight, so nothing starts after this resolves. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** Something changed: run a pass as soon as the current one ends. */
  nudge(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.reconcileNow().then(() => {
        if (!this.stopped) this.timer = setTimeout(() => this.nudge(), this.busy ? 50 : 1000);
      });
    }, 0);
  }

  /** True while instances are starting: passes then run often, to route them quickly. */
  private busy = false;

  /** One pass; concurrent callers share it and a caller during a pass gets one more after. */
  async reconcileNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (err) {
          this.deps.logger.error({ err }, 'reconcile pass failed');
        }
      } while (this.again && !this.stopped);
    })();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }

  private async pass(): Promise<void> {
    const { db, driver } = this.deps;
    // Act only on a full listing of what runs: acting on a partial view after a restart
    // would start duplicates or kill what should live.
    const world = new Map((await driver.list()).map((s) => [s.id, s]));
    const apps = new Map((await listAllApps(db)).map((a) => [a.id, a]));
    let rows = await listInstances(db);
    const releases = await releasesByIds(db, [...new Set(rows.map((r) => r.release_id))]);

    // Each step reads the app afresh: an earlier step of this pass may have changed it.
    for (const row of rows) {
      await this.step(`instance ${row.id}`, async () =>
        this.observe(row, world.get(row.id), await this.freshApp(row.app_id), releases),
      );
    }
    await this.stopOrphans(world, rows);

    for (const { id } of apps.values()) {
      await this.step(`app ${id}`, async () => {
        const app = await this.freshApp(id);
        if (app) await this.converge(app);
      });
    }
    const current = await listAllApps(db);

    rows = await listInstances(db);
    this.busy = rows.some((r) => r.state === 'starting' || r.state === 'stopping');
    await this.route(current, rows);
    await this.removeDestroyedApps(rows);
  }

  /** One step of a pass; its failure is logged and does not stop the others. */
  private async step(what: string, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (err) {
      this.deps.logger.error({ err }, `reconciling ${what} failed`);
    }
  }

  private freshApp(id: number): Promise<App | undefined> {
    return this.deps.db.selectFrom('apps').selectAll().where('id', '=', id).executeTakeFirst();
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
    if (app) this.watchOutput(app, row);
    if (row.state === 'stopping' || !app || !release) {
      if (!alive) return this.forget(row, app);
      return this.stopInstance(row);
    }
    const name = `${row.type}.${row.idx}`;
    const isNew = app.serving_release_id !== row.release_id;
    if (row.state === 'starting') {
      if (!alive) {
        const why = `${name} exited during start (${describeExit(status)})`;
        if (isNew) return this.failRelease(app, row, why);
        return this.crashed(app, row, status, why);
      }
      if (row.type !== 'web' || (await isListening(row.port))) {
        await updateInstance(db, row.id, { state: 'up', ready_at: new Date().toISOString() });
        this.note(app, row, `${name} is up${row.type === 'web' ? ` on port ${row.port}` : ''}`);
        return;
      }
      const waited = Date.now() - Date.parse(row.started_at);
      if (waited > this.deps.config.bootTimeoutMs) {
        const why = `${name} did not listen on PORT (${row.port}) within ${Math.round(this.deps.config.bootTimeoutMs / 1000)} s; make the app listen on the port in the PORT environment variable`;
        if (isNew) return this.failRelease(app, row, why);
        await this.crashed(app, row, status, why);
        return this.stopInstance(row, 0, 'crashed');
      }
      return;
    }
    if (row.state === 'up' && !alive) {
      return this.crashed(app, row, status, `${name} exited (${describeExit(status)})`);
    }
    if (row.state === 'crashed' && row.next_start_at && Date.parse(row.next_start_at) <= Date.now()) {
      if (alive) return; // the kill of a timed-out start is still in flight
      await this.launch(app, release, row);
    }
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
    this.note(app, row, `${why}; restarting in ${Math.round(delay / 1000)} s`);
  }

  /** A new release's instance failed to start: the deploy fails, the old release serves on. */
  private async failRelease(app: App, row: Instance, why: string): Promise<void> {
    const { db, tailer, logs } = this.deps;
    await tailer.flushNow();
    const source = `${row.type}.${row.idx}`;
    const last = logs
      .read(app.name, { lines: 10, sources: [source], since: new Date(row.started_at) })
      .map((l) => `  ${l.text}`);
    const message = last.length > 0 ? `${why}; its last output:\n${last.join('\n')}` : why;
    const deploy = await releasingDeployOf(db, row.release_id);
    if (deploy) {
      this.deps.deployLogs.append(app.id, deploy.id, 'petri', `${why}\n`);
      this.deps.deployLogs.close(deploy.id);
      await failDeploy(db, deploy.id, message);
    } else {
      await db
        .updateTable('apps')
        .set((eb) => ({ desired_release_id: eb.ref('serving_release_id') }))
        .where('id', '=', app.id)
        .where('desired_release_id', '=', row.release_id)
        .execute();
    }
    logs.append(app.name, 'petri', `${why}\n`);
    await updateInstance(db, row.id, { state: 'stopping', exit_reason: why });
    await this.stopInstance(row, 0);
  }

  /** Starts what the formation of the desired release lacks, retires what it no longer wants. */
  private async converge(app: App): Promise<void> {
    const { db } = this.deps;
    const rows = (await listInstances(db)).filter((r) => r.app_id === app.id);
    const wanted = new Set([app.desired_release_id, app.serving_release_id].filter((id) => id !== null));
    for (const row of rows) {
      if (!wanted.has(row.release_id) && row.state !== 'stopping') await this.retire(app, row);
    }
    if (app.desired_release_id === null) return;
    const release = (await releasesByIds(db, [app.desired_release_id])).get(app.desired_release_id);
    if (!release) return;
    const types = JSON.parse(release.process_types) as Record<string, string>;
    const formation = await formationOf(db, app.id);
    for (const [type, quantity] of formation) {
      const wantedCount = types[type] ? quantity : 0;
      const current = rows.filter(
        (r) => r.release_id === release.id && r.type === type && r.state !== 'stopping',
      );
      for (let idx = 1; idx <= wantedCount; idx++) {
        if (!current.some((r) => r.idx === idx)) await this.launch(app, release, undefined, type, idx);
      }
      for (const extra of current.filter((r) => r.idx > wantedCount)) await this.retire(app, extra);
    }
  }

  /** Starts an instance: a new row, or a crashed row started again. */
  private async launch(
    app: App,
    release: Release,
    existing?: Instance,
    type?: string,
    idx?: number,
  ): Promise<void> {
    const { db, driver, paths, config } = this.deps;
    const processType = existing?.type ?? type!;
    const index = existing?.idx ?? idx!;
    const command = (JSON.parse(release.process_types) as Record<string, string>)[processType];
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
      row = { ...existing, state: 'starting' };
    } else {
      const id = newId(`${app.name}-${processType.replace(/_/g, '-')}-${index}-`).toLowerCase();
      row = await insertInstance(db, {
        id,
        app_id: app.id,
        release_id: release.id,
        type: processType,
        idx: index,
        port: await freePort(),
      });
    }
    const workDir = paths.instance(app.id, row.id);
    this.watchOutput(app, row);
    const uid = config.uidBase + app.id;
    try {
      await driver.start({
        id: row.id,
        app: app.name,
        uid,
        gid: uid,
        slugDir: release.slug_dir,
        workDir,
        command: ['sh', '-c', command],
        env: {
          ...(JSON.parse(release.runtime_env) as Record<string, string>),
          PORT: String(row.port),
          HOME: '/app',
          PETRI_APP: app.name,
          PETRI_RELEASE: `v${release.version}`,
          PETRI_PROCESS: `${processType}.${index}`,
        },
        limits: appLimits(app),
        outputFile: path.join(workDir, 'output.log'),
      });
      this.note(app, row, `starting ${processType}.${index} (v${release.version}): ${command}`);
    } catch (err) {
      const why = `${processType}.${index} could not be started: ${errorMessage(err)}`;
      this.deps.logger.error({ err, instance: row.id }, 'instance start failed');
      if (app.serving_release_id !== release.id) await this.failRelease(app, row, why);
      else await this.crashed(app, row, undefined, why);
    }
  }

  private async retire(app: App, row: Instance): Promise<void> {
    await updateInstance(this.deps.db, row.id, {
      state: 'stopping',
      stop_deadline: new Date(Date.now() + this.deps.config.drainGraceMs).toISOString(),
    });
    this.note(app, row, `stopping ${row.type}.${row.idx}`);
    await this.stopInstance({ ...row, state: 'stopping' });
  }

  /** Stops an instance in the background; the next pass forgets it once it is gone. */
  private async stopInstance(row: Instance, graceMs?: number, nextState?: 'crashed'): Promise<void> {
    if (this.stopping.has(row.id)) return;
    this.stopping.add(row.id);
    const deadline = row.stop_deadline
      ? Date.parse(row.stop_deadline)
      : Date.now() + this.deps.config.drainGraceMs;
    const grace = graceMs ?? Math.max(0, deadline - Date.now());
    void this.deps.driver
      .stop(row.id, grace)
      .catch((err) => this.deps.logger.error({ err, instance: row.id }, 'instance stop failed'))
      .finally(() => {
        this.stopping.delete(row.id);
        if (nextState !== 'crashed') this.nudge();
      });
  }

  /** Removes the row and files of an instance that no longer runs. */
  private async forget(row: Instance, app: App | undefined): Promise<void> {
    const { db, driver, paths, tailer } = this.deps;
    const workDir = paths.instance(row.app_id, row.id);
    await tailer.unwatch(path.join(workDir, 'output.log'));
    this.watched.delete(row.id);
    await driver.removeFiles({ id: row.id, workDir });
    await deleteInstance(db, row.id);
    if (app) this.deps.logger.debug({ instance: row.id }, 'instance removed');
  }

  /** Processes the driver runs that no row knows of (a crash between start and insert). */
  private async stopOrphans(world: Map<string, InstanceStatus>, rows: Instance[]): Promise<void> {
    const known = new Set(rows.map((r) => r.id));
    for (const [id, status] of world) {
      if (known.has(id) || id.startsWith('build-') || this.stopping.has(id)) continue;
      if (!status.running) continue;
      this.deps.logger.warn({ instance: id }, 'stopping an instance no row knows of');
      this.stopping.add(id);
      void this.deps.driver.stop(id, 0).finally(() => this.stopping.delete(id));
    }
  }

  /** Points the router at the healthy web instances; switches releases once the new one is up. */
  private async route(apps: App[], rows: Instance[]): Promise<void> {
    const routes: RouteSpec[] = [];
    const switched: App[] = [];
    for (const app of apps) {
      const webOf = (releaseId: number | null) =>
        rows.filter((r) => r.app_id === app.id && r.release_id === releaseId && r.type === 'web');
      let target = app.serving_release_id;
      if (app.desired_release_id !== null && app.desired_release_id !== app.serving_release_id) {
        const formation = await formationOf(this.deps.db, app.id);
        const fresh = webOf(app.desired_release_id);
        const needed = formation.get('web') ?? 0;
        if (fresh.filter((r) => r.state === 'up').length >= needed && needed > 0) {
          target = app.desired_release_id;
          switched.push(app);
        }
      }
      routes.push({
        host: `${app.name}.${this.deps.config.domain}`,
        app: app.name,
        servers: webOf(target)
          .filter((r) => r.state === 'up')
          .map((r) => ({ id: r.id, address: '127.0.0.1', port: r.port })),
      });
    }
    const key = JSON.stringify(routes);
    if (key !== this.lastRoutes) {
      await this.deps.router.apply(routes);
      this.lastRoutes = key;
    }
    // Only once the router serves the new release is it the serving one; then the old drains.
    for (const app of switched) {
      const releaseId = app.desired_release_id!;
      const release = (await releasesByIds(this.deps.db, [releaseId])).get(releaseId);
      const deploy = release?.deploy_id;
      const message = `v${release?.version} serves at http://${app.name}.${this.deps.config.domain}:${this.deps.config.httpPort}`;
      this.deps.logs.append(app.name, 'petri', `${message}\n`);
      // The deploy's output is complete before its status says so: followers stop at the status.
      if (deploy) {
        this.deps.deployLogs.append(app.id, deploy, 'petri', `${message}\n`);
        this.deps.deployLogs.close(deploy);
      }
      await markReleaseServing(this.deps.db, app.id, releaseId);
      this.nudge();
    }
  }

  /** Files of apps that were destroyed, once nothing of theirs runs. */
  private async removeDestroyedApps(rows: Instance[]): Promise<void> {
    // Listed afresh: an app created during this pass may already be receiving an upload.
    const live = new Set((await listAllApps(this.deps.db)).map((a) => a.id));
    for (const id of await this.deps.paths.appIds()) {
      if (live.has(id) || rows.some((r) => r.app_id === id)) continue;
      await rm(this.deps.paths.app(id), { recursive: true, force: true });
    }
  }

  private readonly watched = new Set<string>();

  private watchOutput(app: App, row: Instance): void {
    if (this.watched.has(row.id)) return;
    this.watched.add(row.id);
    this.deps.tailer.watch(
      path.join(this.deps.paths.instance(app.id, row.id), 'output.log'),
      app.name,
      `${row.type}.${row.idx}`,
    );
  }

  /** A platform message in the app's log (source "petri") and in the deploy's output. */
  private note(app: App, row: Instance, text: string): void {
    this.deps.logs.append(app.name, 'petri', `${text}\n`);
    void releasingDeployOf(this.deps.db, row.release_id).then((d) => {
      if (d) this.deps.deployLogs.append(app.id, d.id, 'petri', `${text}\n`);
    });
  }
}

function describeExit(status: InstanceStatus | undefined): string {
  if (!status) return 'its process is gone';
  if (status.oomKilled) return 'killed: memory limit reached';
  if (status.signal) return `killed by ${status.signal}`;
  if (status.exitCode !== undefined && status.exitCode !== null) return `exit code ${status.exitCode}`;
  return 'its process is gone';
}

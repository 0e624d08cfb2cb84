// Each instance against what the driver says of it: a starting instance becomes up once it
// is healthy, or fails its release (a new one) or crashes (a serving one) when it exits or
// misses its boot timeout; a crashed one restarts after 1 s, 2 s ... up to a minute; a
// launch writes the row before the driver starts the sandbox, so a crash between the two is
// found by the next pass. Where an instance is reached, its address and its port, is the
// driver's to choose and say: from start(), then from list() every pass.
import type { Logger } from 'pino';
import { newId } from '../domain/ids.js';
import { insertInstance, markInstanceUp, updateInstance } from '../domain/instances.js';
import { releaseEgress, releaseProcessTypes } from '../domain/release-json.js';
import { failRelease } from '../domain/releases.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { until } from '../lib/until.js';
import type { LogStore } from '../logs/log-store.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.js';
import { instanceIdentity, instanceSpec, type SpecContext } from '../specs/sandbox-specs.js';
import type { Store } from '../store/db.js';
import type { App, Instance, Release } from '../store/schema.js';
import { checkHealth } from './health.js';
import type { InstanceStops } from './instance-stops.js';
import type { ReleaseNotes } from './release-notes.js';

/** How often a starting web process is checked between passes. */
const READINESS_POLL_MS = 5;
/** The longest delay before a crashed instance starts again. */
const MAX_RESTART_DELAY_MS = 60_000;
/** An instance that stayed up this long before crashing starts its backoff afresh. */
const STABLE_AFTER_MS = 60_000;

/** What the reconciler tells the egress proxy's map of who is behind each address: the map
 * itself (edge/egress-clients.ts) is wired by server.ts, as controllers/ never import edge/. */
export interface EgressClientMap {
  set(address: string, client: { app: string; allowed: readonly string[] }): void;
  refresh(): Promise<void>;
}

export interface InstanceSupervisorDeps {
  db: Store;
  driver: RuntimeDriver;
  config: PetriConfig;
  logs: LogStore;
  logger: Logger;
  /** Tells the egress proxy who is behind each instance address. */
  egressClients?: EgressClientMap;
  /** A web process of the app is up: the waker hands the requests it holds over now. */
  onWebUp?: (appId: number) => void;
}

export class InstanceSupervisor {
  private readonly pidsLimitNoted = new Set<string>();

  constructor(
    private readonly deps: InstanceSupervisorDeps,
    private readonly parts: {
      /** What sandbox specs are built from (specs/). */
      specs: SpecContext;
      notes: ReleaseNotes;
      stops: InstanceStops;
      /** Wakes the reconciler (a starting web process answered). */
      nudge: () => void;
      /** True once the reconciler is stopping: readiness watches end. */
      stopped: () => boolean;
    },
  ) {}

  /** Updates one instance row from what the driver says about its process. */
  async observe(
    row: Instance,
    status: InstanceStatus | undefined,
    app: App | undefined,
    releases: Map<number, Release>,
  ): Promise<void> {
    const { db } = this.deps;
    const { notes, stops } = this.parts;
    const alive = status?.running === true;
    const release = releases.get(row.release_id);
    // Where the instance is reached is the driver's to say, every pass: a driver may move it.
    // A port the driver does not know (an instance an earlier Petri started) stays the row's.
    if (status) {
      const address = status.address ?? null;
      const port = status.port ?? row.port;
      if (address !== row.address || port !== row.port) {
        await updateInstance(db, row.id, { address, port });
        row = { ...row, address, port };
      }
    }
    if (row.state === 'stopping') {
      if (!alive && !stops.inFlight(row.id)) await stops.forget(row);
      return;
    }
    if (!app || !release) {
      await updateInstance(db, row.id, { state: 'stopping', stop_deadline: new Date().toISOString() });
      return;
    }
    if (alive && !status.labels && this.deps.driver.relabel) {
      // Started by a Petri from before instances carried labels: say whose it is, so its
      // output is captured again without a restart.
      await this.deps.driver.relabel(
        instanceIdentity(this.parts.specs, { app, release, id: row.id, type: row.type, index: row.idx }),
      );
    }
    const name = `${row.type}.${row.idx}`;
    const isNew = app.serving_release_id !== row.release_id;
    if (alive && status?.limitHit === 'pids' && !this.pidsLimitNoted.has(row.id)) {
      // Said once per instance: the counter only grows, and forks keep failing while it does.
      this.pidsLimitNoted.add(row.id);
      notes.note(
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
        await this.markUp(app, row);
        return;
      }
      const timeout = app.boot_timeout_ms ?? this.deps.config.bootTimeoutMs;
      if (Date.now() - Date.parse(row.started_at) > timeout) {
        const seconds = Math.round(timeout / 1000);
        const why = release.health_path
          ? `${name} did not answer ${release.health_path} with 2xx/3xx within ${seconds} s`
          : `${name} did not listen on PORT${row.port === null ? '' : ` (${row.port})`} within ${seconds} s; make the app listen on the port in the PORT environment variable`;
        return isNew ? this.failStart(app, row, why) : this.crashed(app, row, status, why);
      }
      return;
    }
    if (row.state === 'up' && !alive) {
      return this.crashed(app, row, status, `${name} exited (${describeExit(status, app)})`);
    }
    if (row.state === 'crashed') {
      if (alive) return stops.kill(row); // a start that timed out: make sure it is gone first
      // A sleeping app's crashed process stays down (the plan retires it).
      if (row.next_start_at && Date.parse(row.next_start_at) <= Date.now() && app.sleeping_since === null)
        await this.launch(app, release, row);
    }
  }

  /** Starts an instance: a new row, or a crashed row started again. */
  async launch(
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
      // The driver chooses the port afresh: the old one is not known to be the new one.
      await updateInstance(db, existing.id, {
        state: 'starting',
        started_at: new Date().toISOString(),
        ready_at: null,
        next_start_at: null,
        port: null,
      });
      row = { ...existing, state: 'starting', started_at: new Date().toISOString(), port: null };
    } else {
      const id = newId(`${app.name}-${processType.replace(/_/g, '-')}-${index}-`).toLowerCase();
      row = await insertInstance(db, {
        id,
        app_id: app.id,
        release_id: release.id,
        type: processType,
        idx: index,
        generation,
      });
    }
    const launchedAt = Date.now();
    try {
      const started = await driver.start(
        instanceSpec(this.parts.specs, {
          app,
          release,
          id: row.id,
          type: processType,
          index,
          command,
        }),
      );
      // The driver's answer: where the instance is reached, and on which port.
      row = { ...row, address: started.address ?? null, port: started.port ?? null };
      await updateInstance(db, row.id, { address: row.address, port: row.port });
      if (started.address) {
        this.deps.egressClients?.set(started.address, {
          app: app.name,
          allowed: releaseEgress(release),
        });
      }
      this.parts.notes.note(
        app,
        release.id,
        `starting ${processType}.${index} (v${release.version}): ${command}`,
      );
      if (processType === 'web') this.watchReadiness(row, release, app, launchedAt);
    } catch (err) {
      const why = `${processType}.${index} could not be started: ${errorMessage(err)}`;
      this.deps.logger.error({ err, instance: row.id }, 'instance start failed');
      if (app.serving_release_id !== release.id) await this.failStart(app, row, why);
      else await this.crashed(app, row, undefined, why);
    }
  }

  /** Checks a starting web process every few ms and wakes the reconciler the moment it
   * answers, instead of at the next pass: a woken app's visitor is waiting for it. */
  private watchReadiness(row: Instance, release: Release, app: App, launchedAt: number): void {
    const timeout = app.boot_timeout_ms ?? this.deps.config.bootTimeoutMs;
    const watching = Date.now();
    let probes = 0;
    void until(
      async () => {
        probes++;
        return this.parts.stopped() || (await this.isHealthy(row, release));
      },
      { timeout, interval: READINESS_POLL_MS },
    )
      .then(
        async () => {
          const answeredMs = Date.now() - watching;
          // Up at once, not at the next pass: the waker hands a held request to the app the
          // moment its row says so (a pass would add its own length and its interval).
          if (!this.parts.stopped()) await this.markUp(app, row);
          this.parts.nudge();
          // Where a start's time goes (bench/wake.ts): the driver's start, then the app
          // until it answers a probe.
          this.deps.logger.info(
            {
              id: row.id,
              app: app.name,
              timings: { startMs: watching - launchedAt, readyMs: answeredMs, probes },
            },
            'instance answers',
          );
        },
        () => {}, // the pass reports a start that never became healthy
      )
      .catch((err: unknown) =>
        this.deps.logger.warn({ err, instance: row.id }, 'marking an instance up failed'),
      );
  }

  /** A starting instance answered: up, said once (a pass and the readiness watch may both
   * see it). */
  private async markUp(app: App, row: Instance): Promise<void> {
    if (!(await markInstanceUp(this.deps.db, row.id, row.port))) return;
    if (row.type === 'web') this.deps.onWebUp?.(row.app_id);
    const name = `${row.type}.${row.idx}`;
    this.parts.notes.note(
      app,
      row.release_id,
      `${name} is up${row.type === 'web' ? ` on port ${row.port}` : ''}`,
    );
  }

  private async isHealthy(row: Instance, release: Release): Promise<boolean> {
    if (row.type !== 'web') return true;
    if (row.port === null) return false; // not known yet: the driver has not said it
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
    const delay = Math.min(1000 * 2 ** (restarts - 1), MAX_RESTART_DELAY_MS);
    await updateInstance(this.deps.db, row.id, {
      state: 'crashed',
      restarts,
      exit_code: status?.exitCode ?? null,
      exit_reason: why,
      next_start_at: new Date(Date.now() + delay).toISOString(),
    });
    this.parts.notes.note(app, row.release_id, `${why}; restarting in ${Math.round(delay / 1000)} s`);
    if (status?.running) this.parts.stops.kill(row);
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
    this.parts.notes.note(app, row.release_id, why);
    this.parts.notes.close(row.release_id);
    await failRelease(db, row.release_id, message);
    await updateInstance(db, row.id, {
      state: 'stopping',
      exit_reason: why,
      stop_deadline: new Date().toISOString(),
    });
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

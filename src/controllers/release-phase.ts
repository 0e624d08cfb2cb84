// The release phase: a Procfile's `release:` command (migrations) runs once per release,
// in the sandbox with the new build and config, before any instance of it starts. It runs
// as a driver instance, so it outlives a restart of the control plane like any other and
// its exit status is known afterwards. A failure fails the release with its output.
import type { Logger } from 'pino';
import { newId } from '../domain/ids.js';
import { failRelease, releasePhaseInstances, updateReleasePhase } from '../domain/releases.js';
import { Backoff } from '../lib/backoff.js';
import type { PetriConfig } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { LogStore } from '../logs/log-store.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.js';
import { releasePhaseSpec, type SpecContext } from '../specs/sandbox-specs.js';
import type { Store } from '../store/db.js';
import type { App, Release } from '../store/schema.js';

export interface ReleasePhaseDeps {
  db: Store;
  driver: RuntimeDriver;
  paths: DataPaths;
  config: PetriConfig;
  logs: LogStore;
  logger: Logger;
  /** What sandbox specs are built from (specs/). */
  specs: SpecContext;
  note: (app: App, release: Release, text: string) => void;
  /** The command's output, for the deploy's followers. */
  output: (app: App, release: Release, lines: string[]) => void;
}

/** A release command that cannot be started is tried again after 1 s, 2 s ... up to this. */
const MAX_START_BACKOFF_MS = 60_000;

export class ReleasePhase {
  /** True while a release command runs: the reconciler then checks often. */
  busy = false;
  private readonly retries = new Backoff({ maxMs: MAX_START_BACKOFF_MS });

  constructor(private readonly deps: ReleasePhaseDeps) {}

  /** Runtime ids of release commands the store knows of (not orphans). */
  knownIds(): Promise<Set<string>> {
    return releasePhaseInstances(this.deps.db);
  }

  /** Moves the release phase of the desired release on; true once it has succeeded (or
   * there is none). */
  async advance(app: App, release: Release, world: Map<string, InstanceStatus>): Promise<boolean> {
    switch (release.phase_status) {
      case 'none':
      case 'succeeded':
        return true;
      case 'failed':
        return false;
      case 'pending': {
        const id = newId(`release-${app.name}-v${release.version}-`).toLowerCase();
        // Written before it starts: after a crash here, the next pass finds no such
        // process and starts it, rather than losing it.
        await updateReleasePhase(this.deps.db, release.id, {
          phase_status: 'running',
          phase_instance: id,
          phase_started_at: new Date().toISOString(),
        });
        this.busy = await this.startRetried(app, { ...release, phase_instance: id });
        return false;
      }
      case 'running':
        return this.check(app, release, world.get(release.phase_instance ?? ''));
    }
  }

  /** The app expired (or was archived) while its release command ran: the command is
   * stopped like every other process of the app, and runs again from the start once a
   * renewal brings the app back (a migration must be able to run twice anyway: a restart of
   * the host can cut one short too). */
  async halt(app: App, release: Release): Promise<void> {
    if (release.phase_status !== 'running' || release.phase_instance === null) return;
    await this.cleanUp(app, release.phase_instance);
    await updateReleasePhase(this.deps.db, release.id, { phase_status: 'pending', phase_instance: null });
    this.deps.note(
      app,
      release,
      'release command stopped: the experiment expired; it runs again after a renewal',
    );
  }

  private async check(app: App, release: Release, status: InstanceStatus | undefined): Promise<boolean> {
    const id = release.phase_instance!;
    if (!status) {
      this.busy = await this.startRetried(app, release);
      return false;
    }
    const ranFor = Date.now() - Date.parse(release.phase_started_at ?? new Date().toISOString());
    if (status.running && ranFor <= this.deps.config.buildTimeoutMs) {
      this.busy = true;
      return false;
    }
    this.busy = false;
    await this.deps.driver.flushOutput();
    const lines = this.deps.logs
      .read(app.name, { lines: 200, sources: ['release'], since: new Date(release.phase_started_at ?? 0) })
      .map((l) => l.text);
    this.deps.output(app, release, lines);
    const output = lines.slice(-20).map((l) => `  ${l}`);
    await this.cleanUp(app, id);
    if (!status.running && status.exitCode === 0) {
      await updateReleasePhase(this.deps.db, release.id, { phase_status: 'succeeded', phase_instance: null });
      this.deps.note(app, release, 'release command succeeded');
      return true;
    }
    const why = status.running
      ? `release command exceeded its time limit of ${Math.round(this.deps.config.buildTimeoutMs / 60_000)} min`
      : `release command failed (${status.oomKilled ? 'killed: memory limit reached' : `exit code ${status.exitCode ?? 'unknown'}`})`;
    await updateReleasePhase(this.deps.db, release.id, { phase_status: 'failed', phase_instance: null });
    this.deps.note(app, release, `${why}; v${release.version} is not released`);
    await failRelease(
      this.deps.db,
      release.id,
      output.length > 0 ? `${why}; its output:\n${output.join('\n')}` : why,
    );
    return false;
  }

  /** start(), unless an earlier start of this release's command failed and its delay has
   * not passed (every pass would try again otherwise, every 50 ms while others start). The
   * error still reaches the caller, which logs it once with a count. True when started. */
  private async startRetried(app: App, release: Release): Promise<boolean> {
    const key = `release ${release.id}`;
    if (!this.retries.ready(key)) return false;
    try {
      await this.start(app, release);
    } catch (err) {
      this.retries.failed(key);
      throw err;
    }
    this.retries.succeeded(key);
    return true;
  }

  private async start(app: App, release: Release): Promise<void> {
    const id = release.phase_instance!;
    this.deps.note(app, release, `running the release command: ${release.release_command}`);
    await this.deps.driver.start(releasePhaseSpec(this.deps.specs, { app, release, id }));
  }

  private async cleanUp(app: App, id: string): Promise<void> {
    const workDir = this.deps.paths.instance(app.id, id);
    await this.deps.driver.stop(id, 0);
    await this.deps.driver.removeFiles({ id, workDir });
  }
}

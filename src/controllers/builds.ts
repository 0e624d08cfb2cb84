// The build loop: takes queued deploys (one at a time per app), builds each in the app's
// sandbox, and turns the result into the app's desired release. The instance reconciler
// then makes it serve. A build is the one step that cannot resume after a crash of the
// control plane; those are failed with the reason at start (failInterruptedBuilds), and what
// they left on disk is reclaimed then (reclaimBuilds).
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { buildSlug } from '../build/builder.js';
import { NodeRuntimes } from '../build/node-runtimes.js';
import { findApp } from '../domain/apps.js';
import { audienceFromManifest } from '../domain/audiences.js';
import {
  claimDeploy,
  deployStatuses,
  deploysReadyToBuild,
  failDeploy,
  releaseBuild,
  supersedeQueuedDeploys,
} from '../domain/deploys.js';
import { describeFromManifest } from '../domain/experiments.js';
import { nodeVersionsInUse } from '../domain/stacks.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage, isUserError } from '../lib/errors.js';
import { Loop } from '../lib/loop.js';
import type { DataPaths } from '../lib/paths.js';
import { removeTree } from '../lib/remove-tree.js';
import { runtimesDir } from '../lib/runtime-cache.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import { buildRequest } from '../specs/sandbox-specs.js';
import type { Store } from '../store/db.js';
import type { Deploy } from '../store/schema.js';

export interface BuildLoopDeps {
  db: Store;
  driver: RuntimeDriver;
  paths: DataPaths;
  config: PetriConfig;
  logs: LogStore;
  deployLogs: DeployLogs;
  logger: Logger;
  /** Called when a release is ready to serve. */
  onReleased: () => void;
  egressProxyUrl?: string;
  /** The Node.js runtimes builds install and use; by default the cache of config runtimesDir. */
  runtimes?: NodeRuntimes;
}

/** Two builds at once keep a 2-core host responsive for the apps it serves; at most one
 * per owner (deploysReadyToBuild), so no owner holds both. */
const MAX_CONCURRENT_BUILDS = 2;

export class BuildLoop {
  private readonly active = new Map<string, Promise<void>>();
  private readonly loop: Loop;
  private stopped = false;
  /** Passes in a row that found no deploy to build (the interval grows with them). */
  private idlePasses = 0;
  private readonly runtimes: NodeRuntimes;

  constructor(private readonly deps: BuildLoopDeps) {
    this.runtimes =
      deps.runtimes ??
      new NodeRuntimes({
        dir: runtimesDir(deps.config, deps.paths.root),
        logger: deps.logger,
        maxVersions: deps.config.maxNodeVersions,
        inUse: () => nodeVersionsInUse(deps.db),
      });
    this.loop = new Loop({
      what: 'starting queued builds',
      pass: () => this.startQueued(),
      // Every upload and push ticks this loop (the API's nudge): the interval is only what
      // catches a deploy queued otherwise, so it grows to 30 s while nothing is queued.
      intervalMs: () => Math.min(1000 * 2 ** this.idlePasses, 30_000),
      logger: deps.logger,
    });
  }

  start(): void {
    this.loop.start();
  }

  /** No build starts after this; resolves once the builds under way have ended (each is
   * bounded by the build timeout), so nothing writes to the store after it closes. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
    await Promise.allSettled(this.active.values());
  }

  /** Starts queued builds now (called after an upload). */
  tick(): Promise<void> {
    return this.loop.runNow();
  }

  private async startQueued(): Promise<void> {
    // Only the newest queued deploy of an app waits; the sources of the others go at once.
    const superseded = await supersedeQueuedDeploys(this.deps.db);
    for (const old of superseded) await removeTree(this.deps.paths.deploySource(old.app_id, old.id));
    const ready = await deploysReadyToBuild(this.deps.db);
    this.idlePasses =
      superseded.length === 0 && ready.length === 0 && this.active.size === 0
        ? Math.min(this.idlePasses + 1, 5)
        : 0;
    for (const deploy of ready) {
      if (this.active.size >= MAX_CONCURRENT_BUILDS || this.stopped) return;
      if (this.active.has(deploy.id) || !(await claimDeploy(this.deps.db, deploy.id))) continue;
      const run = this.build(deploy).finally(() => {
        this.active.delete(deploy.id);
        this.loop.nudge();
      });
      this.active.set(deploy.id, run);
    }
  }

  private async build(deploy: Deploy): Promise<void> {
    const { db, driver, paths, config, logs, deployLogs, logger } = this.deps;
    const app = await findApp(db, deploy.app_id);
    if (!app) return;
    const output = (text: string) => {
      // Only what the capped deploy log kept reaches the app's log: a flood stops at the cap.
      const kept = deployLogs.append(app.id, deploy.id, 'build', text);
      if (kept) logs.append(app.name, 'build', kept);
    };
    const started = Date.now();
    try {
      // A cache of before builds had disks of their own: a tree the app wrote.
      await removeTree(paths.legacyBuildCache(app.id));
      const plan = await buildSlug(
        driver,
        buildRequest(
          { config, paths, egressProxyUrl: this.deps.egressProxyUrl },
          { app, deploy, onOutput: output },
        ),
        this.runtimes,
      );
      output(`-----> Build finished in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      // petri.toml's description and data class, by the rules of `petri apps set`: a
      // refusal (personal data without a privacy note) fails the deploy, naming the field.
      if (plan.describe) await describeFromManifest(db, app, plan.describe, deploy.created_by);
      // petri.toml's audience, after its data class: public with personal data is refused.
      if (plan.audience !== undefined) await audienceFromManifest(db, app, plan.audience, deploy.created_by);
      const release = await releaseBuild(db, deploy, {
        slugDir: paths.slug(app.id, deploy.id),
        processTypes: plan.processTypes,
        runtimeEnv: plan.env,
        releaseCommand: plan.releaseCommand,
        healthPath: plan.healthPath,
        egress: plan.egress,
        nodeVersion: plan.nodeVersion,
      });
      output(`-----> Releasing v${release.version}\n`);
      this.deps.onReleased();
    } catch (err) {
      const message = errorMessage(err);
      if (!isUserError(err)) logger.error({ err, deploy: deploy.id }, 'build failed unexpectedly');
      output(`-----> Build failed: ${message}\n`);
      await failDeploy(db, deploy.id, message);
      await rm(paths.slug(app.id, deploy.id), { recursive: true, force: true });
      await rm(`${paths.slug(app.id, deploy.id)}.partial`, { recursive: true, force: true });
    } finally {
      deployLogs.close(deploy.id);
      logs.flush(app.name, 'build');
      await removeTree(paths.deploySource(app.id, deploy.id));
    }
  }
}

/** What builds and uploads cut off by a crash of the control plane left on disk, removed at
 * start (after failInterruptedBuilds, before the build loop): a build's disks (unmounted, the
 * /app image deleted) and half-made slug, and the source of every deploy that is not waiting
 * to be built; the directory of a deploy the store does not know (an upload refused, or cut
 * off before it was queued) goes whole. A deploy's build log stays. Returns the deploy ids. */
export async function reclaimBuilds(
  deps: Pick<BuildLoopDeps, 'db' | 'driver' | 'paths' | 'logger'>,
): Promise<string[]> {
  const { db, paths } = deps;
  const reclaimed: string[] = [];
  for (const appId of await paths.appIds()) {
    const dir = path.dirname(paths.deployDir(appId, 'x'));
    const ids = await readdir(dir).catch(() => [] as string[]);
    const known = await deployStatuses(db, appId, ids);
    for (const id of ids) {
      const status = known.get(id);
      if (status === 'queued') continue;
      // One leftover that cannot be removed must not keep the control plane from starting.
      try {
        if (await reclaimDeploy(deps, appId, id, status)) reclaimed.push(id);
      } catch (err) {
        deps.logger.warn({ err, deploy: id }, 'could not reclaim what a cut-off build left');
      }
    }
  }
  return reclaimed;
}

async function reclaimDeploy(
  { driver, paths }: Pick<BuildLoopDeps, 'driver' | 'paths'>,
  appId: number,
  id: string,
  status: string | undefined,
): Promise<boolean> {
  let found = false;
  const workDir = paths.buildWork(appId, id);
  if (await exists(workDir)) {
    // Unmounted before anything is removed: rm must never walk into a build's disk.
    await driver.closeBuildDisks({ workDir, cacheDir: paths.buildCache(appId) });
    found = true;
  }
  await rm(`${paths.slug(appId, id)}.partial`, { recursive: true, force: true });
  if (status === undefined) {
    await removeTree(paths.deployDir(appId, id));
    return true;
  }
  if (await exists(paths.deploySource(appId, id))) {
    await removeTree(paths.deploySource(appId, id));
    found = true;
  }
  return found;
}

async function exists(p: string): Promise<boolean> {
  return readdir(p).then(
    () => true,
    () => false,
  );
}

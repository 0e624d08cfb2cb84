// Runs a build plan in the app's sandbox and turns the result into a read-only slug.
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../lib/errors.js';
import { execOk } from '../lib/exec.js';
import type { Limits, RuntimeDriver } from '../runtime/driver.js';
import { cacheKey, restoreDependencies, saveDependencies } from './cache.js';
import { planBuild } from './detect.js';
import type { BuildPlan } from './plan.js';

export interface BuildRequest {
  buildId: string;
  app: string;
  uid: number;
  gid: number;
  sourceDir: string;
  cacheDir: string;
  slugDir: string;
  limits: Limits;
  timeoutMs: number;
  onOutput: (text: string) => void;
  /** The egress proxy builds reach package registries through, when sandboxes have their own network. */
  proxyUrl?: string;
  /** Build from scratch: the app's build cache is emptied first. */
  noCache?: boolean;
}

export async function buildSlug(driver: RuntimeDriver, req: BuildRequest): Promise<BuildPlan> {
  const started = Date.now();
  const plan = await planBuild(req.sourceDir);
  req.onOutput(`-----> ${stackTitle(plan.stack)} app detected\n`);
  if (req.noCache) {
    await rm(req.cacheDir, { recursive: true, force: true });
    req.onOutput('-----> Building without the cache (--no-cache)\n');
  }
  const key = plan.dependencies && cacheKey(req.sourceDir, plan.stack, plan.dependencies);
  const restored =
    plan.dependencies && key
      ? await restoreDependencies(req.cacheDir, key, req.sourceDir, plan.dependencies)
      : false;
  if (restored) req.onOutput('-----> Dependencies unchanged: restored from the build cache\n');
  // The build runs as the app's own user: it owns its source and its cache, nothing else.
  await mkdir(req.cacheDir, { recursive: true });
  await execOk('chown', ['-R', `${req.uid}:${req.gid}`, req.sourceDir, req.cacheDir]);
  for (const [i, step] of plan.steps.entries()) {
    if (restored && step.installs) continue;
    req.onOutput(`-----> ${step.title}\n`);
    const remaining = req.timeoutMs - (Date.now() - started);
    const result = await driver.runTask({
      id: `build-${req.buildId.toLowerCase()}-${i}`,
      app: req.app,
      uid: req.uid,
      gid: req.gid,
      appDir: req.sourceDir,
      writableMounts: { [req.cacheDir]: '/cache' },
      command: step.argv,
      env: {
        ...plan.env,
        ...step.env,
        ...proxyEnv(req.proxyUrl),
        HOME: '/app',
        npm_config_cache: '/cache/npm',
        CI: 'true',
      },
      limits: req.limits,
      timeoutMs: Math.max(remaining, 1000),
      onOutput: req.onOutput,
    });
    if (result.timedOut) {
      throw new UserError(
        'build_failed',
        `build exceeded its time limit of ${formatDuration(req.timeoutMs)}`,
      );
    }
    if (result.oomKilled) {
      throw new UserError(
        'build_failed',
        `${step.title} was killed: memory limit ${req.limits.memoryMiB} MiB`,
      );
    }
    if (result.exitCode !== 0) {
      const how = result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`;
      throw new UserError('build_failed', `${step.title} failed (${how}); see the build output above`);
    }
  }
  if (plan.dependencies && key && !restored)
    await saveDependencies(req.cacheDir, key, req.sourceDir, plan.dependencies);
  req.onOutput(`-----> Process types: ${Object.keys(plan.processTypes).join(', ')}\n`);
  await freezeSlug(req.sourceDir, req.slugDir);
  return plan;
}

/** Moves the build output to its slug directory and makes it root-owned and read-only, so
 * no instance can change the release it runs from. */
async function freezeSlug(sourceDir: string, slugDir: string): Promise<void> {
  await mkdir(path.dirname(slugDir), { recursive: true });
  await rename(sourceDir, slugDir);
  await execOk('chown', ['-R', '0:0', slugDir]);
  await execOk('chmod', ['-R', 'u-w,go-w', slugDir]);
}

function proxyEnv(url: string | undefined): Record<string, string> {
  if (!url) return {};
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    NO_PROXY: 'localhost,127.0.0.1',
  };
}

function stackTitle(stack: string): string {
  const titles: Record<string, string> = {
    node: 'Node.js',
    python: 'Python',
    static: 'Static site',
    procfile: 'Procfile',
  };
  return titles[stack] ?? stack;
}

function formatDuration(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`;
}

// Runs a build plan in the app's sandbox, on disks of the app's size (its /app and its
// build cache, see BuildDisksSpec), and turns the result into a read-only slug. Root reads
// the source before any build step ran in it, and afterwards only copies the build's /app
// out with cp, which never follows a link: every other file operation on what a build wrote
// (restoring and saving the cache) runs in the sandbox as the app's own user.
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../lib/errors.js';
import { execOk } from '../lib/exec.js';
import { DEFAULT_DISK_MIB } from '../lib/limits.js';
import { NODE_MOUNT } from '../lib/runtime-cache.js';
import type { BuildDisks, Limits, RuntimeDriver, TaskResult } from '../runtime/driver.js';
import { cacheKey, looksCached, RESTORE_FAILED, restoreThen, saveTask } from './cache.js';
import { planBuild } from './detect.js';
import type { NodeRuntimes, ProvidedNode } from './node-runtimes.js';
import type { BuildPlan } from './plan.js';

export interface BuildRequest {
  buildId: string;
  app: string;
  uid: number;
  gid: number;
  /** The unpacked upload (links refused); only read, before the build. */
  sourceDir: string;
  /** The build's own directory, for its /app disk; removed after the build. */
  workDir: string;
  /** The app's build cache directory (see BuildDisksSpec.cacheDir). */
  cacheDir: string;
  /** Size of the build cache (config buildCacheMiB). */
  cacheMiB: number;
  slugDir: string;
  limits: Limits;
  timeoutMs: number;
  onOutput: (text: string) => void;
  /** The egress proxy builds reach package registries through, when sandboxes have their own network. */
  proxyUrl?: string;
  /** Build from scratch: the app's build cache is emptied first. */
  noCache?: boolean;
}

/** The plan as built, with the Node.js version the build ran on and the release runs on
 * (undefined: the host's). */
export type BuiltSlug = BuildPlan & { nodeVersion?: string };

/**
 * The host's global npm configuration (registry, proxy, cafile), for the host's npm running
 * on a runtime from the cache: npm looks for it beside the Node.js that runs it
 * (PREFIX/etc/npmrc), which is /opt/node in the sandbox, not the host's prefix, so a
 * registry behind a TLS-inspecting proxy (its CA in the host's npmrc cafile) would fail
 * every install with SELF_SIGNED_CERT_IN_CHAIN. /usr and /etc are the host's in the sandbox.
 * The control plane's own Node.js may live elsewhere (/opt/petri/node, when the host's is
 * older than 22), so the host's usual prefixes are looked at too.
 */
function hostNpmGlobalConfig(): Record<string, string> {
  const prefixes = [path.resolve(path.dirname(process.execPath), '..'), '/usr/local', '/usr'];
  for (const prefix of prefixes) {
    const file = path.join(prefix, 'etc', 'npmrc');
    if (/^\/(usr|etc)\//.test(file) && existsSync(file)) return { npm_config_globalconfig: file };
  }
  return {};
}

/** Without runtimes, a Node.js app builds and runs on the host's Node.js. */
export async function buildSlug(
  driver: RuntimeDriver,
  req: BuildRequest,
  runtimes?: NodeRuntimes,
): Promise<BuiltSlug> {
  const started = Date.now();
  const plan: BuiltSlug = await planBuild(req.sourceDir);
  req.onOutput(`-----> ${stackTitle(plan.stack)} app detected\n`);
  if (req.noCache) req.onOutput('-----> Building without the cache (--no-cache)\n');
  const node = plan.node && runtimes ? await provideNode(runtimes, plan.node.range, req.onOutput) : undefined;
  // The build and every process of the release run on it: first on PATH, mounted read-only.
  const mounts: Record<string, string> = node ? { [node.dir]: NODE_MOUNT } : {};
  const buildEnv: Record<string, string> = node
    ? { npm_config_nodedir: NODE_MOUNT, ...hostNpmGlobalConfig() }
    : {};
  if (node) {
    plan.nodeVersion = node.version;
    plan.env = { ...plan.env, PATH: `${NODE_MOUNT}/bin:${plan.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'}` };
  }
  // Native modules are built for one Node.js: dependencies installed under another are not reused.
  const keyStack = node ? `${plan.stack}@${node.version}` : plan.stack;
  const key = plan.dependencies && (await cacheKey(req.sourceDir, keyStack, plan.dependencies));
  const diskMiB = req.limits.diskMiB ?? DEFAULT_DISK_MIB;
  const disksSpec = { workDir: req.workDir, cacheDir: req.cacheDir };
  try {
    const disks = await driver.openBuildDisks({
      id: `build-${req.buildId.toLowerCase()}`,
      uid: req.uid,
      gid: req.gid,
      workDir: req.workDir,
      sourceDir: req.sourceDir,
      diskMiB,
      cacheDir: req.cacheDir,
      cacheMiB: req.cacheMiB,
      freshCache: req.noCache === true,
    });
    // The build runs as the app's own user: it owns its /app and its cache, nothing else.
    const run = (
      suffix: string,
      title: string,
      command: string[],
      env: Record<string, string>,
      output = req.onOutput,
    ) => runStep(driver, req, disks, { suffix, title, command, env, output, diskMiB, started, mounts });
    // Restored with the first step that runs after the install, in its sandbox; on its own
    // when no step does. Skipped when the cache plainly has nothing under the key.
    const restored = Boolean(plan.dependencies && key && (await looksCached(disks.cacheDir, key)));
    let restorePending = restored;
    if (restored) req.onOutput('-----> Dependencies unchanged: restored from the build cache\n');
    for (const [i, step] of plan.steps.entries()) {
      if (restored && step.installs) continue;
      req.onOutput(`-----> ${step.title}\n`);
      const argv =
        restorePending && key && plan.dependencies
          ? restoreThen(key, plan.dependencies, step.argv)
          : step.argv;
      const result = await run(String(i), step.title, argv, {
        ...plan.env,
        ...buildEnv,
        ...step.env,
        ...proxyEnv(req.proxyUrl),
      });
      if (restorePending) throwIfNotRestored(result, req.cacheMiB);
      restorePending = false;
      throwIfFailed(result, step.title, req, diskMiB);
    }
    if (restorePending && key && plan.dependencies) {
      const result = await run(
        'restore',
        'Restoring dependencies',
        restoreThen(key, plan.dependencies, ['true']),
        {},
      );
      throwIfNotRestored(result, req.cacheMiB);
      throwIfFailed(result, 'Restoring dependencies from the build cache', req, diskMiB);
    }
    if (plan.dependencies && key && !restored) {
      let said = '';
      const result = await run(
        'save',
        'Saving dependencies to the build cache',
        saveTask(key, plan.dependencies),
        {},
        (t) => {
          said += t;
        },
      );
      // Only ever a speed-up: a cache too small for the dependencies costs the next build
      // its install, not this build its release.
      if (result.exitCode !== 0) {
        const why = result.fullDisks?.includes('/cache')
          ? `they do not fit its ${req.cacheMiB} MiB (buildCacheMiB)`
          : `the copy failed:\n${said}`;
        req.onOutput(`-----> Dependencies not kept in the build cache: ${why}\n`);
      }
    }
    req.onOutput(`-----> Process types: ${Object.keys(plan.processTypes).join(', ')}\n`);
    await freezeSlug(disks.appDir, req.slugDir);
    return plan;
  } finally {
    await driver.closeBuildDisks(disksSpec);
  }
}

interface Step {
  suffix: string;
  title: string;
  command: string[];
  env: Record<string, string>;
  output: (text: string) => void;
  diskMiB: number;
  started: number;
  /** Read-only mounts (the Node.js runtime), host path -> sandbox path. */
  mounts: Record<string, string>;
}

function runStep(
  driver: RuntimeDriver,
  req: BuildRequest,
  disks: BuildDisks,
  step: Step,
): Promise<TaskResult> {
  const remaining = req.timeoutMs - (Date.now() - step.started);
  return driver.runTask({
    id: `build-${req.buildId.toLowerCase()}-${step.suffix}`,
    app: req.app,
    uid: req.uid,
    gid: req.gid,
    appDir: disks.appDir,
    writableMounts: { [disks.cacheDir]: '/cache' },
    readOnlyMounts: step.mounts,
    command: step.command,
    env: {
      ...step.env,
      HOME: '/app',
      npm_config_cache: '/cache/npm',
      CI: 'true',
    },
    limits: req.limits,
    timeoutMs: Math.max(remaining, 1000),
    onOutput: step.output,
    labels: { app: req.app, kind: 'build', deploy: req.buildId },
  });
}

/** The Node.js of the build, said in its output; undefined: the host's (nothing on offer). */
async function provideNode(
  runtimes: NodeRuntimes,
  range: string | undefined,
  onOutput: (text: string) => void,
): Promise<ProvidedNode | undefined> {
  const node = await runtimes.provide(range, onOutput);
  if (node) onOutput(`-----> Node.js ${node.version} (${node.reason})\n`);
  else {
    onOutput(
      "-----> Node.js of the host: the npm registry could not be reached and no Node.js is installed in Petri's runtime cache\n",
    );
  }
  return node;
}

/** A restore that did not happen: the app's cache is not what it seemed (its own builds
 * changed it); the next build without the cache will do. */
function throwIfNotRestored(result: TaskResult, cacheMiB: number): void {
  if (result.exitCode !== RESTORE_FAILED) return;
  const why = result.fullDisks?.includes('/app') ? ': /app is full' : '';
  throw new UserError(
    'build_failed',
    `the build cache could not be restored${why}; deploy with --no-cache to build without it (cache: ${cacheMiB} MiB, buildCacheMiB)`,
  );
}

function throwIfFailed(result: TaskResult, title: string, req: BuildRequest, diskMiB: number): void {
  if (result.timedOut) {
    throw new UserError('build_failed', `build exceeded its time limit of ${formatDuration(req.timeoutMs)}`);
  }
  if (result.oomKilled) {
    throw new UserError('build_failed', `${title} was killed: memory limit ${req.limits.memoryMiB} MiB`);
  }
  if (result.exitCode === 0) return;
  if (result.fullDisks?.includes('/app')) {
    throw new UserError(
      'build_failed',
      `the build ran out of disk: /app is limited to ${diskMiB} MiB (limits.diskMiB); ` +
        'make the build write less, or raise the limit with petri apps limits NAME --disk SIZE',
    );
  }
  if (result.fullDisks?.includes('/cache')) {
    throw new UserError(
      'build_failed',
      `the build cache is full: /cache is limited to ${req.cacheMiB} MiB (buildCacheMiB); ` +
        'deploy with --no-cache to empty it, or ask the operator to raise buildCacheMiB',
    );
  }
  const how = result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`;
  throw new UserError('build_failed', `${title} failed (${how}); see the build output above`);
}

/** Copies the build's /app to its slug directory as root's read-only files, so no instance
 * can change the release it runs from. The build's tasks have all ended and no other sandbox
 * sees its disk, so nothing changes under the copy; cp -R -P copies links as links and never
 * writes through one, into a directory only root has written. */
async function freezeSlug(appDir: string, slugDir: string): Promise<void> {
  const partial = `${slugDir}.partial`;
  await mkdir(path.dirname(slugDir), { recursive: true });
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { mode: 0o755 });
  try {
    // Not --preserve=ownership: every file becomes root's as cp creates it.
    await execOk('cp', ['-R', '-P', '--preserve=mode,timestamps,links', '--', `${appDir}/.`, partial]);
    await execOk('chmod', ['-R', 'u-w,go-w,ug-s', partial]);
    await rename(partial, slugDir);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
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

// The one place store rows become what the runtime driver and the build pipeline are given:
// an app instance, a release command, a one-off run, a build. Each runs as the app's own
// user, with the app's limits, and every command written by a developer ends the same way:
// when it exits, whatever it left behind dies with it (a sandbox's init waits for every
// process, so a background job would otherwise keep the sandbox, and its caller, waiting).
// A one-off's command is the exception, said where it is built.

import type { BuildRequest } from '../build/builder.js';
import { appLimits } from '../domain/apps.js';
import type { PetriConfig } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import { nodeMount, runtimesDir } from '../lib/runtime-cache.js';
import type { SecretBox } from '../lib/secrets.js';
import type { InstanceSpec, InteractiveSpec, SandboxLabels } from '../runtime/driver.js';
import type { App, Deploy, Release } from '../store/schema.js';
import { instanceEnv, type MailEnvContext } from './instance-env.js';

/** What every spec of an app's sandboxes is built from. */
export interface SpecContext {
  config: Pick<PetriConfig, 'uidBase' | 'buildTimeoutMs' | 'buildCacheMiB' | 'runtimesDir'> &
    Partial<Pick<PetriConfig, 'network' | 'mail'>>;
  paths: DataPaths;
  secrets: SecretBox;
  /** The egress proxy, when sandboxes have their own network: http://GATEWAY:PORT. */
  egressProxyUrl?: string;
}

/** App N runs as uid and gid uidBase + N: its own user, owning only its own files. */
export function appUid(config: Pick<PetriConfig, 'uidBase'>, app: Pick<App, 'id'>): number {
  return config.uidBase + app.id;
}

/** A developer's shell command (a process type, a release command), run by sh. When it ends,
 * whatever it left behind (a background job, an orphan of a fork bomb) is killed, and its
 * exit status is the command's: an instance ends, and is restarted, when its command does; a
 * release command that leaves `sleep 1000 &` behind has finished all the same. In a subshell,
 * so an `exit` or `exec` in the command cannot skip the cleanup. */
export function processCommand(command: string): string[] {
  return ['sh', '-c', `(\n${command}\n)\n__petri_status=$?\nkill -KILL -1 2>/dev/null\nexit $__petri_status`];
}

/** An instance of a process type (web.1, worker.2 ...) of a release. */
export function instanceSpec(
  ctx: SpecContext,
  input: {
    app: App;
    release: Release;
    id: string;
    type: string;
    index: number;
    command: string;
  },
): InstanceSpec {
  const { app, release, id, type, index } = input;
  const process = `${type}.${index}`;
  return {
    ...sandbox(ctx, app, release, id),
    command: processCommand(input.command),
    // No PORT: the driver chooses the instance's port and sets it (InstanceStatus.port).
    env: instanceEnv({
      secrets: ctx.secrets,
      app,
      release,
      process,
      proxy: ctx.egressProxyUrl,
      mail: mailOf(ctx),
    }),
    labels: instanceLabels(app, release, process),
  };
}

/** What a driver needs to know whose instance runs under an id (see RuntimeDriver.relabel). */
export function instanceIdentity(
  ctx: SpecContext,
  input: { app: App; release: Release; id: string; type: string; index: number },
): Pick<InstanceSpec, 'id' | 'workDir' | 'labels'> {
  const { app, release, id, type, index } = input;
  return {
    id,
    workDir: ctx.paths.instance(app.id, id),
    labels: instanceLabels(app, release, `${type}.${index}`),
  };
}

function instanceLabels(app: App, release: Release, process: string): SandboxLabels {
  return { app: app.name, kind: 'instance', release: release.id, process };
}

/** The release's `release:` command (migrations), run once before any instance of it starts. */
export function releasePhaseSpec(
  ctx: SpecContext,
  input: { app: App; release: Release; id: string },
): InstanceSpec {
  const { app, release, id } = input;
  return {
    ...sandbox(ctx, app, release, id),
    command: processCommand(release.release_command ?? 'true'),
    // Port 0: nothing routes to a release command.
    env: instanceEnv({
      secrets: ctx.secrets,
      app,
      release,
      process: 'release.1',
      port: 0,
      proxy: ctx.egressProxyUrl,
      mail: mailOf(ctx),
    }),
    labels: { app: app.name, kind: 'release', release: release.id, process: 'release' },
  };
}

/** A one-off command (`petri run`) of the serving release, specified like an instance of it so
 * the command sees what the app's processes see (a port too: Heroku sets PORT for `run`). */
export function oneOffSpec(
  ctx: SpecContext,
  input: {
    app: App;
    release: Release;
    id: string;
    port: number;
    command: string[];
    tty: boolean;
    cols?: number;
    rows?: number;
  },
): InteractiveSpec {
  const { app, release, id } = input;
  return {
    ...sandbox(ctx, app, release, id),
    // As given, not through processCommand: with a terminal the command runs under `script`
    // in the same sandbox, and `kill -1` would take script (and the exit status) with it.
    command: input.command,
    env: instanceEnv({
      secrets: ctx.secrets,
      app,
      release,
      process: 'run',
      port: input.port,
      proxy: ctx.egressProxyUrl,
      mail: mailOf(ctx),
    }),
    labels: { app: app.name, kind: 'run', release: release.id, process: 'run' },
    tty: input.tty,
    cols: input.cols,
    rows: input.rows,
  };
}

/** The mail relay's settings, when the server runs one (SMTP_URL and the rest). */
function mailOf(ctx: SpecContext): MailEnvContext | undefined {
  const { network, mail } = ctx.config;
  return network && mail ? { network, mail } : undefined;
}

/** A deploy's build: its directories, the app's user and limits, the time it may take. */
export function buildRequest(
  ctx: Pick<SpecContext, 'config' | 'paths' | 'egressProxyUrl'>,
  input: { app: App; deploy: Deploy; onOutput: (text: string) => void },
): BuildRequest {
  const { app, deploy } = input;
  const uid = appUid(ctx.config, app);
  return {
    buildId: deploy.id,
    app: app.name,
    uid,
    gid: uid,
    sourceDir: ctx.paths.deploySource(app.id, deploy.id),
    workDir: ctx.paths.buildWork(app.id, deploy.id),
    cacheDir: ctx.paths.buildCache(app.id),
    cacheMiB: ctx.config.buildCacheMiB,
    slugDir: ctx.paths.slug(app.id, deploy.id),
    limits: appLimits(app),
    timeoutMs: ctx.config.buildTimeoutMs,
    onOutput: input.onOutput,
    proxyUrl: ctx.egressProxyUrl,
    noCache: deploy.no_cache === 1,
  };
}

/** What an instance, a release command and a one-off share: the app's user, its release's
 * slug and Node.js (the one it was built on, also after a rollback), its own work directory
 * and the app's limits. */
function sandbox(ctx: SpecContext, app: App, release: Release, id: string) {
  const uid = appUid(ctx.config, app);
  return {
    id,
    app: app.name,
    uid,
    gid: uid,
    slugDir: release.slug_dir,
    workDir: ctx.paths.instance(app.id, id),
    limits: appLimits(app),
    ...(release.node_version && {
      readOnlyMounts: nodeMount(runtimesDir(ctx.config, ctx.paths.root), release.node_version),
    }),
  };
}

// One-off commands (`petri run`): the store's view of an app (its serving release, limits,
// uid) translated into an InteractiveSpec for the driver, specified like an instance of the
// same release, so the command sees what the app's processes see.
import { appLimits } from '../domain/apps.js';
import { newId } from '../domain/ids.js';
import { servingRelease } from '../domain/releases.js';
import type { PetriConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import type { DataPaths } from '../lib/paths.js';
import { freePort } from '../lib/ports.js';
import type { SecretBox } from '../lib/secrets.js';
import type { InteractiveProcess, RuntimeDriver } from '../runtime/driver.js';
import { instanceEnv } from '../specs/instance-env.js';
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';

export interface OneOffRunnerDeps {
  db: Store;
  driver: RuntimeDriver;
  paths: DataPaths;
  config: PetriConfig;
  secrets: SecretBox;
  /** The egress proxy, when sandboxes have their own network. */
  egressProxyUrl?: string;
}

export interface OneOffRequest {
  command: string[];
  tty: boolean;
  cols?: number;
  rows?: number;
}

/** What a terminal is assumed to be when the client does not say: what most emulators are. */
const DEFAULT_TERM = 'xterm-256color';

export function createOneOffRunner(
  deps: OneOffRunnerDeps,
): (app: App, request: OneOffRequest) => Promise<InteractiveProcess> {
  return async (app, request) => {
    const { db, driver, paths, config } = deps;
    const release = await servingRelease(db, app);
    if (!release) {
      throw new UserError(
        'conflict',
        `app '${app.name}' has no release yet; deploy it first with 'petri deploy'`,
      );
    }
    // run-<app>-<time><random>: unique, and it says what it is in a cgroup or directory listing.
    const id = newId(`run-${app.name}-`).toLowerCase();
    const uid = config.uidBase + app.id;
    // Like an instance: a one-off may start a server (Heroku sets PORT for `run` too).
    const env = instanceEnv({
      secrets: deps.secrets,
      app,
      release,
      process: 'run',
      port: await freePort(),
      proxy: deps.egressProxyUrl,
    });
    if (request.tty && env.TERM === undefined) env.TERM = DEFAULT_TERM;
    return driver.runInteractive({
      id,
      app: app.name,
      uid,
      gid: uid,
      slugDir: release.slug_dir,
      workDir: paths.instance(app.id, id),
      command: request.command,
      env,
      limits: appLimits(app),
      labels: { app: app.name, kind: 'run', release: release.id, process: 'run' },
      tty: request.tty,
      cols: request.cols,
      rows: request.rows,
    });
  };
}

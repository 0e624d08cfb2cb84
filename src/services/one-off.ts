// One-off commands (`petri run`): the store's view of an app (its serving release, limits,
// uid) translated into an InteractiveSpec for the driver, specified like an instance of the
// same release, so the command sees what the app's processes see.
import { newId } from '../domain/ids.js';
import { servingRelease } from '../domain/releases.js';
import type { PetriConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import type { DataPaths } from '../lib/paths.js';
import { freePort } from '../lib/ports.js';
import type { SecretBox } from '../lib/secrets.js';
import type { InteractiveProcess, RuntimeDriver } from '../runtime/driver.js';
import { oneOffSpec } from '../specs/sandbox-specs.js';
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';
import { OneOffSlots } from './one-off-slots.js';

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
  const slots = new OneOffSlots(deps.config.ceilings);
  return async (app, request) => {
    const release = await servingRelease(deps.db, app);
    if (!release) {
      throw new UserError(
        'conflict',
        `app '${app.name}' has no release yet; deploy it first with 'petri deploy'`,
      );
    }
    const giveBack = slots.take(app);
    try {
      // run-<app>-<time><random>: unique, and it says what it is in a cgroup or directory listing.
      const id = newId(`run-${app.name}-`).toLowerCase();
      const spec = oneOffSpec(deps, { app, release, id, port: await freePort(), ...request });
      if (request.tty && spec.env.TERM === undefined) spec.env.TERM = DEFAULT_TERM;
      const proc = await deps.driver.runInteractive(spec);
      void proc.wait().then(giveBack, giveBack);
      return proc;
    } catch (err) {
      giveBack();
      throw err;
    }
  };
}

// What the route modules need from the rest of the control plane, handed in by server.ts.
import type { PetriConfig } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { Store } from '../store/db.js';

export interface ApiContext {
  db: Store;
  config: PetriConfig;
  paths: DataPaths;
  logs: LogStore;
  deployLogs: DeployLogs;
  /** Desired state changed: wake the reconcilers now rather than at their next tick. */
  nudge: () => void;
}

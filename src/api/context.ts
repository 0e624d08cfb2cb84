// What the route modules need from the rest of the control plane, handed in by server.ts.
// Shapes that belong to the runtime are restated here structurally, so the API depends on
// no driver (the import arrows: api → domain → store).
import type { Readable, Writable } from 'node:stream';
import type { PetriConfig } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { SecretBox } from '../lib/secrets.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';

export interface OneOffRequest {
  /** argv; a single string is run with `sh -c`. */
  command: string[];
  tty: boolean;
  cols?: number;
  rows?: number;
}

/** A one-off command running in the app's sandbox with its current release and config. */
export interface OneOffProcess {
  stdin: Writable;
  stdout: Readable;
  /** Empty when tty is true (a terminal merges both streams). */
  stderr: Readable;
  resize(cols: number, rows: number): void;
  signal(signal: NodeJS.Signals): void;
  /** Resolves when it ended; its sandbox and files are gone by then. */
  wait(): Promise<{ exitCode: number | null; signal: string | null }>;
}

export interface ApiContext {
  db: Store;
  config: PetriConfig;
  secrets: SecretBox;
  paths: DataPaths;
  logs: LogStore;
  deployLogs: DeployLogs;
  /** Desired state changed: wake the reconcilers now rather than at their next tick. */
  nudge: () => void;
  /** Writes the egress proxy's counted attempts to the store now (before a read of them). */
  flushEgress: () => Promise<void>;
  /** Memory and CPU of running instances, from the runtime. */
  usage: (instanceIds: string[]) => Promise<Map<string, { memoryBytes?: number; cpuSeconds?: number }>>;
  /** Starts a one-off command for `petri run` (throws a UserError when the app has no release). */
  runOneOff: (app: App, request: OneOffRequest) => Promise<OneOffProcess>;
}

// The seam between the reconciler and whatever runs app processes. The reconciler
// translates store rows into these plain specs; a Kubernetes driver later implements the
// same interface and nothing above it changes.

import type { Limits } from '../lib/limits.js';

export type { Limits };

/** A long-running app instance (web.1, worker.2 ...). It outlives the control plane. */
export interface InstanceSpec {
  /** Unique and stable for the life of the instance; safe as a file and cgroup name ([a-z0-9.-]). */
  id: string;
  app: string;
  uid: number;
  gid: number;
  /** Read-only build artifact on the host. */
  slugDir: string;
  /** The instance's own host directory; the driver makes `workDir/app` (a writable copy of
   * the slug, seen as /app inside) and anything else it needs in here. */
  workDir: string;
  /** argv run inside the sandbox with /app as working directory. */
  command: string[];
  env: Record<string, string>;
  limits: Limits;
  /** Host file that the instance's stdout and stderr are appended to. */
  outputFile: string;
}

export interface InstanceStatus {
  id: string;
  running: boolean;
  /** Known once it stopped; undefined while running or when nobody saw the exit. */
  exitCode?: number | null;
  signal?: string | null;
  /** True when the memory limit killed it. */
  oomKilled?: boolean;
  memoryBytes?: number;
  cpuSeconds?: number;
}

/** A command run to completion inside the same sandbox (a build, a one-off). */
export interface TaskSpec {
  id: string;
  app: string;
  uid: number;
  gid: number;
  /** Host directory mounted read-write at /app. */
  appDir: string;
  /** Extra host directories mounted read-write (host path -> sandbox path), e.g. caches. */
  writableMounts?: Record<string, string>;
  command: string[];
  env: Record<string, string>;
  limits: Limits;
  timeoutMs: number;
  onOutput: (chunk: string) => void;
}

export interface TaskResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  oomKilled: boolean;
}

export interface RuntimeDriver {
  /** Starts an instance and returns once its process exists (not once it is healthy). */
  start(spec: InstanceSpec): Promise<InstanceStatus>;
  /** Every instance this driver runs, from the system itself (for adoption after a restart). */
  list(): Promise<InstanceStatus[]>;
  status(id: string): Promise<InstanceStatus>;
  /** SIGTERM, then SIGKILL after graceMs; resolves when nothing of it runs; removes its
   * cgroup. Its workDir is left for removeFiles. Idempotent. */
  stop(id: string, graceMs: number): Promise<void>;
  /** Removes what start() made on disk for the instance. Idempotent. */
  removeFiles(spec: Pick<InstanceSpec, 'id' | 'workDir'>): Promise<void>;
  runTask(spec: TaskSpec): Promise<TaskResult>;
}

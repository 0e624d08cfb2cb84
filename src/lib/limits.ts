// Resource limits of an app's instances, shared by the config, the model and the drivers.
export interface Limits {
  memoryMiB: number;
  /** CPU cores, fractional allowed (0.5 = half a core). */
  cpus: number;
  pids: number;
  /** Open files per process (RLIMIT_NOFILE, soft = hard: the app cannot raise it).
   * DEFAULT_NOFILE when absent. */
  nofile?: number;
  /** Disk the app may fill, in MiB: its writable /app (slug included, since /app starts as
   * a copy of it) and, separately, its /tmp. DEFAULT_DISK_MIB when absent. Builds keep their
   * /app as given (the builder owns that directory); only their /tmp is limited. */
  diskMiB?: number;
}

export const DEFAULT_NOFILE = 1024;
export const DEFAULT_DISK_MIB = 1024;

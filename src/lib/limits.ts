// Resource limits of an app's instances, shared by the config, the model and the drivers.
export interface Limits {
  memoryMiB: number;
  /** CPU cores, fractional allowed (0.5 = half a core). */
  cpus: number;
  pids: number;
}

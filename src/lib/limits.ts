// Resource limits of an app's instances, shared by the config, the model and the drivers,
// and their ceilings: the per-app maximum (default: what the host has) and the lower one
// members may set themselves.
import { existsSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

/** The four limits an app sets, all present: what ceilings are made of. */
export type LimitCeiling = Required<Omit<Limits, 'nofile'>>;

/** What a member may give an app without an admin (issue 11: members set their own limits). */
export const DEFAULT_MEMBER_MAX_LIMITS: LimitCeiling = {
  memoryMiB: 2048,
  cpus: 2,
  pids: 1024,
  diskMiB: 10_240,
};

/** A pids ceiling that leaves room for the host and the other apps: a web app needs tens. */
export const DEFAULT_MAX_PIDS = 4096;

export interface HostFacts {
  totalMemoryBytes: number;
  cpus: number;
  /** Size of the filesystem holding the data dir (where /app disks live). */
  diskBytes: number;
}

/** This host's memory, CPUs and the size of the filesystem the data dir is (or will be) on. */
export function readHostFacts(dataDir: string): HostFacts {
  let dir = path.resolve(dataDir);
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const fs = statfsSync(dir);
  return {
    totalMemoryBytes: os.totalmem(),
    cpus: os.availableParallelism(),
    diskBytes: fs.blocks * fs.bsize,
  };
}

/** The default per-app maximum: no app gets more than the host has. */
export function hostMaxLimits(host: HostFacts): LimitCeiling {
  const MiB = 1024 * 1024;
  return {
    memoryMiB: Math.floor(host.totalMemoryBytes / MiB),
    cpus: host.cpus,
    pids: DEFAULT_MAX_PIDS,
    diskMiB: Math.floor(host.diskBytes / MiB),
  };
}

const UNITS: Record<keyof LimitCeiling, (n: number) => string> = {
  memoryMiB: (n) => `${n} MiB`,
  cpus: (n) => `${n} CPU${n === 1 ? '' : 's'}`,
  pids: (n) => `${n} processes`,
  diskMiB: (n) => `${n} MiB`,
};

/** A limit's value as people read it: "2048 MiB", "2 CPUs". */
export function describeLimit(key: keyof LimitCeiling, value: number): string {
  return UNITS[key](value);
}

/** 512 MiB, 1 GiB, 7.5 GiB: memory as people read it (the server's messages and the CLI's). */
export function formatMiB(mib: number): string {
  if (mib < 1024) return `${mib} MiB`;
  const gib = mib / 1024;
  // Number() drops the zeros toFixed pads with: 7.50 reads 7.5, 1.999 reads 2.
  return `${Number(gib.toFixed(gib < 10 ? 2 : 1))} GiB`;
}

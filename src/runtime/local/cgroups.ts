// Control groups for instances and tasks: limits on memory, CPU and pids, the list of
// processes (a cgroup is how an instance is found again after a restart), usage and OOM
// counters. cgroup v2 and the v1 hierarchies sit behind one small internal type.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { access, readdir, readFile, realpath, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { until } from '../../lib/until.js';
import type { Limits } from '../driver.js';

export interface CgroupUsage {
  memoryBytes?: number;
  cpuSeconds?: number;
  oomKilled: boolean;
  /** A fork or thread was refused at the pids limit (pids.events `max`). */
  pidsLimitHit?: boolean;
}

/** One cgroup per instance or task, named `<parent>/<name>` in every hierarchy. */
export interface Cgroups {
  readonly version: 1 | 2;
  /** Creates the cgroup (idempotent) and writes its limits. */
  create(name: string, limits: Limits): Promise<void>;
  /** The cgroup.procs files a process writes its own pid to, to join the cgroup. */
  procsFiles(name: string): string[];
  exists(name: string): Promise<boolean>;
  /** Pids in the cgroup; empty when it does not exist. */
  pids(name: string): Promise<number[]>;
  /** Names of the cgroups under the parent. */
  names(): Promise<string[]>;
  usage(name: string): Promise<CgroupUsage>;
  /** The file the kernel changes (an inotify event) when a fork is refused at the pids limit. */
  pidsEventsFile(name: string): string;
  /** Removes an empty cgroup; retries briefly while the kernel finishes emptying it. */
  remove(name: string): Promise<void>;
  /** Removes the parent cgroup itself when nothing is left under it (platform shutdown). */
  removeParent(): Promise<void>;
}

export interface CgroupOptions {
  /** Where cgroupfs is mounted; a temp dir in unit tests. */
  root: string;
  /** Parent cgroup of everything this driver makes, e.g. 'petri'. */
  parent: string;
}

export async function detectCgroups(opts: CgroupOptions): Promise<Cgroups> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(opts.parent) || opts.parent.split('/').includes('..')) {
    throw new Error(`cgroup parent must be a relative path without '..', got '${opts.parent}'`);
  }
  if (await fileExists(path.join(opts.root, 'cgroup.controllers'))) return new CgroupsV2(opts);
  return CgroupsV1.open(opts);
}

/* CREATE_SYNC: create() makes a cgroup and writes its limits with synchronous calls. They are
 * a dozen mkdirs and small writes to cgroupfs that the kernel answers in microseconds; as
 * promises each one waited its turn in libuv's four-thread pool behind the disk and network
 * work of the same start, and a woken app's visitor waited for them (20 ms of a wake). */

/** [file, value] pairs in the order they must be written. */
export type LimitFiles = Array<[string, string]>;

const CPU_PERIOD_US = 100_000;

function checkLimits(limits: Limits): void {
  for (const key of ['memoryMiB', 'cpus', 'pids'] as const) {
    const value = limits[key];
    if (!(Number.isFinite(value) && value > 0)) throw new Error(`limit ${key} must be > 0, got ${value}`);
  }
}

function cpuQuotaUs(cpus: number): number {
  // The kernel refuses quotas under 1 ms.
  return Math.max(1000, Math.round(cpus * CPU_PERIOD_US));
}

function memoryBytes(limits: Limits): string {
  return String(Math.round(limits.memoryMiB * 1024 * 1024));
}

export function v2LimitFiles(limits: Limits): LimitFiles {
  checkLimits(limits);
  return [
    ['memory.max', memoryBytes(limits)],
    ['cpu.max', `${cpuQuotaUs(limits.cpus)} ${CPU_PERIOD_US}`],
    ['pids.max', String(Math.floor(limits.pids))],
  ];
}

/** Per v1 controller. memsw (memory+swap) must come after the memory limit (it may never be
 * lower) and is set equal to it, so the limit cannot be dodged by swapping. */
export function v1LimitFiles(limits: Limits): Record<'memory' | 'cpu' | 'pids', LimitFiles> {
  checkLimits(limits);
  return {
    memory: [
      ['memory.limit_in_bytes', memoryBytes(limits)],
      ['memory.memsw.limit_in_bytes', memoryBytes(limits)],
    ],
    cpu: [
      ['cpu.cfs_period_us', String(CPU_PERIOD_US)],
      ['cpu.cfs_quota_us', String(cpuQuotaUs(limits.cpus))],
    ],
    pids: [['pids.max', String(Math.floor(limits.pids))]],
  };
}

class CgroupsV2 implements Cgroups {
  readonly version = 2;
  private readonly parentDir: string;

  constructor(private readonly opts: CgroupOptions) {
    this.parentDir = path.join(opts.root, opts.parent);
  }

  async create(name: string, limits: Limits): Promise<void> {
    const files = v2LimitFiles(limits);
    // Synchronous (see CREATE_SYNC): a handful of writes the kernel answers at once.
    // Controllers reach a cgroup only when every ancestor delegates them.
    let dir = this.opts.root;
    for (const part of this.opts.parent.split('/')) {
      writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+memory +cpu +pids');
      dir = path.join(dir, part);
      mkdirSync(dir, { recursive: true });
    }
    writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+memory +cpu +pids');
    const own = this.dir(name);
    mkdirSync(own, { recursive: true });
    for (const [file, value] of files) writeFileSync(path.join(own, file), value);
    // No swap, like memsw on v1; absent when the kernel has no swap accounting.
    const swap = path.join(own, 'memory.swap.max');
    if (existsSync(swap)) writeFileSync(swap, '0');
  }

  procsFiles(name: string): string[] {
    return [path.join(this.dir(name), 'cgroup.procs')];
  }

  exists(name: string): Promise<boolean> {
    return fileExists(this.dir(name));
  }

  pids(name: string): Promise<number[]> {
    return readPids(path.join(this.dir(name), 'cgroup.procs'));
  }

  names(): Promise<string[]> {
    return childDirs(this.parentDir);
  }

  async usage(name: string): Promise<CgroupUsage> {
    const dir = this.dir(name);
    const current = await readNumber(path.join(dir, 'memory.current'));
    const usec = keyed(await readText(path.join(dir, 'cpu.stat')), 'usage_usec');
    const oomKills = keyed(await readText(path.join(dir, 'memory.events')), 'oom_kill');
    return {
      memoryBytes: current,
      cpuSeconds: usec === undefined ? undefined : usec / 1e6,
      oomKilled: (oomKills ?? 0) > 0,
      ...(await pidsMaxHit(dir)),
    };
  }

  pidsEventsFile(name: string): string {
    return path.join(this.dir(name), 'pids.events');
  }

  remove(name: string): Promise<void> {
    return removeDirs([this.dir(name)]);
  }

  removeParent(): Promise<void> {
    return removeIfEmpty([this.parentDir]);
  }

  private dir(name: string): string {
    return path.join(this.parentDir, name);
  }
}

/** v1: one hierarchy per controller (some co-mounted, e.g. cpu,cpuacct). */
class CgroupsV1 implements Cgroups {
  readonly version = 1;

  private constructor(
    private readonly opts: CgroupOptions,
    /** Mount dir of each controller; co-mounted controllers share one. */
    private readonly mounts: { memory: string; cpu: string; pids: string; cpuacct?: string },
  ) {}

  static async open(opts: CgroupOptions): Promise<CgroupsV1> {
    const mount = async (controller: string): Promise<string | undefined> => {
      const dir = path.join(opts.root, controller);
      return (await fileExists(dir)) ? realpath(dir) : undefined;
    };
    const [memory, cpu, pids, cpuacct] = await Promise.all(['memory', 'cpu', 'pids', 'cpuacct'].map(mount));
    if (!memory || !cpu || !pids) {
      throw new Error(`cgroup v1 needs the memory, cpu and pids controllers mounted under ${opts.root}`);
    }
    return new CgroupsV1(opts, { memory, cpu, pids, cpuacct });
  }

  async create(name: string, limits: Limits): Promise<void> {
    const files = v1LimitFiles(limits);
    // Synchronous (see CREATE_SYNC).
    for (const dir of this.dirs(name)) mkdirSync(dir, { recursive: true });
    for (const controller of ['memory', 'cpu', 'pids'] as const) {
      const dir = this.dir(this.mounts[controller], name);
      for (const [file, value] of files[controller]) {
        // memsw exists only with swap accounting on; without it there is nothing to limit.
        if (file === 'memory.memsw.limit_in_bytes' && !existsSync(path.join(dir, file))) continue;
        writeFileSync(path.join(dir, file), value);
      }
    }
  }

  procsFiles(name: string): string[] {
    return this.dirs(name).map((dir) => path.join(dir, 'cgroup.procs'));
  }

  exists(name: string): Promise<boolean> {
    return fileExists(this.dir(this.mounts.pids, name));
  }

  pids(name: string): Promise<number[]> {
    // The pids hierarchy: every process of the instance is in it, whatever else failed.
    return readPids(path.join(this.dir(this.mounts.pids, name), 'cgroup.procs'));
  }

  names(): Promise<string[]> {
    return childDirs(path.join(this.mounts.pids, this.opts.parent));
  }

  async usage(name: string): Promise<CgroupUsage> {
    const memory = this.dir(this.mounts.memory, name);
    const current = await readNumber(path.join(memory, 'memory.usage_in_bytes'));
    const ns = this.mounts.cpuacct
      ? await readNumber(path.join(this.dir(this.mounts.cpuacct, name), 'cpuacct.usage'))
      : undefined;
    // oom_kill (kernel 4.13+) counts kills; failcnt, the fallback for older kernels, counts
    // every time usage hit the limit, so it can report an OOM where reclaim sufficed.
    const oomControl = await readText(path.join(memory, 'memory.oom_control'));
    const kills = keyed(oomControl, 'oom_kill') ?? (await readNumber(path.join(memory, 'memory.failcnt')));
    return {
      memoryBytes: current,
      cpuSeconds: ns === undefined ? undefined : ns / 1e9,
      oomKilled: (kills ?? 0) > 0,
      // v1 has no pids.failcnt; it has pids.events, as v2 does.
      ...(await pidsMaxHit(this.dir(this.mounts.pids, name))),
    };
  }

  pidsEventsFile(name: string): string {
    return path.join(this.dir(this.mounts.pids, name), 'pids.events');
  }

  remove(name: string): Promise<void> {
    return removeDirs(this.dirs(name));
  }

  removeParent(): Promise<void> {
    return removeIfEmpty(this.dirs(''));
  }

  private dirs(name: string): string[] {
    const mounts = [this.mounts.memory, this.mounts.cpu, this.mounts.pids, this.mounts.cpuacct];
    return [...new Set(mounts.filter((m): m is string => m !== undefined))].map((m) => this.dir(m, name));
  }

  private dir(mount: string, name: string): string {
    return path.join(mount, this.opts.parent, name);
  }
}

/** pids.events counts, under `max`, the forks refused because the cgroup was at pids.max;
 * nothing when the kernel has no such file. */
async function pidsMaxHit(dir: string): Promise<Pick<CgroupUsage, 'pidsLimitHit'>> {
  const max = keyed(await readText(path.join(dir, 'pids.events')), 'max');
  return max === undefined ? {} : { pidsLimitHit: max > 0 };
}

async function removeDirs(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    // rmdir answers EBUSY for a moment after the last process exited, until the kernel has
    // finished tearing the processes down.
    await until(
      async () => {
        try {
          await rmdir(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        return true;
      },
      { timeout: 5000, interval: 20, message: `cgroup ${dir} to be removable` },
    );
  }
}

/** rmdir of each dir that has no cgroup left under it; one that still has is kept. */
async function removeIfEmpty(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    try {
      await rmdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EBUSY' && code !== 'ENOTEMPTY') throw err;
    }
  }
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function readNumber(file: string): Promise<number | undefined> {
  const text = await readText(file);
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : undefined;
}

async function readPids(file: string): Promise<number[]> {
  const text = await readText(file);
  return (text ?? '')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
}

/** The value of `key N` in a flat-keyed cgroup file (cpu.stat, memory.events, oom_control). */
function keyed(text: string | undefined, key: string): number | undefined {
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined) return Number(v);
  }
  return undefined;
}

async function childDirs(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

// The local RuntimeDriver: each instance and task is a bubblewrap sandbox in its own
// cgroups. The cgroup is the instance's identity: a restarted control plane finds its
// instances by listing the cgroups under the parent, so nothing about them lives only in memory.
//
// An instance's first process is a tiny root shell (ENTER_AND_RECORD) that joins the
// cgroups, runs the sandbox in the foreground and writes its exit status to
// stateDir/instances/<id>.exit. Trade-off: one idle `sh` per instance (a few hundred KiB,
// one pid of the pids limit, charged to the instance's memory) buys an exit code that
// survives a restart of the control plane; without it an adopted instance could only be
// seen to vanish. If the shim itself is SIGKILLed (stop() after the grace period) no exit
// code is recorded, which is what "nobody saw the exit" means in InstanceStatus.
//
// With the `network` option every instance, task and one-off also gets a named network
// namespace on the Petri bridge (network.ts). It is pinned under /run/netns, so it outlives
// the control plane like the instance, and removed by stop(), removeFiles() and task end.
//
// An instance's stdout and stderr go to workDir/output.log (a file, not a pipe: the instance
// must not get SIGPIPE when the control plane dies); an OutputTailer passes its lines on to
// the OutputSink the driver was given. The labels of each instance are kept beside its exit
// file, so a restarted driver knows whose output it is and picks the tailing up again.
//
// Every sandbox gets the seccomp filter (seccomp.ts), an open-files rlimit and a /tmp of
// limits.diskMiB; instances and one-offs also get their /app on a loop-mounted image of that
// size (app-disk.ts), which stays mounted while the control plane restarts. Builds run on
// such disks too: their /app, and the app's build cache (openBuildDisks).
//
// Over 500 lines on purpose: start, adoption, stop and the task and one-off runs share the
// cgroup, shim, exit-file and netns bookkeeping above; split apart, each half would have to
// re-learn that state. The pieces that stand alone already live beside it (app-disk.ts,
// app-dir.ts, cgroups.ts, network.ts, sandbox-args.ts, seccomp.ts, interactive-args.ts).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, type FSWatcher, mkdirSync, readFileSync, watch } from 'node:fs';
import { mkdir, open, readFile, readlink, rename, rm, rmdir, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { UserError } from '../../lib/errors.js';
import { exec, execOk } from '../../lib/exec.js';
import { freePort } from '../../lib/ports.js';
import { processStartTime } from '../../lib/process.js';
import { until } from '../../lib/until.js';
import type {
  BuildDisks,
  BuildDisksSpec,
  InstanceSpec,
  InstanceStatus,
  InteractiveProcess,
  InteractiveSpec,
  OutputSink,
  RuntimeDriver,
  SandboxLabels,
  TaskResult,
  TaskSpec,
} from '../driver.js';
import { type AppDirMethod, makeAppDir } from './app-dir.js';
import {
  appImagePath,
  CP,
  cloneAppDisk,
  closeCacheDisk,
  createAppDisk,
  openCacheDisk,
  removeAppDisk,
  unmountAppDisk,
} from './app-disk.js';
import { type Cgroups, type CgroupUsage, detectCgroups } from './cgroups.js';
import { interactiveCommand, RUN_PREFIX, resizeArgv, terminalSize } from './interactive-args.js';
import { SandboxNetwork } from './network.js';
import { type NetworkOptions, netnsPath, type SandboxKind } from './network-plan.js';
import { OutputTailer } from './output-tailer.js';
import {
  assertValidId,
  ENTER_AND_EXEC,
  ENTER_AND_RECORD,
  enterArgv,
  isValidId,
  launchLimits,
  type SandboxLaunch,
  sandboxLaunch,
  seccompArch,
} from './sandbox-args.js';
import type { SeccompArch } from './seccomp.js';
import { SpareDisks } from './spare-disks.js';

/** pino's shape, so the server can hand its logger in. */
export interface DriverLogger {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

export interface LocalDriverOptions {
  /** The driver's own files (exit codes, shim pids); root-only is fine, sandboxes never see it. */
  stateDir: string;
  /** Parent cgroup of every instance and task, e.g. 'petri'. */
  cgroupParent: string;
  /** Where cgroupfs is mounted. */
  cgroupRoot?: string;
  logger?: DriverLogger;
  /** Each sandbox in its own network namespace on this bridge, reaching only `hostPorts`
   * on the gateway; absent: sandboxes share the host's network (as in development). */
  network?: NetworkOptions;
  /** Where instances' output goes; absent: it stays in their output files (--stop-all). */
  output?: OutputSink;
  /** Parts of instances' sandboxes made ahead, so a start (a wake) only takes them: network
   * namespaces (any instance takes one) and app disks (a clone of the template of an
   * instance that stopped, for the next start of its release). Absent: none. */
  ahead?: { namespaces: number; disks: number };
}

/** What the driver keeps of an instance beside its exit file: enough to tail its output,
 * and the port it chose for it (absent in records an earlier Petri wrote, and in those
 * relabel() writes: the store has their port). */
interface InstanceRecord {
  labels: SandboxLabels;
  workDir: string;
  port?: number;
  /** The template image its /app was cloned from: a spare of it is made when it stops. */
  template?: string;
}

/** The shell and setpriv run as root before the sandbox exists: they get a fixed, minimal
 * environment, never the app's (an LD_PRELOAD config var would otherwise run as root). */
const LAUNCH_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
/** Task cgroups live beside instance cgroups; '_' is outside the id charset, so list() can
 * never mistake one for an instance. */
const TASK_PREFIX = 'task_';
const INSTANCE_NAME = /^[a-z0-9][a-z0-9.-]*$/;
/** How long SIGKILL may take to empty a cgroup before we report failure. */
const KILL_TIMEOUT_MS = 10_000;
/** A disk with less room than this (or no inode) left after a failed task is full. */
const FULL_DISK_BYTES = 512 * 1024;
/** A write larger than what is left fails whole, leaving that much free: when the task said
 * ENOSPC, a disk with less than this share of its size free is the one that ran out. */
const NEARLY_FULL_SHARE = 0.1;
const NO_SPACE = /ENOSPC|No space left on device/;
const TOOL_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

/** How often the pids.events of running instances are read (onLimitHit). */
const LIMIT_POLL_MS = 2000;

export class LocalDriver implements RuntimeDriver {
  private cgroupsReady: Promise<Cgroups> | undefined;
  private readonly instancesDir: string;
  private readonly network: SandboxNetwork | undefined;
  /** Templates being built, so two starts of one release build it once. */
  private readonly templates = new Map<string, Promise<{ file: string; method: AppDirMethod }>>();
  private readonly seccompArch: SeccompArch;
  private readonly tailer: OutputTailer | undefined;
  private readonly spareDisks: SpareDisks;
  /** Tells of exit files being written (onExit). */
  private exitWatcher: FSWatcher | undefined;
  /** onLimitHit's listener, and the pids.events file of each running instance that has not
   * hit its limit (kept in step with what list() finds). Told once each: a fork bomb fails
   * forks without end, and a tenant must not be able to keep the reconciler busy for
   * everyone; once hit, an instance's status says so and it is not read again. */
  private limitListener: ((id: string) => void) | undefined;
  private readonly limitFiles = new Map<string, string>();
  private limitPoll: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LocalDriverOptions) {
    if (!path.isAbsolute(opts.stateDir)) throw new Error(`stateDir must be absolute, got '${opts.stateDir}'`);
    // Refused here, on a host with no filter, rather than running sandboxes without one.
    this.seccompArch = seccompArch(process.arch);
    this.instancesDir = path.join(opts.stateDir, 'instances');
    // Validated here: a bad subnet or bridge name is a configuration error at start-up.
    this.network = opts.network && new SandboxNetwork(opts.network, opts.stateDir, opts.ahead?.namespaces);
    this.spareDisks = new SpareDisks(path.join(opts.stateDir, 'app-spares'), opts.ahead?.disks ?? 0, (err) =>
      opts.logger?.warn({ err }, 'making an app disk ahead failed'),
    );
    this.tailer =
      opts.output &&
      new OutputTailer(opts.output, {
        onError: (err, file) => opts.logger?.warn({ err, file }, 'reading app output failed'),
      });
  }

  networkGateway(): string | undefined {
    return this.network?.gateway;
  }

  /** Sets up the bridge and firewall now (before the egress proxy listens on the gateway). */
  async prepare(): Promise<void> {
    await this.network?.ensure();
  }

  /** The labels of the sandbox at this address: an instance, a task (build) or a one-off. */
  async sandboxAt(address: string): Promise<SandboxLabels | undefined> {
    return (await this.network?.at(address))?.labels;
  }

  async flushOutput(): Promise<void> {
    this.tailer?.flushNow();
  }

  /** Every instance's shim writes `<id>.exit` in one root-only folder as the sandbox ends:
   * one inotify watch on that folder hears every exit, of adopted instances too. */
  onExit(listener: (id: string) => void): () => void {
    mkdirSync(this.instancesDir, { recursive: true, mode: 0o700 });
    const watcher = watch(this.instancesDir, { persistent: false }, (_event, name) => {
      if (typeof name === 'string' && name.endsWith('.exit')) listener(name.slice(0, -'.exit'.length));
    });
    // A failed watch only means exits are seen at the reconciler's next look.
    watcher.on('error', () => watcher.close());
    this.exitWatcher = watcher;
    return () => watcher.close();
  }

  /** Read every LIMIT_POLL_MS while instances run. Cgroup v2 also tells of a change of
   * pids.events through inotify, v1 does not (this test host runs v1); reading one small
   * file per running instance every 2 s costs next to nothing. */
  onLimitHit(listener: (id: string) => void): () => void {
    this.limitListener = listener;
    return () => {
      // Stopped for good: a later list() must not start the poll again.
      this.limitListener = undefined;
      this.stopLimitPoll();
    };
  }

  /** Follows the running instances among `statuses` that have not hit their limit (one
   * that has is in its status, and the pass that listed it notes it). */
  private watchLimits(cg: Cgroups, statuses: InstanceStatus[]): void {
    if (this.limitListener === undefined) return;
    const watched = statuses.filter((s) => s.running && s.limitHit !== 'pids').map((s) => s.id);
    for (const id of this.limitFiles.keys()) if (!watched.includes(id)) this.limitFiles.delete(id);
    for (const id of watched) if (!this.limitFiles.has(id)) this.limitFiles.set(id, cg.pidsEventsFile(id));
    if (this.limitFiles.size > 0 && this.limitPoll === undefined) {
      this.limitPoll = setInterval(() => void this.pollLimits(), LIMIT_POLL_MS);
      this.limitPoll.unref();
    }
  }

  private async pollLimits(): Promise<void> {
    for (const [id, file] of this.limitFiles) {
      const max = Number(/^max ([0-9]+)$/m.exec((await readOptional(file)) ?? '')?.[1] ?? 0);
      if (max === 0 || !this.limitFiles.has(id)) continue;
      this.limitFiles.delete(id);
      this.limitListener?.(id);
    }
    if (this.limitFiles.size === 0) this.stopLimitPoll();
  }

  private stopLimitPoll(): void {
    clearInterval(this.limitPoll);
    this.limitPoll = undefined;
    this.limitFiles.clear();
  }

  async close(): Promise<void> {
    this.exitWatcher?.close();
    this.stopLimitPoll();
    this.tailer?.close();
    this.network?.close();
    this.spareDisks.close();
  }

  /** The disks and namespaces made ahead, the bridge, its firewall and the parent cgroup
   * (every instance must be stopped). */
  async teardown(): Promise<void> {
    await this.spareDisks.removeAll();
    await this.removeNetwork();
    await this.removeCgroupParent();
  }

  /** Removes the bridge and firewall table (platform shutdown, after every sandbox stopped). */
  async removeNetwork(): Promise<void> {
    await this.network?.remove();
  }

  /** Removes the parent cgroup once no sandbox is left in it (platform shutdown), with the
   * empty cgroups of sandboxes nobody stopped (a build cut off by a crash of the control
   * plane leaves its task's). */
  async removeCgroupParent(): Promise<void> {
    const cg = await this.cgroups();
    for (const name of await cg.names()) {
      if ((await cg.pids(name)).length === 0) await cg.remove(name).catch(() => {});
    }
    await cg.removeParent();
  }

  async start(spec: InstanceSpec): Promise<InstanceStatus> {
    const started = Date.now();
    assertValidId(spec.id);
    for (const p of [spec.slugDir, spec.workDir]) {
      if (!path.isAbsolute(p)) throw new Error(`instance paths must be absolute, got '${p}'`);
    }
    const { diskMiB } = launchLimits(spec.limits);
    const cg = await this.cgroups();
    if ((await cg.pids(spec.id)).length > 0) return this.status(spec.id); // already started
    // A free host port, as sandboxes may share the host's loopback (no network option); with
    // an address of their own one would do, but a free one is right in both cases.
    const record: InstanceRecord = {
      labels: spec.labels,
      workDir: spec.workDir,
      port: await freePort(),
      template: this.templateFile(spec, diskMiB),
    };
    const outputFile = outputFileOf(record);
    if (await cg.exists(spec.id)) await cg.remove(spec.id); // an earlier run's corpse
    await mkdir(this.instancesDir, { recursive: true, mode: 0o700 });
    await this.forgetExit(spec.id);
    await writeFile(this.recordFile(spec.id), `${JSON.stringify(record)}\n`, { mode: 0o600 });

    // A fresh disk every start, also over an earlier run's (mounted or, after a reboot, not).
    // The disk, the cgroup and the network namespace do not depend on each other: made side
    // by side, they cost the slowest of them, not the sum (a woken app waits for all three).
    const t0 = Date.now();
    // How long each part took, logged with the start: what a wake waits for (bench/wake.ts).
    const timed = async <T>(run: () => Promise<T>): Promise<[T, number]> => {
      const value = await run();
      return [value, Date.now() - t0];
    };
    const [[{ appDir, method }, appDirMs], [, cgroupMs], [netns, networkMs]] = await Promise.all([
      timed(async () => {
        const template = await this.appTemplate(spec, diskMiB);
        const spare = await this.spareDisks.take(template.file, spec.workDir);
        const appDir = spare ?? (await cloneAppDisk(template.file, spec.workDir));
        return { appDir, method: spare ? ('spare' as const) : template.method };
      }),
      timed(() => cg.create(spec.id, spec.limits)),
      timed(() => this.attach('instance', spec.id, spec.labels)),
    ]);
    const spawnAt = Date.now();
    const launch = sandboxLaunch({
      ...spec,
      env: { ...spec.env, PORT: String(record.port) },
      appDir,
      dieWithParent: false,
      netns,
      seccompArch: this.seccompArch,
    });

    await mkdir(path.dirname(outputFile), { recursive: true });
    this.capture(record);
    // A file, not a pipe: the instance must not get SIGPIPE when the control plane dies.
    const output = await open(outputFile, 'a', 0o640);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(
        '/bin/sh',
        enterArgv(ENTER_AND_RECORD, [this.exitFile(spec.id)], cg.procsFiles(spec.id), launch.argv),
        // Own session and no pipes to us: it outlives the control plane (DESIGN: apps keep
        // serving while it restarts).
        {
          detached: true,
          stdio: ['ignore', output.fd, output.fd, 'pipe', 'pipe', 'pipe', 'pipe'],
          env: LAUNCH_ENV,
          cwd: '/',
        },
      );
    } finally {
      await output.close();
    }
    let exited: number | null | undefined;
    child.on('exit', (code) => {
      exited = code;
    });
    const spawned = await spawnedPid(child);
    await feedInputs(child, launch);
    child.unref();
    await writeFile(this.shimFile(spec.id), `${spawned} ${processStartTime(spawned) ?? 0}\n`);

    // "Returns once its process exists": the shim has joined the cgroup (or already ended).
    // Checked every 2 ms: it takes a few, and a woken app's visitor waits for this (the
    // default 50 ms of until() was most of a Node.js wake's start).
    await until(async () => exited !== undefined || (await cg.pids(spec.id)).includes(spawned), {
      timeout: 10_000,
      interval: 2,
      message: `instance ${spec.id} to enter its cgroup`,
    });
    if (exited !== undefined && (await readOptional(this.exitFile(spec.id))) === undefined) {
      throw new Error(`instance ${spec.id} could not enter its cgroups (exit ${exited}); see ${outputFile}`);
    }
    this.opts.logger?.info(
      {
        id: spec.id,
        app: spec.app,
        pid: spawned,
        appDir: method,
        diskMiB,
        // Milliseconds: the disk, cgroup and namespace side by side from `prepare`, then the
        // sandbox's launcher until it is in its cgroup, of `totalMs` in start().
        timings: {
          appDirMs,
          cgroupMs,
          networkMs,
          prepareMs: spawnAt - t0,
          spawnMs: Date.now() - spawnAt,
          totalMs: Date.now() - started,
        },
      },
      'instance started',
    );
    return this.status(spec.id);
  }

  async list(): Promise<InstanceStatus[]> {
    const cg = await this.cgroups();
    const names = (await cg.names()).filter((name) => INSTANCE_NAME.test(name));
    const statuses = await Promise.all(names.map((name) => this.status(name)));
    this.watchLimits(cg, statuses);
    return statuses;
  }

  async status(id: string): Promise<InstanceStatus> {
    assertValidId(id);
    const cg = await this.cgroups();
    const status: InstanceStatus = { id, running: (await cg.pids(id)).length > 0 };
    if (await cg.exists(id)) {
      const usage = await cg.usage(id);
      status.memoryBytes = usage.memoryBytes;
      status.cpuSeconds = usage.cpuSeconds;
      status.oomKilled = usage.oomKilled;
      const hit = limitHit(usage);
      if (hit) status.limitHit = hit;
    }
    if (!status.running) {
      const exit = await readOptional(this.exitFile(id));
      // bwrap reports a signal death as 128+N, the shell convention; we cannot tell it from
      // an app that exits 137 itself, so the code is passed on as is and `signal` stays unset.
      if (exit !== undefined && exit.trim() !== '') status.exitCode = Number(exit.trim());
      if ((await readOptional(this.oomFile(id))) !== undefined) status.oomKilled = true;
      const hit = (await readOptional(this.limitFile(id)))?.trim();
      if (hit === 'memory' || hit === 'pids') status.limitHit ??= hit;
    }
    const attachment = await this.network?.find('instance', id);
    if (attachment) status.address = attachment.address;
    const record = await this.record(id);
    if (record) {
      status.labels = record.labels;
      if (record.port !== undefined) status.port = record.port;
      // Adoption: an instance an earlier control plane started is tailed from where it was.
      this.capture(record);
    }
    return status;
  }

  async relabel(spec: Pick<InstanceSpec, 'id' | 'workDir' | 'labels'>): Promise<void> {
    assertValidId(spec.id);
    if (await this.record(spec.id)) return;
    const record: InstanceRecord = { labels: spec.labels, workDir: spec.workDir };
    await writeFile(this.recordFile(spec.id), `${JSON.stringify(record)}\n`, { mode: 0o600 });
    this.capture(record);
  }

  /** Tails the instance's output file into the sink (idempotent). */
  private capture(record: InstanceRecord): void {
    this.tailer?.watch(outputFileOf(record), record.labels.app, sourceOf(record.labels));
  }

  private async record(id: string): Promise<InstanceRecord | undefined> {
    const text = await readOptional(this.recordFile(id));
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as InstanceRecord;
    } catch {
      return undefined; // written whole before start; only a power loss leaves it torn
    }
  }

  async stop(id: string, graceMs: number): Promise<void> {
    // start() refuses such an id, so no sandbox, cgroup or namespace can exist under one (a
    // store may hold rows with them from before process type names were checked).
    if (!isValidId(id)) return;
    const cg = await this.cgroups();
    if (await cg.exists(id)) await this.stopCgroup(cg, id, graceMs);
    // Also when the cgroup is gone already: a start that failed halfway leaves a namespace.
    await this.network?.detach('instance', id);
    // Its release's next start (an app put to sleep wakes) finds its disk made.
    const template = (await this.record(id))?.template;
    if (template && existsSync(template)) this.spareDisks.makeSoon(template);
  }

  /** A ready-made image of the release's /app (the slug copied in, its dirs the app's), one
   * per slug, size and uid, built at the first start: every later start (a restart, a scale,
   * a wake) clones it instead of copying the slug file by file. Slugs never change, so a
   * template never goes stale. */
  private appTemplate(spec: InstanceSpec, diskMiB: number): Promise<{ file: string; method: AppDirMethod }> {
    const file = this.templateFile(spec, diskMiB);
    const key = path.basename(file, '.img');
    const pending = this.templates.get(key);
    if (pending) return pending;
    if (existsSync(file)) return Promise.resolve({ file, method: 'copy' });
    const build = (async () => {
      // Built aside and renamed into place: a template that exists is a complete one.
      const workDir = path.join(
        this.opts.stateDir,
        'app-templates',
        `${key}.${randomBytes(4).toString('hex')}`,
      );
      try {
        // Root's only: a template holds an app's code.
        await mkdir(path.dirname(workDir), { recursive: true, mode: 0o700 });
        const appDir = await createAppDisk(workDir, diskMiB);
        const method = await makeAppDir(spec.slugDir, appDir, spec.uid, spec.gid);
        await unmountAppDisk(workDir);
        await rename(appImagePath(workDir), file);
        return { file, method };
      } finally {
        await removeAppDisk(workDir).catch(() => {});
        await rm(workDir, { recursive: true, force: true });
      }
    })().finally(() => this.templates.delete(key));
    this.templates.set(key, build);
    return build;
  }

  /** Where the template of the release's /app is (or will be). */
  private templateFile(spec: InstanceSpec, diskMiB: number): string {
    const key = createHash('sha256')
      .update(`${spec.slugDir}\0${diskMiB}\0${spec.uid}\0${spec.gid}`)
      .digest('hex')
      .slice(0, 24);
    return path.join(this.opts.stateDir, 'app-templates', `${key}.img`);
  }

  private async stopCgroup(cg: Cgroups, id: string, graceMs: number): Promise<void> {
    const pids = await cg.pids(id);
    if (pids.length > 0) {
      // Spare the shim and its child (bwrap's monitor): if they died first the shim would
      // record bwrap's SIGTERM instead of how the app ended.
      const shim = await this.shimPid(id);
      const spared = new Set(shim === undefined ? [] : [shim, ...pids.filter((p) => parentPid(p) === shim)]);
      signalAll(
        pids.filter((p) => !spared.has(p)),
        'SIGTERM',
      );
      try {
        await until(async () => (await cg.pids(id)).length === 0, { timeout: graceMs, interval: 25 });
      } catch {
        this.opts.logger?.warn({ id, graceMs }, 'instance ignored SIGTERM; killing it');
        await killCgroup(cg, id);
      }
    }
    // The OOM and pids counters die with the cgroup; keep the verdicts for status().
    const usage = await cg.usage(id);
    if (usage.oomKilled) await writeFile(this.oomFile(id), 'oom\n');
    const hit = limitHit(usage);
    if (hit) await writeFile(this.limitFile(id), `${hit}\n`);
    await cg.remove(id);
    await rm(this.shimFile(id), { force: true });
  }

  async removeFiles(spec: Pick<InstanceSpec, 'id' | 'workDir'>): Promise<void> {
    // Nothing of the driver's exists under an id start() refuses (see stop): only workDir,
    // and only for an id of the right charset that is merely too long.
    const ownsFiles = isValidId(spec.id);
    if (!ownsFiles && !INSTANCE_NAME.test(spec.id)) assertValidId(spec.id);
    const workDir = path.resolve(spec.workDir);
    if (!path.isAbsolute(spec.workDir) || workDir === '/' || workDir === path.resolve(this.opts.stateDir)) {
      throw new Error(`refusing to remove '${spec.workDir}': not an instance work dir`);
    }
    const cg = await this.cgroups();
    if (ownsFiles && (await cg.pids(spec.id)).length > 0)
      throw new Error(`instance ${spec.id} is running; stop it first`);
    // Its last lines (a partial one too) reach the sink before the file goes, also when this
    // driver never tailed it (it stopped while no control plane ran).
    const record = ownsFiles ? await this.record(spec.id) : undefined;
    if (record && this.tailer) {
      const file = outputFileOf(record);
      this.capture(record);
      this.tailer.unwatch(file);
    }
    // Unmounted first: rm would otherwise empty the mounted image file by file, then fail.
    await removeAppDisk(workDir);
    await rm(workDir, { recursive: true, force: true });
    if (!ownsFiles) return;
    await this.forgetExit(spec.id);
    await this.network?.detach('instance', spec.id);
  }

  async runTask(spec: TaskSpec): Promise<TaskResult> {
    assertValidId(spec.id);
    if (!path.isAbsolute(spec.appDir)) throw new Error(`task appDir must be absolute, got '${spec.appDir}'`);
    const cg = await this.cgroups();
    const name = TASK_PREFIX + spec.id;
    if (await cg.exists(name)) {
      // Left by a control plane that died mid-task (--die-with-parent should have ended it).
      await killCgroup(cg, name);
      await cg.remove(name);
    }
    await cg.create(name, spec.limits);
    try {
      const netns = await this.attach('task', spec.id, spec.labels);
      return await this.runInCgroup(cg, name, spec, netns);
    } finally {
      await killCgroup(cg, name);
      await cg.remove(name);
      await this.network?.detach('task', spec.id);
    }
  }

  async runInteractive(spec: InteractiveSpec): Promise<InteractiveProcess> {
    assertValidId(spec.id);
    for (const p of [spec.slugDir, spec.workDir]) {
      if (!path.isAbsolute(p)) throw new Error(`one-off paths must be absolute, got '${p}'`);
    }
    const command = interactiveCommand(spec);
    const cg = await this.cgroups();
    const name = RUN_PREFIX + spec.id;
    const cleanup = async () => {
      await killCgroup(cg, name);
      const usage: CgroupUsage = (await cg.exists(name)) ? await cg.usage(name) : { oomKilled: false };
      await cg.remove(name);
      await this.network?.detach('run', spec.id);
      await removeAppDisk(spec.workDir);
      await rm(spec.workDir, { recursive: true, force: true });
      return usage;
    };
    let child: ReturnType<typeof spawn>;
    let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    try {
      if (await cg.exists(name)) await cleanup(); // a control plane died mid-run
      const appDir = await createAppDisk(spec.workDir, launchLimits(spec.limits).diskMiB);
      await makeAppDir(spec.slugDir, appDir, spec.uid, spec.gid);
      await cg.create(name, spec.limits);
      const netns = await this.attach('run', spec.id, spec.labels);
      // --die-with-parent: a one-off is attached to a client through us; without us it is orphaned.
      const launch = sandboxLaunch({
        ...spec,
        appDir,
        command,
        dieWithParent: true,
        netns,
        seccompArch: this.seccompArch,
      });
      child = spawn('/bin/sh', enterArgv(ENTER_AND_EXEC, [], cg.procsFiles(name), launch.argv), {
        stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
        env: LAUNCH_ENV,
        cwd: '/',
      });
      const started = child;
      exited = new Promise((resolve) => started.once('exit', (code, signal) => resolve({ code, signal })));
      // Writing to a command that ended fails with EPIPE; its exit says what happened.
      child.stdin?.on('error', () => {});
      await spawnedPid(child);
      await feedInputs(child, launch);
    } catch (err) {
      await cleanup();
      throw err;
    }
    // The launcher (bwrap, exec'd by the cgroup-entering shell) and bwrap's pid-1 reaper are
    // spared by signal(): if they died first, the command would be SIGKILLed, never seeing
    // the SIGINT it may handle (a REPL). Everything else, the command and what it started, gets it.
    const commandPids = async () => {
      const launcher = child.pid;
      return (await cg.pids(name)).filter((p) => p !== launcher && parentPid(p) !== launcher);
    };
    let timedOut = false;
    let killing: Promise<unknown> | undefined;
    const timer =
      spec.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            killing = killCgroup(cg, name).catch((err: unknown) => err);
          }, spec.timeoutMs);
    const finished = (async (): Promise<TaskResult> => {
      const { code, signal } = await exited;
      if (timer) clearTimeout(timer);
      await killing;
      // Whatever the command left running in the background ends with it.
      const usage = await cleanup();
      const hit = limitHit(usage);
      return { exitCode: code, signal, timedOut, oomKilled: usage.oomKilled, ...(hit && { limitHit: hit }) };
    })();
    finished.catch((err: unknown) =>
      this.opts.logger?.warn({ id: spec.id, err }, 'cleaning up after a one-off failed'),
    );
    let resizing = Promise.resolve();
    const logger = this.opts.logger;
    this.opts.logger?.info({ id: spec.id, app: spec.app, pid: child.pid, tty: spec.tty }, 'one-off started');
    return {
      stdin: child.stdin!,
      stdout: child.stdout!,
      stderr: child.stderr!,
      signal(sig) {
        void commandPids().then((pids) => signalAll(pids, sig));
      },
      resize(cols, rows) {
        if (!spec.tty || !terminalSize(cols, rows)) return;
        // The pty lives inside the sandbox; its slave is reachable as the command's fd 0.
        // stty runs as the app's user, so it can do nothing the app could not do itself.
        resizing = resizing.then(async () => {
          for (const pid of await commandPids()) {
            const target = await readlink(`/proc/${pid}/fd/0`).catch(() => '');
            if (!target.startsWith('/dev/pts/')) continue;
            const argv = resizeArgv(spec.uid, spec.gid, `/proc/${pid}/fd/0`, cols, rows);
            const result = await exec(argv[0]!, argv.slice(1), { env: LAUNCH_ENV, timeoutMs: 5000 });
            if (result.code === 0) return;
          }
          logger?.warn({ id: spec.id }, 'could not resize the terminal of a one-off');
        });
      },
      wait: () => finished,
    };
  }

  private async runInCgroup(
    cg: Cgroups,
    name: string,
    spec: TaskSpec,
    netns: string | undefined,
  ): Promise<TaskResult> {
    // The build's /app is the builder's directory, used as is; its /tmp is capped (bwrapArgs).
    const launch = sandboxLaunch({ ...spec, dieWithParent: true, netns, seccompArch: this.seccompArch });
    const child = spawn('/bin/sh', enterArgv(ENTER_AND_EXEC, [], cg.procsFiles(name), launch.argv), {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      env: LAUNCH_ENV,
      cwd: '/',
    });
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal }));
    });
    let saidNoSpace = false;
    const output = (chunk: string) => {
      if (NO_SPACE.test(chunk)) saidNoSpace = true;
      spec.onOutput(chunk);
    };
    child.stdout?.setEncoding('utf8').on('data', output);
    child.stderr?.setEncoding('utf8').on('data', output);
    let timedOut = false;
    let killing: Promise<unknown> | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      // The whole cgroup, not just bwrap: whatever the task started goes with it. A failure
      // here resurfaces in runTask's own killCgroup.
      killing = killCgroup(cg, name).catch((err: unknown) => err);
    }, spec.timeoutMs);
    try {
      await spawnedPid(child);
      await feedInputs(child, launch);
      const { code, signal } = await closed;
      await killing;
      const usage = await cg.usage(name);
      const full = code === 0 ? [] : await fullDisks(spec, saidNoSpace);
      const hit = limitHit(usage) ?? (full.length > 0 ? 'disk' : undefined);
      return {
        exitCode: code,
        signal,
        timedOut,
        oomKilled: usage.oomKilled,
        ...(hit && { limitHit: hit }),
        ...(full.length > 0 && { fullDisks: full }),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  async openBuildDisks(spec: BuildDisksSpec): Promise<BuildDisks> {
    assertValidId(spec.id);
    for (const p of [spec.workDir, spec.sourceDir, spec.cacheDir]) {
      if (!path.isAbsolute(p)) throw new Error(`build paths must be absolute, got '${p}'`);
    }
    const { diskMiB } = launchLimits({ diskMiB: spec.diskMiB });
    const { diskMiB: cacheMiB } = launchLimits({ diskMiB: spec.cacheMiB });
    // bwrap binds them as the app's user, who must traverse to them; nobody may list them.
    await mkdir(spec.workDir, { recursive: true, mode: 0o711 });
    await mkdir(spec.cacheDir, { recursive: true, mode: 0o711 });
    const owner = { uid: spec.uid, gid: spec.gid };
    const [appDir, cacheDir] = await Promise.all([
      createAppDisk(spec.workDir, diskMiB),
      openCacheDisk(spec.cacheDir, cacheMiB, owner, spec.freshCache === true),
    ]);
    // Root writes a filesystem no sandbox has seen yet, from a tree the platform unpacked:
    // nothing here can be a link an app placed.
    await rmdir(path.join(appDir, 'lost+found')).catch(() => {});
    const copied = await exec(CP, ['-a', '--', `${spec.sourceDir}/.`, appDir], { env: TOOL_ENV });
    if (copied.code !== 0) {
      if (/No space left/i.test(copied.stderr)) {
        throw new UserError(
          'build_failed',
          `the source does not fit the build's disk: /app is limited to ${diskMiB} MiB (limits.diskMiB); raise it with petri apps limits NAME --disk SIZE`,
        );
      }
      throw new Error(`copying the source to ${appDir} failed: ${copied.stderr.trim().slice(-2000)}`);
    }
    await execOk('chown', ['-R', '--no-dereference', `${spec.uid}:${spec.gid}`, appDir], { env: TOOL_ENV });
    return { appDir, cacheDir };
  }

  async closeBuildDisks(spec: Pick<BuildDisksSpec, 'workDir' | 'cacheDir'>): Promise<void> {
    for (const p of [spec.workDir, spec.cacheDir]) {
      if (!path.isAbsolute(p)) throw new Error(`build paths must be absolute, got '${p}'`);
    }
    await closeCacheDisk(spec.cacheDir);
    // Unmounted first, then the image and the empty mount point: nothing of the app's is
    // walked by root.
    await removeAppDisk(spec.workDir);
    await rm(spec.workDir, { recursive: true, force: true });
  }

  /** Removes what tasks cut off by a crash of the control plane left: their cgroups (a build
   * dies with the control plane, --die-with-parent, but its cgroups stay) and their network
   * namespaces and addresses. No task outlives the control plane that waits for it, so at
   * start every task found is such a leftover. Returns the ids of those reclaimed. */
  async reclaimTasks(): Promise<string[]> {
    const cg = await this.cgroups();
    const ids = new Set<string>();
    for (const name of (await cg.names()).filter((n) => n.startsWith(TASK_PREFIX))) {
      await killCgroup(cg, name);
      await cg.remove(name);
      ids.add(name.slice(TASK_PREFIX.length));
    }
    for (const id of (await this.network?.attached('task')) ?? []) {
      await this.network?.detach('task', id);
      ids.add(id);
    }
    if (ids.size > 0) this.opts.logger?.info({ tasks: [...ids] }, 'reclaimed tasks cut off by a restart');
    return [...ids];
  }

  /** A fresh namespace for the sandbox; the file nsenter joins, or undefined without the
   * network option (the host's network). */
  private async attach(kind: SandboxKind, id: string, labels?: SandboxLabels): Promise<string | undefined> {
    if (!this.network) return undefined;
    const attachment = await this.network.attach(kind, id, labels);
    this.opts.logger?.info(
      { id, kind, netns: attachment.netns, address: attachment.address },
      'network attached',
    );
    return netnsPath(attachment.netns);
  }

  /** Packets the network's firewall dropped (sandboxes reaching for what they may not);
   * undefined without the network option. */
  async networkDrops(): Promise<{ input: number; forward: number } | undefined> {
    if (!this.network) return undefined;
    await this.network.ensure();
    return this.network.drops();
  }

  private cgroups(): Promise<Cgroups> {
    this.cgroupsReady ??= detectCgroups({
      root: this.opts.cgroupRoot ?? '/sys/fs/cgroup',
      parent: this.opts.cgroupParent,
    });
    return this.cgroupsReady;
  }

  private exitFile(id: string): string {
    return path.join(this.instancesDir, `${id}.exit`);
  }

  private oomFile(id: string): string {
    return path.join(this.instancesDir, `${id}.oom`);
  }

  private limitFile(id: string): string {
    return path.join(this.instancesDir, `${id}.limit`);
  }

  private shimFile(id: string): string {
    return path.join(this.instancesDir, `${id}.shim`);
  }

  private recordFile(id: string): string {
    return path.join(this.instancesDir, `${id}.json`);
  }

  private async forgetExit(id: string): Promise<void> {
    for (const file of [
      this.exitFile(id),
      this.oomFile(id),
      this.limitFile(id),
      this.shimFile(id),
      this.recordFile(id),
    ])
      await rm(file, { force: true });
  }

  /** The shim's pid, if that very process (pid and start time) still runs. */
  private async shimPid(id: string): Promise<number | undefined> {
    const [pid, start] = ((await readOptional(this.shimFile(id))) ?? '').trim().split(' ').map(Number);
    if (pid === undefined || start === undefined || !pid) return undefined;
    return processStartTime(pid) === start ? pid : undefined;
  }
}

/** Where an instance's stdout and stderr go: in its own directory, removed with it. */
function outputFileOf(record: InstanceRecord): string {
  return path.join(record.workDir, 'output.log');
}

/** The log source of an instance's output: its process (web.1), else its kind (release). */
function sourceOf(labels: SandboxLabels): string {
  return labels.process ?? labels.kind;
}

/** Resolves with the pid once spawned, rejects when the spawn failed. */
function spawnedPid(child: ReturnType<typeof spawn>): Promise<number> {
  return new Promise((resolve, reject) => {
    if (child.pid !== undefined) resolve(child.pid);
    else child.once('error', reject);
  });
}

/** Writes bwrap's arguments, passwd, group and seccomp filter to fds 3-6 and closes our ends. */
async function feedInputs(child: ReturnType<typeof spawn>, launch: SandboxLaunch): Promise<void> {
  await Promise.all(
    launch.inputs.map(
      (data, i) =>
        new Promise<void>((resolve, reject) => {
          const stream = child.stdio[3 + i] as Writable | null | undefined;
          if (!stream) return reject(new Error(`no pipe for fd ${3 + i}`));
          // EPIPE when the sandbox died before reading is reported by its exit, not here.
          stream.on('error', () => resolve());
          stream.end(data, () => resolve());
        }),
    ),
  );
}

/** The sandbox paths of a task's disks that are full: no room or no inode left, or, when
 * the task said ENOSPC, nearly no room (NEARLY_FULL_SHARE). statfs of the host paths the
 * driver was given: mount points, not anything the task could replace. */
async function fullDisks(spec: TaskSpec, saidNoSpace: boolean): Promise<string[]> {
  const disks: Array<[string, string]> = [
    [spec.appDir, '/app'],
    ...Object.entries(spec.writableMounts ?? {}),
  ];
  const full: string[] = [];
  for (const [host, inside] of disks) {
    const fs = await statfs(host).catch(() => undefined);
    if (!fs) continue;
    const free = fs.bavail * fs.bsize;
    const nearly = saidNoSpace && fs.bavail < fs.blocks * NEARLY_FULL_SHARE;
    if (free < FULL_DISK_BYTES || nearly || (fs.files > 0 && fs.ffree === 0)) full.push(inside);
  }
  return full;
}

/** SIGKILL until the cgroup is empty: a fork loop may add processes between two reads. */
async function killCgroup(cg: Cgroups, name: string): Promise<void> {
  await until(
    async () => {
      const pids = await cg.pids(name);
      signalAll(pids, 'SIGKILL');
      return pids.length === 0;
    },
    { timeout: KILL_TIMEOUT_MS, interval: 20, message: `cgroup ${name} to empty after SIGKILL` },
  );
}

/** The limit a sandbox ran into: memory (an OOM kill) before pids (a refused fork), as the
 * one that ends it. */
function limitHit(usage: CgroupUsage): 'memory' | 'pids' | undefined {
  if (usage.oomKilled) return 'memory';
  if (usage.pidsLimitHit) return 'pids';
  return undefined;
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

function parentPid(pid: number): number | undefined {
  try {
    // After the command name, which may hold spaces and parentheses: "S PPID ...".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
    return ppid === undefined ? undefined : Number(ppid);
  } catch {
    return undefined;
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

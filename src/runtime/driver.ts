// The seam between the controllers and whatever runs app processes. specs/ translates store
// rows into these plain specs; a Kubernetes driver later implements the same interface and
// nothing above it changes. Every implementation (and the fake unit tests use) passes the
// contract suite in test/runtime/contract.ts; docs/adr/0001-runtime-seam.md says why the
// seam is per instance.

import type { Readable, Writable } from 'node:stream';
import type { Limits } from '../lib/limits.js';

export type { Limits };

export type LimitHit = 'memory' | 'pids' | 'disk';

/** What a sandbox is for, carried by it and given back by list(), status() and sandboxAt():
 * the platform never parses an id to learn whose a sandbox is (a Kubernetes driver keeps
 * these as pod labels). Plain names and numbers only. */
export interface SandboxLabels {
  app: string;
  /** An app instance, a release command, a build step or a one-off (`petri run`). */
  kind: 'instance' | 'release' | 'build' | 'run';
  /** The release it runs (instances, release commands, one-offs). */
  release?: number;
  /** The deploy it builds (build steps). */
  deploy?: string;
  /** The log source its output goes to: `web.1`, `release`. */
  process?: string;
}

/** Where a driver delivers what instances write to stdout and stderr (logs/ LogStore is one):
 * whole lines where it can, under the app and the source (labels.process). */
export interface OutputSink {
  /** Throws when lines of this app and source could not be kept (a bad name): checked when
   * capture starts, not at the first line. */
  assertNames(app: string, source: string): void;
  /** Longer partial lines are passed on without waiting for their end. */
  readonly maxLineChars: number;
  append(app: string, source: string, text: string, at?: Date): void;
  /** The source's pending partial line is complete (the instance is gone, or it went stale). */
  flush(app: string, source: string): void;
}

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
   * the slug, seen as /app inside, holding at most limits.diskMiB with the slug) and anything
   * else it needs in here (the local driver: the image of that filesystem, app.img). */
  workDir: string;
  /** argv run inside the sandbox with /app as working directory. */
  command: string[];
  /** Host directories the sandbox sees read-only (host path -> sandbox path, both absolute),
   * e.g. the release's Node.js runtime at /opt/node. */
  readOnlyMounts?: Record<string, string>;
  /** Without PORT: the driver chooses the port and sets it. */
  env: Record<string, string>;
  limits: Limits;
  /** What it is for; labels.process names its log source. Its output goes to the sink the
   * driver was given, under labels.app and labels.process. */
  labels: SandboxLabels;
}

export interface InstanceStatus {
  id: string;
  running: boolean;
  /** Known once it stopped; undefined while running or when nobody saw the exit. */
  exitCode?: number | null;
  signal?: string | null;
  /** True when the memory limit killed it. */
  oomKilled?: boolean;
  /** A limit it ran into, where the driver can tell: 'memory' (OOM-killed, as oomKilled),
   * 'pids' (a fork or thread was refused at limits.pids; the app may have carried on),
   * 'disk' (its disk was full). Memory wins when several were hit. Undefined: none seen, or
   * the driver cannot tell (the local driver reports memory and pids, not disk: ENOSPC
   * reaches the app as an error it may handle). Kept after the instance stopped. */
  limitHit?: LimitHit;
  memoryBytes?: number;
  cpuSeconds?: number;
  /** Where the router reaches the instance's PORT: its own address when the driver gives
   * each instance a network of its own; absent means the host's loopback (127.0.0.1), so
   * the app must listen there or on every address. Apps should listen on 0.0.0.0. Read
   * afresh every pass: a driver may move an instance. */
  address?: string;
  /** The port the instance's PORT is, reached at `address`: the driver's choice, made by
   * start() and set as PORT in the instance's environment (a spec's env carries none).
   * Absent when the driver does not know it (an instance an earlier Petri started, whose
   * port the store recorded). */
  port?: number;
  /** As given to start(); absent for what the driver cannot attribute (an earlier Petri's). */
  labels?: SandboxLabels;
}

/** A command run to completion inside the same sandbox (a build, a one-off). */
export interface TaskSpec {
  id: string;
  app: string;
  uid: number;
  gid: number;
  /** Host directory mounted read-write at /app, as it is (a build's: BuildDisks.appDir, so
   * its size is capped there); limits.diskMiB caps the task's /tmp. */
  appDir: string;
  /** Extra host directories mounted read-write (host path -> sandbox path), e.g. the cache. */
  writableMounts?: Record<string, string>;
  /** Host directories mounted read-only (host path -> sandbox path), e.g. a Node.js runtime. */
  readOnlyMounts?: Record<string, string>;
  command: string[];
  env: Record<string, string>;
  limits: Limits;
  timeoutMs: number;
  onOutput: (chunk: string) => void;
  /** What it is for (a build step: kind 'build' and the deploy), for sandboxAt(). */
  labels?: SandboxLabels;
}

export interface TaskResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  oomKilled: boolean;
  /** As InstanceStatus.limitHit; 'disk' when a disk of the task is full (see fullDisks). */
  limitHit?: LimitHit;
  /** Where a task that failed left no room: '/app' and the sandbox paths of writableMounts
   * whose filesystem is full (a write of the task most likely failed with ENOSPC). */
  fullDisks?: string[];
}

/** The disks of a build, one build at a time per app: its /app, a filesystem of diskMiB
 * holding a copy of the source, and the app's build cache, a filesystem of cacheMiB kept
 * between its builds. Each build task gets them as TaskSpec.appDir and a writable /cache.
 * Root never works inside either once a task ran: what the app wrote there is copied out
 * (the slug) by cp without following a link, and cache restore and save run as tasks. */
export interface BuildDisksSpec {
  /** The build's id ([a-z0-9.-]). */
  id: string;
  uid: number;
  gid: number;
  /** The build's own host directory; the driver keeps /app's filesystem in here. */
  workDir: string;
  /** Copied into the fresh /app as the app's user's files. Only ever a tree the platform
   * unpacked itself (links refused), never one a sandbox wrote. */
  sourceDir: string;
  diskMiB: number;
  /** The app's own host directory for its build cache. */
  cacheDir: string;
  cacheMiB: number;
  /** Start from an empty cache (deploy --no-cache). */
  freshCache?: boolean;
}

export interface BuildDisks {
  /** Host path of the build's /app, for TaskSpec.appDir; the build output is read from here. */
  appDir: string;
  /** Host path of the cache, for TaskSpec.writableMounts at /cache. */
  cacheDir: string;
}

/** A one-off command (`petri run`) attached to a client: the app's release and config in
 * the same sandbox as an instance, with pipes (or a terminal) instead of the output sink. */
export interface InteractiveSpec extends InstanceSpec {
  /** A pseudo-terminal: stdout carries what the terminal shows, stderr stays empty. */
  tty: boolean;
  /** Initial terminal size (tty only). */
  cols?: number;
  rows?: number;
  /** Killed after this long; no limit when absent. */
  timeoutMs?: number;
}

export interface InteractiveProcess {
  stdin: Writable;
  stdout: Readable;
  /** Empty when tty. */
  stderr: Readable;
  /** Best effort: a driver may apply the size only at the start. */
  resize(cols: number, rows: number): void;
  /** Sends the signal to every process of the command. */
  signal(signal: NodeJS.Signals): void;
  /** Resolves after the command ended and its cgroup and workDir are removed. */
  wait(): Promise<TaskResult>;
}

export interface RuntimeDriver {
  /** Starts an instance and returns once its process exists (not once it is healthy), with
   * the port it chose for it (set as PORT in its environment; status.port). Its
   * output reaches the driver's sink from then on, also after a restart of the control plane
   * (the new driver picks it up at its first list()). */
  start(spec: InstanceSpec): Promise<InstanceStatus>;
  /** Every instance this driver runs, from the system itself (for adoption after a restart). */
  list(): Promise<InstanceStatus[]>;
  status(id: string): Promise<InstanceStatus>;
  /** SIGTERM, then SIGKILL after graceMs; resolves when nothing of it runs; removes its
   * cgroup. Its workDir is left for removeFiles. Idempotent. */
  stop(id: string, graceMs: number): Promise<void>;
  /** Removes what start() made on disk for the instance, after delivering the rest of its
   * output (a last partial line included). Idempotent. */
  removeFiles(spec: Pick<InstanceSpec, 'id' | 'workDir'>): Promise<void>;
  /** Delivers every complete line the instances wrote so far to the sink, now (before the
   * platform reads an app's last lines to say why it failed). */
  flushOutput(): Promise<void>;
  runTask(spec: TaskSpec): Promise<TaskResult>;
  /** Makes a build's disks (replacing what an earlier, cut-off run of it left). Fails with a
   * user error when the source does not fit diskMiB. */
  openBuildDisks(spec: BuildDisksSpec): Promise<BuildDisks>;
  /** Unmounts a build's disks and removes its /app; the cache stays for the app's next
   * build. Idempotent; also for the leftovers of a build cut off by a crash. */
  closeBuildDisks(spec: Pick<BuildDisksSpec, 'workDir' | 'cacheDir'>): Promise<void>;
  /** Starts a one-off with its stdio attached to the caller; resolves once it runs. */
  runInteractive(spec: InteractiveSpec): Promise<InteractiveProcess>;
  /** Where sandboxes reach the platform's services on the host (the egress proxy, the mail
   * relay, add-on servers), e.g. for HTTP_PROXY=http://GATEWAY:PORT; only the ports the
   * driver was told about are open there. Undefined when sandboxes share the host's network
   * (then the services are on 127.0.0.1). */
  networkGateway(): string | undefined;
  /** The labels of the sandbox (instance, release command, build, one-off) that has this
   * address, for the egress proxy; undefined when none has (or sandboxes have no addresses). */
  sandboxAt(address: string): Promise<SandboxLabels | undefined>;
  /** For an instance that runs without labels (an earlier Petri started it, before specs
   * carried them): records whose it is and where its files are, so its status has labels
   * and its output reaches the sink from now on. A no-op for an instance that has them.
   * Optional: a driver whose instances always carry their labels has nothing to do. */
  relabel?(spec: Pick<InstanceSpec, 'id' | 'workDir' | 'labels'>): Promise<void>;
  /** Calls `listener` with an instance's id soon after it ends by itself (adopted ones
   * included), so the reconciler need not poll for exits often. Returns a stop function.
   * Optional, and best effort: the reconciler still looks now and then. */
  onExit?(listener: (id: string) => void): () => void;
  /** Calls `listener` with an instance's id soon after it hits a limit without ending (a
   * fork refused at the pids limit), so the reconciler notes it in the app's log at once
   * rather than at its next look, up to 30 s away at rest. Returns a stop function.
   * Optional, and best effort, as onExit. */
  onLimitHit?(listener: (id: string) => void): () => void;

  // Lifecycle, called by the composition root (server.ts) and `petri server --stop-all` only.
  /** Makes what sandboxes need on the host (the local driver: the bridge and its firewall),
   * before the platform's services listen on the gateway. Idempotent. */
  prepare(): Promise<void>;
  /** Removes what tasks cut off by a crash of the control plane left (no task outlives the
   * control plane that waits for it). Returns their ids. */
  reclaimTasks(): Promise<string[]>;
  /** The control plane stops: the driver lets go of what it holds in this process (output
   * capture); instances keep running and the next driver adopts them. */
  close(): Promise<void>;
  /** The platform stops (`--stop-all`), after every instance was stopped: removes what
   * prepare() and the sandboxes set up on the host. */
  teardown(): Promise<void>;
}

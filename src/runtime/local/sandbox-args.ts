// The bubblewrap sandbox as plain data: pure functions from a spec to the argv that runs it.
// Nothing here touches the system, so the whole sandbox is reviewed through golden files.
// The layout assumes a merged-/usr host (/bin, /lib, /lib64, /sbin are links into /usr).

import { DEFAULT_DISK_MIB, DEFAULT_NOFILE, type Limits } from '../../lib/limits.js';
import { compileSeccompFilter, rlimitArgs, type SeccompArch } from './seccomp.js';

export const BWRAP = '/usr/bin/bwrap';
/** File descriptors through which the sandbox's inputs reach bwrap (see sandboxLaunch). */
export const ARGS_FD = 3;
export const PASSWD_FD = 4;
export const GROUP_FD = 5;
/** The seccomp filter (binary, see seccomp.ts); bwrap installs it just before the exec. */
export const SECCOMP_FD = 6;
export const SETPRIV = '/usr/bin/setpriv';
export const NSENTER = '/usr/bin/nsenter';

/** Ids become file and cgroup names: the charset of InstanceSpec.id, nothing that can climb out. */
const ID = /^[a-z0-9][a-z0-9.-]{0,127}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What of the host's /etc a sandbox sees: name resolution, TLS roots, the dynamic linker's
 * cache, time zone, and package-manager defaults. Not passwd/group (they list the host's
 * accounts; the sandbox gets its own, see passwdFile), not shadow, ssh, or anything with keys. */
export const HOST_ETC = [
  'alternatives',
  'ca-certificates',
  'ca-certificates.conf',
  'gai.conf',
  'host.conf',
  'hosts',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'localtime',
  'mime.types',
  'npmrc',
  'nsswitch.conf',
  'pip.conf',
  'protocols',
  'python3',
  'resolv.conf',
  'services',
  'ssl/certs',
  'ssl/openssl.cnf',
  'timezone',
] as const;

/** Where no extra mount may go: what bwrapArgs itself sets up, and the root. */
const RESERVED_MOUNTS = /^\/($|(usr|bin|sbin|lib|lib64|etc|dev|proc|tmp|app|cache)(\/|$))/;

function isPlainAbsolute(p: string): boolean {
  return p.startsWith('/') && !p.split('/').some((part) => part === '..' || part === '.');
}

export interface SandboxPlan {
  uid: number;
  gid: number;
  /** Host directory seen read-write as /app (the working directory). */
  appDir: string;
  /** Extra read-write mounts, host path -> sandbox path. */
  writableMounts?: Record<string, string>;
  /** Read-only mounts, host path -> sandbox path (a Node.js runtime at /opt/node). */
  readOnlyMounts?: Record<string, string>;
  env: Record<string, string>;
  command: string[];
  /** Tasks only: a build must not outlive the control plane that waits for it, while an
   * instance must (DESIGN: apps keep serving while the control plane restarts). */
  dieWithParent: boolean;
  /** A named network namespace file (/run/netns/NAME) to run in; absent: the host's network. */
  netns?: string;
  /** The limits enforced by the launch itself (the cgroup takes care of the others);
   * memoryMiB sizes /tmp, whose pages the memory cgroup is charged for (see tmpSizeMiB). */
  limits: Pick<Limits, 'nofile' | 'diskMiB'> & Partial<Pick<Limits, 'memoryMiB'>>;
  /** Whose syscall numbers the seccomp filter judges: the host's (see seccompArch). */
  seccompArch: SeccompArch;
}

/** Below this an ext4 image has little room left for anything but its own metadata. */
export const MIN_DISK_MIB = 8;

/** nofile and diskMiB with their defaults, checked: they size a filesystem and an rlimit. */
export function launchLimits(limits: Pick<Limits, 'nofile' | 'diskMiB'>): {
  nofile: number;
  diskMiB: number;
} {
  const nofile = limits.nofile ?? DEFAULT_NOFILE;
  const diskMiB = limits.diskMiB ?? DEFAULT_DISK_MIB;
  if (!Number.isInteger(nofile) || nofile <= 0) {
    throw new Error(`limit nofile must be a positive integer, got ${nofile}`);
  }
  if (!Number.isInteger(diskMiB) || diskMiB < MIN_DISK_MIB) {
    throw new Error(`limit diskMiB must be an integer of at least ${MIN_DISK_MIB}, got ${diskMiB}`);
  }
  return { nofile, diskMiB };
}

/** /tmp's size: the disk limit, and at most half the memory limit. /tmp is a tmpfs, whose
 * pages count against the sandbox's memory cgroup: sized like the disk alone, an app that
 * fills it is OOM-killed (all of it) instead of getting ENOSPC. At half, writing too much to
 * /tmp is ENOSPC as long as the app's processes use less than the other half. */
export function tmpSizeMiB(limits: Pick<Limits, 'diskMiB'> & Partial<Pick<Limits, 'memoryMiB'>>): number {
  const { diskMiB } = launchLimits(limits);
  if (limits.memoryMiB === undefined) return diskMiB;
  return Math.max(1, Math.min(diskMiB, Math.floor(limits.memoryMiB / 2)));
}

/** The seccomp arch of a Node `process.arch`; the filter exists for x64 and arm64 only, and
 * running without one is not an option, so anything else is refused. */
export function seccompArch(nodeArch: string): SeccompArch {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  throw new Error(`the local driver's seccomp filter supports x64 and arm64 hosts, not '${nodeArch}'`);
}

export function assertValidId(id: string): void {
  if (!isValidId(id)) throw new Error(`runtime id must match ${ID}, got '${id}'`);
}

export function isValidId(id: string): boolean {
  return ID.test(id);
}

/** PATH, HOME=/app and LANG=C.UTF-8 under the spec's own variables. HOME is fixed: /app is
 * the only writable place that lasts, so tools that cache under ~ must land there. */
export function sandboxEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
  };
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name))
      throw new Error(`environment variable name must match ${ENV_NAME}, got '${name}'`);
    out[name] = value;
  }
  out.HOME = '/app';
  return out;
}

/** bwrap's options (not the command). They travel to bwrap through `--args FD`, never on
 * the command line, because they carry the app's config vars. */
export function bwrapArgs(plan: SandboxPlan): string[] {
  if (plan.command.length === 0) throw new Error('sandbox command must not be empty');
  const args: string[] = [
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    // No nested user namespaces: they are the usual door to kernel attack surface.
    '--disable-userns',
    '--uid',
    String(plan.uid),
    '--gid',
    String(plan.gid),
    '--hostname',
    'app',
    '--ro-bind',
    '/usr',
    '/usr',
    '--symlink',
    'usr/bin',
    '/bin',
    '--symlink',
    'usr/sbin',
    '/sbin',
    '--symlink',
    'usr/lib',
    '/lib',
    '--symlink',
    'usr/lib64',
    '/lib64',
  ];
  // -try: hosts differ in which of these exist; a missing one is not worth failing a start for.
  for (const name of HOST_ETC) {
    // In its own network namespace the host's resolver is out of reach: every lookup would
    // wait out its timeouts (seconds, at start-up too). An empty resolv.conf means the
    // sandbox's own loopback, which refuses at once; names are the egress proxy's job.
    if (name === 'resolv.conf' && plan.netns !== undefined)
      args.push('--ro-bind', '/dev/null', '/etc/resolv.conf');
    else args.push('--ro-bind-try', `/etc/${name}`, `/etc/${name}`);
  }
  // Its own passwd and group, handed over as data: no host file the app's uid must reach.
  args.push(
    '--ro-bind-data',
    String(PASSWD_FD),
    '/etc/passwd',
    '--ro-bind-data',
    String(GROUP_FD),
    '/etc/group',
  );
  // /tmp is memory (charged to the sandbox's cgroup), capped within the memory limit: a full
  // /tmp is ENOSPC for the app, not an OOM kill of the whole instance (see tmpSizeMiB).
  const tmpMiB = tmpSizeMiB(plan.limits);
  args.push('--dev', '/dev', '--proc', '/proc', '--size', String(tmpMiB * 1024 * 1024), '--tmpfs', '/tmp');
  args.push('--bind', plan.appDir, '/app');
  for (const [host, inside] of Object.entries(plan.writableMounts ?? {})) {
    if (!host.startsWith('/') || !inside.startsWith('/')) {
      throw new Error(`writable mounts need absolute paths, got '${host}' -> '${inside}'`);
    }
    args.push('--bind', host, inside);
  }
  for (const [host, inside] of Object.entries(plan.readOnlyMounts ?? {})) {
    // Not over what the sandbox is built from: a runtime lands in a place of its own.
    if (!isPlainAbsolute(host) || !isPlainAbsolute(inside) || RESERVED_MOUNTS.test(inside)) {
      throw new Error(
        `read-only mounts need plain absolute paths outside the sandbox's own, got '${host}' -> '${inside}'`,
      );
    }
    args.push('--ro-bind', host, inside);
  }
  // bwrap builds the root as a tmpfs owned by the sandbox user: without this, /etc and / itself
  // would take new files. Not recursive, so /app, /tmp and the extra mounts stay writable.
  args.push('--remount-ro', '/');
  args.push('--chdir', '/app', '--new-session', '--cap-drop', 'ALL', '--seccomp', String(SECCOMP_FD));
  if (plan.dieWithParent) args.push('--die-with-parent');
  args.push('--clearenv');
  for (const [name, value] of Object.entries(sandboxEnv(plan.env))) args.push('--setenv', name, value);
  // --args is NUL-separated: a NUL inside a value would smuggle in extra bwrap options.
  for (const arg of [...args, ...plan.command]) {
    if (arg.includes('\0')) throw new Error('sandbox arguments and environment must not contain NUL');
  }
  return args;
}

export interface SandboxLaunch {
  /** What runs after the cgroup-entering shell: setpriv, then bwrap (reading its options
   * from ARGS_FD) and the command. */
  argv: string[];
  /** bwrap's options, for reading (the golden files); they travel in inputs[0]. */
  bwrapArgs: string[];
  /** Data for fds 3, 4, 5, 6 (ARGS_FD, PASSWD_FD, GROUP_FD, SECCOMP_FD) of the spawned process. */
  inputs: [string, string, string, Buffer];
}

/** Join the sandbox's network namespace while still root (setns needs CAP_SYS_ADMIN), so
 * that bwrap, without --unshare-net, and everything under it inherit it. Set the open-files
 * limit, also as root, with soft = hard: the app's uid can lower it but never raise it. Then
 * drop to the app's uid (as root, bwrap would need a privileged user namespace for
 * --uid), and let bwrap make an unprivileged one. bwrap reads its arguments from a pipe
 * (`--args`), never from the command line: they carry the app's config vars, and
 * /proc/PID/cmdline is readable by every user of the host. */
export function sandboxLaunch(plan: SandboxPlan): SandboxLaunch {
  for (const n of [plan.uid, plan.gid]) {
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`sandbox uid/gid must be a positive integer, got ${n}`);
  }
  if (plan.netns !== undefined && !/^\/run\/netns\/[A-Za-z0-9_.-]+$/.test(plan.netns)) {
    throw new Error(`sandbox netns must be a file under /run/netns, got '${plan.netns}'`);
  }
  const args = bwrapArgs(plan);
  const { nofile } = launchLimits(plan.limits);
  return {
    // The command stays on the command line: bwrap ignores whatever follows `--` in --args data.
    argv: [
      ...(plan.netns === undefined ? [] : [NSENTER, `--net=${plan.netns}`, '--']),
      ...rlimitArgs({ nofile }),
      SETPRIV,
      `--reuid=${plan.uid}`,
      `--regid=${plan.gid}`,
      '--clear-groups',
      '--',
      BWRAP,
      '--args',
      String(ARGS_FD),
      '--',
      ...plan.command,
    ],
    bwrapArgs: args,
    inputs: [
      args.map((arg) => `${arg}\0`).join(''),
      passwdFile(plan.uid, plan.gid),
      groupFile(plan.gid),
      compileSeccompFilter({ arch: plan.seccompArch }),
    ],
  };
}

/** The sandbox's /etc/passwd: root, the app user (home /app) and nobody, not the host's accounts. */
export function passwdFile(uid: number, gid: number): string {
  return [
    'root:x:0:0:root:/root:/usr/sbin/nologin',
    `app:x:${uid}:${gid}:app:/app:/bin/sh`,
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    '',
  ].join('\n');
}

export function groupFile(gid: number): string {
  return ['root:x:0:', `app:x:${gid}:`, 'nogroup:x:65534:', ''].join('\n');
}

/** Fixed scripts for the first process of a cgroup. Data reaches them only through argv
 * ("$@"), never by interpolation. Arguments: cgroup.procs files, then `--`, then the command. */
const ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift;';

/** Tasks: join the cgroups, then become the sandbox (the caller sees its exit directly). */
export const ENTER_AND_EXEC = `${ENTER} exec "$@"`;

/** Instances: join the cgroups, run the sandbox in the foreground and write its exit status
 * to the file given as first argument, so whoever looks later (a restarted control plane)
 * learns how it ended. The shell stays in the cgroup as the instance's first process. */
export const ENTER_AND_RECORD = `exit_file=$1; shift; ${ENTER} "$@"; echo $? > "$exit_file"`;

/** argv for /bin/sh that enters the cgroups then runs `command`. */
export function enterArgv(script: string, head: string[], procsFiles: string[], command: string[]): string[] {
  return ['-c', script, 'petri-enter', ...head, ...procsFiles, '--', ...command];
}

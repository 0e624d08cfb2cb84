// The Node.js and V8 flags `petri server` runs under (config.nodeFlags). A control plane is
// one long-lived process that waits on I/O nearly all the time: V8's defaults are made for
// the opposite (a busy process with cores to spare), and they cost it a sixth of its memory
// at rest (docs/adr/0002). The server starts itself once more with the flags it was not
// started with; `process.execve` keeps the pid, the terminal and the environment.

/** Only V8's memory and compiler settings, with a number or nothing, and how
 * AsyncLocalStorage is carried (by V8's context frames, not async hooks): a flag that runs code
 * (--import, --require, --eval), opens a port (--inspect), reads settings after the config
 * was checked (--env-file) or ends the process (--version) would make the config file a way
 * to run anything as root, or a server that never starts. */
export const NODE_FLAG =
  /^--(?:(?:max-semi-space-size|min-semi-space-size|max-old-space-size|v8-pool-size|max-opt)=[0-9]{1,6}|(?:no-)?(?:turbofan|maglev|sparkplug)|optimize-for-size|single-threaded-gc|experimental-async-context-frame)$/;

/** Set in the environment of the re-executed server: it never re-executes a second time
 * (whatever Node.js made of the flags), and takes it out of its own environment first. */
const APPLIED = 'PETRI_NODE_FLAGS_APPLIED';

/** The flags of `wanted` whose name the process was not started with: an operator's own
 * `node --max-opt=3 dist/main.js server` (or NODE_OPTIONS=--max-semi-space-size=4, for the
 * flags Node.js takes there) keeps its choice; on the command line ours would win. */
export function missingNodeFlags(
  wanted: readonly string[],
  execArgv: readonly string[],
  nodeOptions = '',
): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(flagName));
  return wanted.filter((flag) => !given.has(flagName(flag)));
}

/** V8 reads `--max_opt` as `--max-opt`, and `--no-maglev` is the same setting as `--maglev`. */
function flagName(arg: string): string {
  return (arg.split('=')[0] ?? arg).replaceAll('_', '-').replace(/^--no-/, '--');
}

/** A Node.js flag (not V8's) that this Node.js has: --experimental-async-context-frame came
 * with 22.7 and became the default, under another name, in 24. Node.js lists its own flags;
 * V8's are always there. */
function known(flag: string): boolean {
  if (!flag.startsWith('--experimental-')) return true;
  return process.allowedNodeEnvironmentFlags.has(flag);
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/** Replaces this process with itself under the flags of `wanted` it lacks, unless it has
 * them all or was re-executed already. A Node.js without process.execve (before 22.15) runs
 * on with V8's defaults, and says so. */
export function reexecWithNodeFlags(wanted: readonly string[], warn: (line: string) => void): void {
  if (process.env[APPLIED] !== undefined) {
    delete process.env[APPLIED];
    return;
  }
  const missing = missingNodeFlags(wanted.filter(known), process.execArgv, process.env.NODE_OPTIONS);
  if (missing.length === 0) return;
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve !== 'function') {
    warn(
      `Node.js ${process.version} cannot re-execute itself (process.execve, 22.15 or later): running without nodeFlags ${missing.join(' ')}`,
    );
    return;
  }
  const [script, ...args] = process.argv.slice(1);
  execve.call(
    process,
    process.execPath,
    [process.execPath, ...missing, ...process.execArgv, script ?? '', ...args],
    { ...process.env, [APPLIED]: '1' },
  );
}

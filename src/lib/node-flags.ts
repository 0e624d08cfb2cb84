// The Node.js and V8 flags `petri server` runs under (config.nodeFlags). A control plane is
// one long-lived process that waits on I/O nearly all the time: V8's defaults are made for
// the opposite (a busy process with cores to spare), and they cost it a third of its memory
// at rest. The server starts itself once more with the flags it was not started with;
// `process.execve` keeps the pid, the terminal and the environment.
import { UserError } from './errors.js';
import { exec } from './exec.js';

/** Set in the environment of the re-executed server: it never re-executes a second time
 * (whatever Node.js made of the flags), and takes it out of its own environment first. */
const APPLIED = 'PETRI_NODE_FLAGS_APPLIED';

/** The flags of `wanted` whose name the process was not started with: an operator's own
 * `node --max-opt=3 dist/main.js server` or NODE_OPTIONS=--max-semi-space-size=4 keeps its
 * choice (a flag on the command line would win over NODE_OPTIONS). */
export function missingNodeFlags(
  wanted: readonly string[],
  execArgv: readonly string[],
  nodeOptions = '',
): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(flagName));
  return wanted.filter((flag) => !given.has(flagName(flag)));
}

/** V8 reads `--max_opt` and `--max-opt` alike. */
function flagName(arg: string): string {
  return (arg.split('=')[0] ?? arg).replaceAll('_', '-');
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/** Replaces this process with itself under the flags of `wanted` it lacks, unless it has
 * them all, was re-executed already, or runs on a Node.js without process.execve (before
 * 22.15: it then runs with V8's defaults). `checked`: the flags are not Petri's defaults, so
 * Node.js is asked first whether it takes them (a typo is an error that says which flag,
 * not a server that never starts). */
export async function reexecWithNodeFlags(wanted: readonly string[], checked: boolean): Promise<void> {
  if (process.env[APPLIED] !== undefined) {
    delete process.env[APPLIED];
    return;
  }
  const execve = (process as unknown as { execve?: Execve }).execve;
  const missing = missingNodeFlags(wanted, process.execArgv, process.env.NODE_OPTIONS);
  if (missing.length === 0 || typeof execve !== 'function') return;
  if (checked) await refuseUnknownFlags(missing);
  const [script, ...args] = process.argv.slice(1);
  execve.call(
    process,
    process.execPath,
    [process.execPath, ...missing, ...process.execArgv, script ?? '', ...args],
    { ...process.env, [APPLIED]: '1' },
  );
}

async function refuseUnknownFlags(flags: string[]): Promise<void> {
  const probe = await exec(process.execPath, [...flags, '-e', ''], { timeoutMs: 10_000 });
  if (probe.code === 0) return;
  const said = (probe.stderr.trim().split('\n')[0] || `exit ${probe.code ?? probe.signal}`).trim();
  throw new UserError(
    'bad_request',
    `nodeFlags: Node.js ${process.version} does not start with ${flags.join(' ')} (${said}); fix or remove the flag in the config file`,
  );
}

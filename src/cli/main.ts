// The `petri` command: wires the topics together and turns every outcome into an exit
// code: 0 done, 1 failed (the error on one line of stderr), 2 called wrongly. The
// top-level src/main.ts calls runCli; `petri server` is dispatched before it gets here.
import { readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { Command, CommanderError } from 'commander';
// The error classes alone, not the client's index: that loads its HTTP stack, which a
// command loads when it first talks to the API (context.ts), not when the CLI starts.
import { ApiError, ConnectionError } from '../client/errors.js';
import { errorMessage, isUserError } from '../lib/errors.js';
import { registerAddons } from './addons.js';
import { registerApps } from './apps.js';
import { registerAudience } from './audience.js';
import { registerAudit } from './audit.js';
import { registerBuilds } from './builds.js';
import { registerConfig } from './config.js';
import { createContext } from './context.js';
import { registerDeploy } from './deploy.js';
import { registerDomains } from './domains.js';
import { registerEgress } from './egress.js';
import { registerGit } from './git.js';
import { registerGraduate } from './graduate.js';
import { registerInventory } from './inventory.js';
import { registerLogin } from './login.js';
import { registerPasswd } from './login-password.js';
import { registerLogs } from './logs.js';
import { registerMail } from './mail.js';
import { registerMetrics } from './metrics.js';
import { registerOpen } from './open.js';
import { type Io, type Output, UsageError } from './output.js';
import { registerPs } from './ps.js';
import { registerQuotas } from './quotas.js';
import { registerReleases } from './releases.js';
import { registerReport } from './report.js';
import { processTerminal, registerRun, type Terminal } from './run.js';
import { registerStacks } from './stacks.js';
import { registerStatus } from './status.js';
import { registerTeams } from './teams.js';
import { registerTokens } from './tokens.js';
import { registerUsers } from './users.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** `argv` is what the user typed after `petri` (process.argv.slice(2)); io defaults to the process's. */
export async function runCli(argv: string[], io: Partial<Io> = {}): Promise<number> {
  const fullIo: Io = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    cwd: io.cwd ?? process.cwd(),
    stdin: io.stdin,
  };
  const abort = new AbortController();
  const ctx = createContext(fullIo, abort.signal);
  const stopOnClosedPipe = onClosedPipe(fullIo, () => {
    ctx.out.closed = true;
    abort.abort();
  });
  try {
    const program = buildProgram(fullIo);
    registerLogin(program, ctx);
    registerPasswd(program, ctx);
    registerApps(program, ctx);
    registerDeploy(program, ctx);
    registerLogs(program, ctx);
    registerOpen(program, ctx);
    registerConfig(program, ctx);
    registerReleases(program, ctx);
    registerPs(program, ctx);
    registerEgress(program, ctx);
    registerDomains(program, ctx);
    registerMail(program, ctx);
    registerBuilds(program, ctx);
    registerStacks(program, ctx);
    registerGit(program, ctx);
    registerUsers(program, ctx);
    registerTokens(program, ctx);
    registerTeams(program, ctx);
    registerAudit(program, ctx);
    registerQuotas(program, ctx);
    registerGraduate(program, ctx);
    registerInventory(program, ctx);
    registerReport(program, ctx);
    registerAudience(program, ctx);
    registerMetrics(program, ctx);
    registerStatus(program, ctx);
    // `petri run` and `petri addons shell` attach the same terminal.
    const terminal: Terminal = {
      ...processTerminal(),
      stdin: fullIo.stdin ?? process.stdin,
      stdout: byteWriter(fullIo.stdout),
      stderr: byteWriter(fullIo.stderr),
    };
    registerRun(program, ctx, terminal);
    registerAddons(program, ctx, terminal);
    // Bare `petri` is a request for help, not a mistake.
    await program.parseAsync(argv.length === 0 ? ['--help'] : argv, { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    return report(ctx.out, err, fullIo.env);
  } finally {
    stopOnClosedPipe();
  }
}

function buildProgram(io: Io): Command {
  // Settings given here are inherited by every command added with .command() afterwards.
  return new Command('petri')
    .description('Petri: a self-hosted platform for experiments')
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .addHelpText(
      'after',
      '\nPETRI_URL and PETRI_TOKEN override what `petri login` stored; PETRI_PROFILE picks a stored login; NO_COLOR turns colour off.',
    );
}

function report(out: Output, err: unknown, env: Record<string, string | undefined>): number {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help or version) through configureOutput.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_OK;
    if (err.code === 'commander.executeSubCommandAsync') return err.exitCode;
    return EXIT_USAGE;
  }
  if (err instanceof UsageError) {
    out.error(err.message);
    return EXIT_USAGE;
  }
  if (err instanceof ApiError || err instanceof ConnectionError || isUserError(err)) {
    out.error(err.message);
    return EXIT_FAILED;
  }
  // A bug or an unexpected failure: still one line, with the stack when asked for.
  out.error(errorMessage(err));
  if (env.PETRI_DEBUG && err instanceof Error && err.stack) out.note(err.stack);
  return EXIT_FAILED;
}

/** Calls stop when stdout's reader goes away (EPIPE); returns a function that unhooks it. */
function onClosedPipe(io: Io, stop: () => void): () => void {
  const stream = io.stdout as Partial<NodeJS.WritableStream>;
  if (typeof stream.on !== 'function' || typeof stream.off !== 'function') return () => {};
  const listener = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') stop();
    else throw err;
  };
  stream.on('error', listener);
  return () => stream.off?.('error', listener);
}

function version(): string {
  // package.json is two levels up from both src/cli/main.ts and dist/cli/main.js.
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** `petri run` writes bytes; a caller's text writer gets them decoded, split sequences
 * included (the process's own streams take bytes as they are). */
function byteWriter(writer: Io['stdout']): Terminal['stdout'] {
  if (writer === process.stdout || writer === process.stderr) return writer as unknown as Terminal['stdout'];
  const decoder = new StringDecoder('utf8');
  return {
    isTTY: writer.isTTY,
    write: (chunk: Uint8Array) => writer.write(decoder.write(Buffer.from(chunk))),
  };
}

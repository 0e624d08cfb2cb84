// The `petri` command: wires the topics together and turns every outcome into an exit
// code: 0 done, 1 failed (the error on one line of stderr), 2 called wrongly. The
// top-level src/main.ts calls runCli; `petri server` is dispatched before it gets here.
import { createRequire } from 'node:module';
import { StringDecoder } from 'node:string_decoder';
// Types only: commander is loaded when a command needs it (see appsList).
import type { Command, CommanderError } from 'commander';
// The error classes alone, not the client's index: that loads its HTTP stack, which a
// command loads when it first talks to the API (context.ts), not when the CLI starts.
import { ApiError, ConnectionError } from '../client/errors.js';
import { errorMessage, isUserError } from '../lib/errors.js';
import { type Context, createContext } from './context.js';
import { type Io, type Output, UsageError } from './output.js';
import type { Terminal } from './run.js';

// Required, not imported: an ES import of node:fs reads every one of its exports, which
// loads its streams (some 2 ms of a command's CPU).
const require = createRequire(import.meta.url);

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
    const list = appsList(argv);
    if (list) {
      await (await import('./apps-list.js')).listApps(ctx, list);
      return EXIT_OK;
    }
    const [commander, { processTerminal }] = await Promise.all([import('commander'), import('./run.js')]);
    commanderError = commander.CommanderError;
    const program = buildProgram(commander.Command, fullIo);
    // `petri run` and `petri addons shell` attach the same terminal.
    const terminal: Terminal = {
      ...processTerminal(),
      stdin: fullIo.stdin ?? process.stdin,
      stdout: byteWriter(fullIo.stdout),
      stderr: byteWriter(fullIo.stderr),
    };
    for (const register of await topicsFor(argv[0])) register(program, ctx, terminal);
    // Bare `petri` is a request for help, not a mistake.
    await program.parseAsync(argv.length === 0 ? ['--help'] : argv, { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    return report(ctx.out, err, fullIo.env);
  } finally {
    stopOnClosedPipe();
  }
}

type Register = (program: Command, ctx: Context, terminal: Terminal) => void;

/** commander's error class, once a command has loaded commander. */
let commanderError: typeof CommanderError | undefined;

/**
 * `petri apps` and `petri apps --json` (`list` given or not): the commands typed and scripted
 * most often run without commander, whose load and the program's build were a third of their
 * CPU time beyond Node.js's own start. Exactly these words: any other (`--help`, a flag more)
 * goes through commander, which answers them as before.
 */
function appsList(argv: string[]): { json: boolean } | undefined {
  if (argv[0] !== 'apps') return undefined;
  const rest = argv.slice(argv[1] === 'list' ? 2 : 1);
  if (rest.length === 0) return { json: false };
  if (rest.length === 1 && rest[0] === '--json') return { json: true };
  return undefined;
}

/**
 * The topics, each with the commands it adds to `petri`, in the order help lists them. A
 * command loads its own topic's module and no other (`petri apps` does without deploy's
 * tar, the sign-in listener and the 25 others: most of a command's time is loading);
 * help, bare `petri` and a command not listed here load them all. test/cli/topics.test.ts
 * keeps the names in step with what each topic registers.
 */
export const TOPICS: { commands: string[]; load: () => Promise<Register> }[] = [
  { commands: ['login', 'logout', 'profiles'], load: async () => (await import('./login.js')).registerLogin },
  { commands: ['passwd'], load: async () => (await import('./login-password.js')).registerPasswd },
  { commands: ['apps'], load: async () => (await import('./apps.js')).registerApps },
  { commands: ['deploy'], load: async () => (await import('./deploy.js')).registerDeploy },
  { commands: ['logs'], load: async () => (await import('./logs.js')).registerLogs },
  { commands: ['open'], load: async () => (await import('./open.js')).registerOpen },
  { commands: ['config'], load: async () => (await import('./config.js')).registerConfig },
  { commands: ['releases', 'rollback'], load: async () => (await import('./releases.js')).registerReleases },
  { commands: ['ps', 'restart'], load: async () => (await import('./ps.js')).registerPs },
  { commands: ['egress'], load: async () => (await import('./egress.js')).registerEgress },
  { commands: ['domains'], load: async () => (await import('./domains.js')).registerDomains },
  { commands: ['certs'], load: async () => (await import('./certs.js')).registerCerts },
  { commands: ['mail'], load: async () => (await import('./mail.js')).registerMail },
  { commands: ['builds'], load: async () => (await import('./builds.js')).registerBuilds },
  { commands: ['stacks'], load: async () => (await import('./stacks.js')).registerStacks },
  { commands: ['git'], load: async () => (await import('./git.js')).registerGit },
  { commands: ['users', 'whoami'], load: async () => (await import('./users.js')).registerUsers },
  { commands: ['tokens'], load: async () => (await import('./tokens.js')).registerTokens },
  { commands: ['teams'], load: async () => (await import('./teams.js')).registerTeams },
  { commands: ['audit'], load: async () => (await import('./audit.js')).registerAudit },
  { commands: ['quotas'], load: async () => (await import('./quotas.js')).registerQuotas },
  { commands: ['graduate'], load: async () => (await import('./graduate.js')).registerGraduate },
  { commands: ['inventory'], load: async () => (await import('./inventory.js')).registerInventory },
  { commands: ['report'], load: async () => (await import('./report.js')).registerReport },
  { commands: ['audience'], load: async () => (await import('./audience.js')).registerAudience },
  { commands: ['metrics'], load: async () => (await import('./metrics.js')).registerMetrics },
  { commands: ['status'], load: async () => (await import('./status.js')).registerStatus },
  { commands: ['run'], load: async () => (await import('./run.js')).registerRun },
  { commands: ['addons'], load: async () => (await import('./addons.js')).registerAddons },
];

/** The registrations a command needs: its topic's, or every topic's. */
function topicsFor(command: string | undefined): Promise<Register[]> {
  const own = TOPICS.filter((topic) => command !== undefined && topic.commands.includes(command));
  return Promise.all((own.length > 0 ? own : TOPICS).map((topic) => topic.load()));
}

function buildProgram(Command: typeof import('commander').Command, io: Io): Command {
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
  if (commanderError && err instanceof commanderError) {
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
    const { readFileSync } = require('node:fs') as typeof import('node:fs');
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

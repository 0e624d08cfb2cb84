// `petri run -- CMD ARGS`: a one-off command in the app's sandbox with its current release
// and config, attached to this terminal (Heroku's `heroku run`). The CLI exits with the
// command's exit status (128+N when a signal ended it).
import { constants } from 'node:os';
import { type Command, CommanderError } from 'commander';
import type { RunExit, RunRequest } from '../client/run.js';
import { appOption, resolveAppName } from './app-name.js';
import { type Context, USER_AGENT } from './context.js';
import { UsageError } from './output.js';
import { type Login, requireLogin } from './settings.js';

/** The process's own streams and signals; tests hand in their own. */
export interface Terminal {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: { write(chunk: Uint8Array): unknown; isTTY?: boolean; columns?: number; rows?: number };
  stderr: { write(chunk: Uint8Array): unknown };
  /** Subscribes to a signal of this process; returns the unsubscribe. */
  onSignal(signal: 'SIGINT' | 'SIGWINCH', listener: () => void): () => void;
}

export function processTerminal(): Terminal {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    onSignal(signal, listener) {
      process.on(signal, listener);
      return () => process.off(signal, listener);
    },
  };
}

interface RunOptions {
  app?: string;
  tty: boolean;
}

export function registerRun(program: Command, ctx: Context, terminal: Terminal = processTerminal()): void {
  program
    .command('run')
    .description("run a command in the app's sandbox with its release and config, attached to this terminal")
    .argument('<command...>', "the command and its arguments, after '--'; a single argument runs with sh -c")
    .addOption(appOption())
    .option('--no-tty', 'no terminal even when this is one: separate stdout and stderr, stdin piped')
    .addHelpText(
      'after',
      "\nExamples:\n  petri run -a blog -- python manage.py migrate\n  petri run -a blog 'ls -la | wc -l'",
    )
    .action(async (words: string[], opts: RunOptions) => {
      if (words.length === 0) throw new UsageError('no command given: petri run -a APP -- CMD ARGS');
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const login = requireLogin(await ctx.settings());
      const tty = opts.tty !== false && terminal.stdin.isTTY === true && terminal.stdout.isTTY === true;
      const request: RunRequest = {
        app: appName,
        // One argument is a shell line ('ls | wc'), as with heroku run; several are argv.
        command: words.length === 1 ? (words[0] as string) : words,
        tty,
      };
      if (tty && terminal.stdout.columns && terminal.stdout.rows) {
        request.cols = terminal.stdout.columns;
        request.rows = terminal.stdout.rows;
      }
      const code = await runAttached(login, request, terminal);
      // Commander's way for a subcommand to set the exit code; main.ts returns it as is.
      if (code !== 0) throw new CommanderError(code, 'commander.executeSubCommandAsync', `exit ${code}`);
    });
}

/** Runs the request with this terminal attached; resolves with the exit code to pass on. */
export async function runAttached(login: Login, request: RunRequest, terminal: Terminal): Promise<number> {
  const cleanups: Array<() => void> = [];
  // The WebSocket client: loaded by the commands that attach a terminal, not by every one.
  const { openRun } = await import('../client/run.js');
  try {
    return await new Promise<number>((resolve, reject) => {
      const session = openRun({ ...login, userAgent: USER_AGENT }, request, {
        stdout: (chunk) => terminal.stdout.write(chunk),
        stderr: (chunk) => terminal.stderr.write(chunk),
        exit: (result) => resolve(exitCode(result)),
        error: reject,
      });
      const { stdin } = terminal;
      const onData = (chunk: Buffer | string) => session.writeStdin(chunk);
      const onEnd = () => session.eof();
      stdin.on('data', onData);
      // A terminal has no end: Ctrl-D is a byte for the remote terminal to interpret.
      if (!request.tty) stdin.on('end', onEnd);
      cleanups.push(() => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        // Reading no more lets the process exit.
        stdin.pause();
      });
      if (request.tty && stdin.setRawMode) {
        // Raw: every key (Ctrl-C, arrows, Ctrl-D) goes to the remote terminal as bytes.
        stdin.setRawMode(true);
        cleanups.push(() => stdin.setRawMode?.(false));
        cleanups.push(
          terminal.onSignal('SIGWINCH', () => {
            const { columns, rows } = terminal.stdout;
            if (columns && rows) session.resize(columns, rows);
          }),
        );
      }
      // Without a terminal (or a kill -INT from elsewhere): Ctrl-C is for the command.
      cleanups.push(terminal.onSignal('SIGINT', () => session.signal('SIGINT')));
      stdin.resume();
    });
  } finally {
    // Always, whatever happened: a terminal left in raw mode is unusable.
    for (const cleanup of cleanups.reverse()) cleanup();
  }
}

/** The command's code, or 128+N for signal N (the shell's convention); 1 when unknown. */
export function exitCode(result: RunExit): number {
  if (result.code !== null) return result.code;
  const n = result.signal ? constants.signals[result.signal as keyof typeof constants.signals] : undefined;
  return n === undefined ? 1 : 128 + n;
}

// The command line of a one-off (`petri run`) as plain data. With a terminal, the command
// runs under util-linux `script`, which gives it a pseudo-terminal without a native module:
// script owns the pty master and copies bytes between it and our pipes, so Ctrl-C (\x03)
// written to stdin reaches the line discipline and becomes SIGINT for the foreground job.

export const SCRIPT = '/usr/bin/script';
export const STTY = '/usr/bin/stty';
/** Prefix of one-off cgroup names: '_' is outside the instance id charset, so the driver's
 * list() never mistakes a one-off for an instance (like tasks). */
export const RUN_PREFIX = 'run_';

const MAX_TERMINAL_SIZE = 10_000;
/** Words sh reads as themselves: left unquoted, so the command stays readable in `ps`. */
const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** argv as one sh command line that runs exactly argv: every word is single-quoted unless
 * it is plain, and a quote inside is closed, escaped and reopened ('\''). */
export function shellQuote(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('cannot quote an empty command');
  return argv
    .map((arg) => {
      if (arg.includes('\0')) throw new Error('command arguments must not contain NUL');
      if (PLAIN.test(arg)) return arg;
      return `'${arg.replace(/'/g, `'\\''`)}'`;
    })
    .join(' ');
}

export interface InteractivePlan {
  command: string[];
  tty: boolean;
  cols?: number;
  rows?: number;
}

/** What bwrap runs inside the sandbox: the command itself, or with a terminal, `script`
 * running sh, which sets the terminal's size and then becomes the command. `-e` passes the
 * command's exit status on, `-f` flushes every write (no lag on the terminal), `-q` keeps
 * script's own banners out, and the typescript file is /dev/null: nothing is recorded. */
export function interactiveCommand(plan: InteractivePlan): string[] {
  if (plan.command.length === 0) throw new Error('command must not be empty');
  if (!plan.tty) return [...plan.command];
  const size = terminalSize(plan.cols, plan.rows);
  // stty failing (it should not) must not keep the command from running.
  const setSize = size ? `${STTY} cols ${size.cols} rows ${size.rows} 2>/dev/null; ` : '';
  return [SCRIPT, '-q', '-e', '-f', '-c', `${setSize}exec ${shellQuote(plan.command)}`, '/dev/null'];
}

/** Both or neither: a size is only applied whole. */
export function terminalSize(cols?: number, rows?: number): { cols: number; rows: number } | undefined {
  if (cols === undefined && rows === undefined) return undefined;
  for (const [name, n] of [
    ['cols', cols],
    ['rows', rows],
  ] as const) {
    if (n === undefined || !Number.isInteger(n) || n < 1 || n > MAX_TERMINAL_SIZE) {
      throw new Error(`terminal ${name} must be an integer from 1 to ${MAX_TERMINAL_SIZE}, got ${n}`);
    }
  }
  return { cols: cols as number, rows: rows as number };
}

/** argv that resizes the terminal whose slave `ttyPath` names (a /proc/PID/fd/0 link),
 * run as the app's user: stty's TIOCSWINSZ also sends SIGWINCH to the foreground job. */
export function resizeArgv(uid: number, gid: number, ttyPath: string, cols: number, rows: number): string[] {
  const size = terminalSize(cols, rows)!;
  return [
    '/usr/bin/setpriv',
    `--reuid=${uid}`,
    `--regid=${gid}`,
    '--clear-groups',
    '--',
    STTY,
    '-F',
    ttyPath,
    'cols',
    String(size.cols),
    'rows',
    String(size.rows),
  ];
}

// `petri logs`: an app's recent output, and with -f everything it writes from now on.
import type { Command } from 'commander';
import type { LogLine } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { type Output, type Style, shortTime, UsageError } from './output.js';

interface LogsOptions {
  app?: string;
  lines?: number;
  follow?: boolean;
  json?: boolean;
}

export function registerLogs(program: Command, ctx: Context): void {
  program
    .command('logs')
    .description("show an app's logs: its processes, builds and releases")
    .addOption(appOption())
    .option('-n, --lines <n>', 'how many past lines to show', parseLines)
    .option('-f, --follow', 'keep following new lines until interrupted')
    .option('--json', 'print one JSON object per line')
    .action(async (opts: LogsOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      const lines = client.logs(appName, { lines: opts.lines, follow: opts.follow, signal: ctx.signal });
      for await (const line of lines) {
        if (opts.json) ctx.out.jsonLine(line);
        else ctx.out.line(formatLine(ctx.out, line));
      }
    });
}

export function formatLine(out: Output, line: LogLine): string {
  return `${out.paint('dim', shortTime(line.time))} ${out.paint(sourceStyle(line.source), `${line.source}:`)} ${line.text}`;
}

// One colour per process type, the same on every run, so web and worker lines stand apart.
const PALETTE: Style[] = ['cyan', 'magenta', 'blue', 'green', 'yellow'];

function sourceStyle(source: string): Style {
  const type = source.split('.')[0] ?? source;
  let hash = 0;
  for (const char of type) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length]!;
}

function parseLines(value: string): number {
  if (!/^\d+$/.test(value.trim()))
    throw new UsageError(`-n must be a whole number of lines like 100, got '${value}'`);
  return Number(value);
}

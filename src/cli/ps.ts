// `petri ps`, `petri ps scale` and `petri restart`: an app's processes with their state and
// usage (and, for a crashed one, how it ended), how many of each type run, and restarts.
// A sleeping app has no processes but keeps its formation: both are said.
import type { Command } from 'commander';
import type { Formation, Process, ProcessState } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { type Cell, orDash, type Style, shortTime, UsageError } from './output.js';

const STATE_STYLE: Record<ProcessState, Style> = {
  up: 'green',
  starting: 'yellow',
  stopping: 'yellow',
  crashed: 'red',
};

// The server refuses more too; checked here so a typo (web=300) costs no request.
export const MAX_SCALE = 100;

interface PsOptions {
  app?: string;
  json?: boolean;
}

export function registerPs(program: Command, ctx: Context): void {
  const ps = program.command('ps').description("list an app's processes, or scale them");

  ps.command('list', { isDefault: true })
    .description('list processes: state, uptime, restarts, memory, CPU, release (the default)')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: PsOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const list = await (await ctx.client()).listProcesses(appName);
      if (opts.json) return ctx.out.json(list);
      if (list.sleepingSince) {
        ctx.out.line(
          `sleeping since ${shortTime(list.sleepingSince)} (the first request wakes it; petri apps wake ${appName})`,
        );
        // Processes still stopping as it falls asleep are shown under it.
        if (list.processes.length > 0) ctx.out.line();
      } else if (list.processes.length === 0) {
        ctx.out.line(`${appName} runs no processes; deploy with 'petri deploy -a ${appName}'`);
      }
      if (list.processes.length > 0) printProcesses(ctx, list.processes);
      if (Object.keys(list.formation).length > 0) {
        ctx.out.line();
        ctx.out.line(`formation: ${formationText(list.formation)}`);
      }
    });

  ps.command('scale')
    .description('set how many processes of each type run, e.g. web=3 worker=1')
    .argument('<counts...>', `TYPE=N, N from 0 to ${MAX_SCALE}`)
    .addOption(appOption())
    .option('--json', 'print the new formation as JSON')
    .action(async (counts: string[], opts: PsOptions) => {
      const wanted = parseScale(counts);
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const formation = await (await ctx.client()).updateFormation(appName, wanted);
      if (opts.json) return ctx.out.json(formation);
      ctx.out.line(`Scaled to ${formationText(formation)}`);
    });

  program
    .command('restart')
    .description("restart an app's processes, or those of one type; returns at once")
    .argument('[type]', 'only processes of this type, e.g. web')
    .addOption(appOption())
    .action(async (type: string | undefined, opts: { app?: string }) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const names = await (await ctx.client()).restart(appName, type);
      if (names.length === 0) {
        ctx.out.line(`${appName} runs no ${type ? `${type} ` : ''}processes: nothing to restart`);
        return;
      }
      ctx.out.line(`Restarting ${names.join(', ')}...`);
    });
}

function printProcesses(ctx: Context, processes: Process[]): void {
  const { out } = ctx;
  const rows: Cell[][] = processes.map((p) => [
    p.name,
    { text: p.state, style: STATE_STYLE[p.state] },
    p.uptimeSeconds === null ? '-' : formatSeconds(p.uptimeSeconds),
    String(p.restarts),
    p.memoryBytes === null ? '-' : formatBytes(p.memoryBytes),
    p.cpuSeconds === null ? '-' : formatSeconds(p.cpuSeconds),
    orDash(p.release),
  ]);
  const [header, ...lines] = out.tableLines(
    ['NAME', 'STATE', 'UPTIME', 'RESTARTS', 'MEM', 'CPU', 'RELEASE'],
    rows,
  );
  out.line(header);
  processes.forEach((p, i) => {
    out.line(lines[i]);
    if (p.state !== 'crashed') return;
    // Why it crashed, right under it: the first thing anyone looks for next.
    if (p.lastExit) out.line(`  ${out.paint('red', p.lastExit)}`);
    for (const text of p.lastLines) out.line(out.paint('dim', `  | ${text}`));
  });
}

function formationText(formation: Formation): string {
  return Object.entries(formation)
    .map(([type, count]) => `${type}=${count}`)
    .join(', ');
}

/** TYPE=N arguments, N a whole number from 0 to MAX_SCALE, each type once. */
export function parseScale(args: string[]): Formation {
  const formation: Formation = {};
  for (const arg of args) {
    const match = /^([^=\s]+)=(\d+)$/.exec(arg.trim());
    const count = match ? Number(match[2]) : Number.NaN;
    if (!match || count > MAX_SCALE) {
      throw new UsageError(`expected TYPE=N with N from 0 to ${MAX_SCALE}, like web=2, got '${arg}'`);
    }
    const type = match[1]!;
    if (type in formation) throw new UsageError(`${type} is given twice; give each type once`);
    formation[type] = count;
  }
  return formation;
}

/** 45s, 5m 2s, 2h 3m, 3d 4h; a fraction under ten seconds keeps a tenth (CPU time is often that small). */
export function formatSeconds(total: number): string {
  if (total < 10 && !Number.isInteger(total)) return `${(Math.floor(total * 10) / 10).toFixed(1)}s`;
  const s = Math.floor(total);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** MiB with a tenth, GiB from 1 GiB on: the units the limits are set in. */
export function formatBytes(bytes: number): string {
  const mib = bytes / 1024 ** 2;
  if (mib < 1024) return `${mib.toFixed(1)} MiB`;
  return `${(mib / 1024).toFixed(1)} GiB`;
}

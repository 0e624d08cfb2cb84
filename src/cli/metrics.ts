// `petri metrics --app NAME [--since 1h|24h|7d]`: how an app is doing, as the router and the
// cgroups saw it: one row per figure with its total and a sparkline over the period, and
// the memory and CPU of each process type against its limits.
import type { Command } from 'commander';
import type { AppMetrics, MetricsPoint } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import { printable } from './audit.js';
import type { Context } from './context.js';
import { UsageError } from './output.js';

interface MetricsOptions {
  app?: string;
  since: string;
  json?: boolean;
}

const SINCE = /^[1-9][0-9]{0,4}[mhd]$/;
const BARS = '▁▂▃▄▅▆▇█';
/** Sparklines are at most this wide: points are summed into this many columns. */
const WIDTH = 40;

export function registerMetrics(program: Command, ctx: Context): void {
  program
    .command('metrics')
    .description("an app's requests, status classes, latency, memory, CPU, restarts and alerts over a period")
    .addOption(appOption())
    .option('--since <period>', 'how far back: 1h, 24h, 7d (up to 90d)', '1h')
    .option('--json', 'print JSON')
    .action(async (opts: MetricsOptions) => {
      if (!SINCE.test(opts.since)) {
        throw new UsageError(
          `--since must be a number and a unit (m minutes, h hours, d days), like 1h, 24h or 7d; got '${opts.since}'`,
        );
      }
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const m = await (await ctx.client()).appMetrics(appName, opts.since);
      if (opts.json) return ctx.out.json(m);
      printMetrics(ctx, m);
    });
}

function printMetrics(ctx: Context, m: AppMetrics): void {
  const t = m.totals;
  const minutes = Math.max(1, (Date.now() - Date.parse(m.since)) / 60_000);
  const ms = (v: number | null) => (v === null ? '–' : v >= 1e9 ? '>10 s' : `≤${v} ms`);
  const series = (pick: (p: MetricsPoint) => number) => sparkline(m.points.map(pick));
  ctx.out.line(`${m.app}: since ${m.since} (per ${m.resolution})`);
  ctx.out.table(
    ['FIGURE', 'VALUE', 'OVER TIME'],
    [
      ['requests', `${t.requests} (${(t.requests / minutes).toFixed(1)}/min)`, series((p) => p.requests)],
      ['2xx', String(t.s2xx), series((p) => p.s2xx)],
      ['3xx', String(t.s3xx), series((p) => p.s3xx)],
      ['4xx', String(t.s4xx), series((p) => p.s4xx)],
      ['5xx', String(t.s5xx), series((p) => p.s5xx)],
      ['latency p50', ms(t.p50Ms), series((p) => p.p50Ms ?? 0)],
      ['latency p95', ms(t.p95Ms), series((p) => p.p95Ms ?? 0)],
      ['latency p99', ms(t.p99Ms), series((p) => p.p99Ms ?? 0)],
      [
        'memory (max)',
        // All its processes together (the sum); the limit is each one's: the rows per type say
        // how close one process came to it.
        `${mib(t.memoryMaxBytes)}, all processes (limit ${m.limits.memoryMiB} MiB each)`,
        series((p) => p.memoryMaxBytes),
      ],
      ['CPU', `${(t.cpuMs / 1000).toFixed(1)} s (limit ${m.limits.cpus} CPU)`, series((p) => p.cpuMs)],
      ...typeRows(m),
      [
        'restarts',
        `${t.restarts}${t.oomKills ? ` (${t.oomKills} by the memory limit)` : ''}`,
        series((p) => p.restarts),
      ],
      [
        'wakes',
        `${t.wakes}${t.wakes ? ` (${Math.round(t.wakeMs / t.wakes)} ms each)` : ''}`,
        series((p) => p.wakes),
      ],
      ['mail sent', String(m.mailSent), ''],
      ['probes failed', `${t.probesFailed} of ${t.probesOk + t.probesFailed}`, series((p) => p.probesFailed)],
    ],
  );
  const a = m.availability;
  ctx.out.line(`availability: 24 h ${pct(a.h24)}, 7 d ${pct(a.d7)}, 30 d ${pct(a.d30)}`);
  for (const alert of m.alerts) {
    ctx.out.line(
      `${alert.endedAt ? 'alert (ended)' : 'ALERT'} ${alert.kind} since ${alert.startedAt}: ${alert.message}`,
    );
  }
}

/** Two rows per process type, memory and CPU, each against the type's limits, with
 * sparklines on the same time axis as the app's rows ("web mem  42/256 MiB"). */
function typeRows(m: AppMetrics): string[][] {
  const rows: string[][] = [];
  for (const t of m.processTypes) {
    const byAt = new Map(t.points.map((p) => [p.at, p]));
    const series = (pick: (p: AppMetrics['processTypes'][number]['points'][number]) => number) =>
      sparkline(m.points.map((point) => (byAt.has(point.at) ? pick(byAt.get(point.at)!) : 0)));
    // A name the server did not check could carry a terminal escape: shown, not obeyed.
    const name = printable(t.type);
    // The limits are per process: memory is the highest one's, CPU all of theirs together.
    const several = t.instances > 1;
    const limit = `${m.limits.cpus} CPU${several ? ` × ${t.instances}` : ''}`;
    const cpu =
      t.cpuLimitMs > 0
        ? `${(t.cpuMs / 1000).toFixed(1)} s, ${percent(t.cpuMs / t.cpuLimitMs)} of ${limit}`
        : `${(t.cpuMs / 1000).toFixed(1)} s (limit ${limit})`;
    rows.push(
      [
        `${name} mem`,
        `${mibOnly(t.memoryMaxBytes)}/${t.memoryLimitMiB} MiB${several ? ` (highest of ${t.instances})` : ''}`,
        series((p) => p.memoryMaxBytes),
      ],
      [`${name} CPU`, cpu, series((p) => p.cpuMs)],
    );
  }
  return rows;
}

/** Values as block characters, summed into at most WIDTH columns; empty when all are 0. */
export function sparkline(values: readonly number[]): string {
  if (values.length === 0) return '';
  const per = Math.ceil(values.length / WIDTH);
  const cols: number[] = [];
  for (let i = 0; i < values.length; i += per) cols.push(values.slice(i, i + per).reduce((s, v) => s + v, 0));
  const max = Math.max(...cols);
  if (max <= 0) return BARS[0]!.repeat(cols.length);
  return cols.map((v) => BARS[Math.min(BARS.length - 1, Math.floor((v / max) * (BARS.length - 1)))]).join('');
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
/** The number alone, for "42/256 MiB". */
const mibOnly = (bytes: number) => (bytes / 1048576).toFixed(0);
/** A share of a limit: whole percents, below 1% one decimal, and a little use is not 0%. */
const percent = (share: number) =>
  share === 0 ? '0%' : share < 0.001 ? '<0.1%' : `${(share * 100).toFixed(share < 0.01 ? 1 : 0)}%`;
export const pct = (v: number | null) => (v === null ? 'not measured' : `${(v * 100).toFixed(2)}%`);

// `petri egress`: whom an app talks to (declared in petri.toml against attempted through
// the egress proxy), and `petri egress report`, every app's egress for the operator.
import type { Command } from 'commander';
import type { EgressAttempt } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { shortTime } from './output.js';

interface EgressOptions {
  app?: string;
  json?: boolean;
}

export function registerEgress(program: Command, ctx: Context): void {
  const egress = program.command('egress').description('hosts an app may reach and the ones it tried to');

  egress
    .command('show', { isDefault: true })
    .description("an app's declared egress hosts against the ones it attempted (the default)")
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: EgressOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const { declared, attempts } = await (await ctx.client()).egress(appName);
      if (opts.json) return ctx.out.json({ declared, attempts });
      ctx.out.line(
        declared.length > 0
          ? `declared in petri.toml: ${declared.join(', ')}`
          : 'declared in petri.toml: nothing (add [network] egress = ["host:port"] to reach a host)',
      );
      if (attempts.length === 0) {
        ctx.out.line('attempted: nothing yet');
        return;
      }
      ctx.out.table(
        ['HOST', 'ALLOWED', 'REFUSED', 'LAST SEEN', 'WHY REFUSED'],
        summarise(attempts).map((r) => [
          `${r.host}:${r.port}`,
          String(r.allowed),
          String(r.refused),
          shortTime(r.lastSeen),
          r.lastReason ?? '',
        ]),
      );
    });

  egress
    .command('report')
    .description("every app's egress attempts in one table (admins)")
    .option('--json', 'print JSON')
    .option('--csv', 'print CSV, for a spreadsheet')
    .action(async (opts: { json?: boolean; csv?: boolean }) => {
      const client = await ctx.client();
      if (opts.csv) {
        ctx.io.stdout.write(await client.egressReportCsv());
        return;
      }
      const attempts = await client.egressReport();
      if (opts.json) return ctx.out.json(attempts);
      ctx.out.table(
        ['APP', 'HOST', 'RESULT', 'COUNT', 'LAST SEEN'],
        attempts.map((a) => [
          a.app,
          `${a.host}:${a.port}`,
          a.allowed ? 'allowed' : 'refused',
          String(a.count),
          shortTime(a.lastSeen),
        ]),
      );
    });
}

interface HostSummary {
  host: string;
  port: number;
  allowed: number;
  refused: number;
  lastSeen: string;
  lastReason: string | null;
}

/** One row per host:port, allowed and refused counts side by side. */
function summarise(attempts: EgressAttempt[]): HostSummary[] {
  const rows = new Map<string, HostSummary>();
  for (const a of attempts) {
    const key = `${a.host}:${a.port}`;
    const row = rows.get(key) ?? {
      host: a.host,
      port: a.port,
      allowed: 0,
      refused: 0,
      lastSeen: a.lastSeen,
      lastReason: null,
    };
    if (a.allowed) row.allowed += a.count;
    else {
      row.refused += a.count;
      row.lastReason = a.lastReason;
    }
    if (a.lastSeen > row.lastSeen) row.lastSeen = a.lastSeen;
    rows.set(key, row);
  }
  return [...rows.values()];
}

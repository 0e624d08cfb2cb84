// `petri inventory`: every app the caller may see (admins and auditors: all; others: their
// teams'), with its team, owner, stage, data class, egress, add-ons, use and expiry: what
// runs, whose it is, what data it holds, whom it talks to and when it ends. --json and
// --csv carry every field (description, privacy note, limits, requests ...).
import type { Command } from 'commander';
import type { InventoryRow } from '../client/index.js';
import type { Context } from './context.js';
import type { Cell } from './output.js';

interface InventoryOptions {
  team?: string;
  stage?: string;
  data?: string;
  expiring?: string;
  json?: boolean;
  csv?: boolean;
}

export function registerInventory(program: Command, ctx: Context): void {
  program
    .command('inventory')
    .description(
      "every app with its team, owner, stage, data class, egress, add-ons, use and expiry (admins and auditors: all; others: their teams')",
    )
    .option('--team <team>', "only this team's apps")
    .option('--stage <stage>', 'only apps at this stage: experiment, graduating, graduated, archived')
    .option('--data <class>', 'only apps that declare this data class: none, anonymous, personal, sensitive')
    .option('--expiring <within>', 'only experiments that expire within this long: 14d, 36h, 2w')
    .option('--json', 'print JSON (every field)')
    .option('--csv', 'print CSV, for a spreadsheet (every field)')
    .addHelpText(
      'after',
      "\nExample: which experiments hold personal data and talk to an outside host?\n  petri inventory --data personal --json | jq '.[] | select(.egressReached != []) | .name'",
    )
    .action(async (opts: InventoryOptions) => {
      const client = await ctx.client();
      const filters = { team: opts.team, stage: opts.stage, data: opts.data, expiring: opts.expiring };
      if (opts.csv) {
        ctx.io.stdout.write(await client.inventoryCsv(filters));
        return;
      }
      const apps = await client.inventory(filters);
      if (opts.json) return ctx.out.json(apps);
      if (apps.length === 0) {
        ctx.out.line('No apps match');
        return;
      }
      ctx.out.table(
        [
          'NAME',
          'TEAM',
          'OWNER',
          'STAGE',
          'DATA',
          'EXPIRES',
          'EGRESS',
          'ADD-ONS',
          'MEMORY',
          'LAST REQUEST',
          'STACK',
        ],
        apps.map(inventoryCells),
      );
    });
}

function inventoryCells(row: InventoryRow): Cell[] {
  const data: Cell =
    row.dataClass === 'sensitive' && !row.approved
      ? { text: 'sensitive!', style: 'yellow' }
      : row.approved && row.dataClass !== 'none'
        ? `${row.dataClass} ok`
        : row.dataClass;
  const expires: Cell =
    row.expiredAt !== null && row.stage === 'experiment'
      ? { text: 'expired', style: 'red' }
      : (row.expiresAt?.slice(0, 10) ?? '-');
  return [
    row.name,
    row.team,
    row.owner,
    row.stage,
    data,
    expires,
    egressText(row),
    row.addons.length === 0
      ? '-'
      : row.addons.map((a) => `${a.name}${a.sizeBytes === null ? '' : ` ${size(a.sizeBytes)}`}`).join(', '),
    row.memoryBytes === null ? '-' : `${size(row.memoryBytes)}/${row.limits.memoryMiB}M`,
    row.lastRequestAt?.slice(0, 10) ?? '-',
    row.stack ?? '-',
  ];
}

/** Hosts it reached (those it did not declare marked), else what it declared. */
function egressText(row: InventoryRow): string {
  if (row.egressReached.length === 0 && row.egressDeclared.length === 0) return '-';
  const reached = row.egressReached.join(', ');
  const declared = row.egressDeclared.length;
  return reached === '' ? `${declared} declared, none reached` : reached;
}

function size(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))}K`;
  if (bytes < 1024 * 1024 * 1024) return `${Math.round(bytes / 1024 / 1024)}M`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(1)}G`;
}

// `petri audit`: the audit trail as you may see it (your teams' events and your own actions;
// admins and auditors everything), and `petri audit verify`, the check of its hash chain.
import type { Command } from 'commander';
import type { AuditEvent, AuditFilters, AuditOutcome } from '../client/index.js';
import { UserError } from '../lib/errors.js';
import type { Context } from './context.js';
import { type Cell, orDash, shortTime, UsageError } from './output.js';

interface AuditOptions {
  app?: string;
  team?: string;
  user?: string;
  since?: string;
  until?: string;
  action?: string;
  outcome?: string;
  limit?: string;
  before?: string;
  json?: boolean;
}

const OUTCOMES: readonly AuditOutcome[] = ['ok', 'denied', 'failed'];

export function registerAudit(program: Command, ctx: Context): void {
  const audit = program
    .command('audit')
    .description('who changed what, when, from where, and how it ended (and who was refused)');

  audit
    .command('list', { isDefault: true })
    .description("events, newest first: your teams' and your own (admins and auditors: all); the default")
    .option('--app <app>', "an app's events")
    .option('--team <team>', "a team's events")
    .option('--user <email>', "a user's actions (e-mail or name)")
    .option('--since <when>', 'from this long ago (30m, 12h, 7d, 2w) or this date or time (2026-03-01)')
    .option('--until <when>', 'before this long ago or this date or time')
    .option('--action <action>', 'one action (config.change) or all that start so (config, POST)')
    .option('--outcome <outcome>', `only ${OUTCOMES.join(', ')}`)
    .option('--limit <n>', 'at most this many events (1 to 1000; 100 by default)')
    .option('--before <id>', 'events older than this one (the next page)')
    .option('--json', 'print JSON ({events, next})')
    .action(async (opts: AuditOptions) => {
      const filters = filtersOf(opts);
      const page = await (await ctx.client()).audit(filters);
      if (opts.json) return ctx.out.json(page);
      if (page.events.length === 0) {
        ctx.out.line('no events');
        return;
      }
      ctx.out.table(
        ['WHEN', 'WHO', 'VIA', 'ACTION', 'TARGET', 'OUTCOME', 'FROM'],
        page.events.map((e) => [
          shortTime(e.at),
          printable(e.actor),
          e.via,
          printable(e.action),
          printable(e.target),
          outcomeCell(e),
          orDash(e.ip === null ? null : printable(e.ip)),
        ]),
      );
      if (page.next !== null) {
        ctx.out.note(`older events: the same command with --before ${page.next}`);
      }
    });

  audit
    .command('verify')
    .description(
      "check the trail's hash chain: finds an event changed, deleted or inserted since (admins, auditors)",
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const result = await (await ctx.client()).verifyAudit();
      if (opts.json) ctx.out.json(result);
      if (!result.ok) {
        const bad = result.firstBad;
        throw new UserError(
          'conflict',
          `the audit trail is broken at event ${bad?.id}: ${bad?.reason}; ${result.checked} events before it check out`,
        );
      }
      if (opts.json) return;
      ctx.out.line(
        result.last === null
          ? 'the audit trail is empty'
          : `the audit trail is intact: ${result.checked} events checked; the newest is ${result.last.id}, sha256 ${result.last.hash}`,
      );
    });
}

function filtersOf(opts: AuditOptions): AuditFilters {
  const filters: AuditFilters = {};
  for (const key of ['app', 'team', 'user', 'since', 'until', 'action'] as const) {
    if (opts[key] !== undefined) filters[key] = opts[key];
  }
  if (opts.outcome !== undefined) {
    if (!(OUTCOMES as readonly string[]).includes(opts.outcome)) {
      throw new UsageError(`--outcome takes ${OUTCOMES.join(', ')}; got '${opts.outcome}'`);
    }
    filters.outcome = opts.outcome as AuditOutcome;
  }
  if (opts.limit !== undefined) filters.limit = wholeNumber('--limit', opts.limit, 1000);
  if (opts.before !== undefined) filters.before = wholeNumber('--before', opts.before);
  return filters;
}

function wholeNumber(flag: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > max) {
    throw new UsageError(
      `${flag} takes a whole number from 1${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}; got '${text}'`,
    );
  }
  return n;
}

function outcomeCell(e: AuditEvent): Cell {
  const text = e.outcome === 'ok' || e.status === null ? e.outcome : `${e.outcome} ${e.status}`;
  return e.outcome === 'ok' ? text : { text, style: e.outcome === 'denied' ? 'yellow' : 'red' };
}

/** Text anyone could have put in the trail (a name tried at sign-in, a path) shown without
 * its control characters: an escape sequence or a newline must not rewrite the auditor's
 * terminal or forge a row. Bidirectional overrides are shown too. */
export function printable(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

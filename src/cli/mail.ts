// `petri mail`: what an app sent through the mail relay (counts, last messages), one message
// (`show`), new credentials (`rotate`), an admin's limits (`limits`), every app's mail
// (`report`) and the mail domain's DNS records (`dns`).
import type { Command } from 'commander';
import type { AppMail, MailLimitsChange } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { shortTime, UsageError } from './output.js';

interface AppOptions {
  app?: string;
  json?: boolean;
}

export function registerMail(program: Command, ctx: Context): void {
  const mail = program
    .command('mail')
    .description("an app's mail through Petri's relay: sent, refused, limits");

  mail
    .command('status', { isDefault: true })
    .description('counts for the hour, day and month, and the last messages (the default)')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: AppOptions) => {
      const name = await resolveAppName(opts.app, [ctx.io.cwd]);
      const summary = await (await ctx.client()).mail(name);
      if (opts.json) return ctx.out.json(summary);
      printSummary(ctx, summary);
    });

  mail
    .command('show')
    .description('one message: its deliveries, and its text in capture mode (no smarthost)')
    .argument('<id>', "the message's id (petri mail lists them)")
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (id: string, opts: AppOptions) => {
      const name = await resolveAppName(opts.app, [ctx.io.cwd]);
      const detail = await (await ctx.client()).mailMessage(name, id);
      if (opts.json) return ctx.out.json(detail);
      const m = detail.message;
      ctx.out.keyValues([
        ['id', m.id],
        ['at', m.at],
        ['to', m.recipients.join(', ')],
        ['subject', m.subject],
        ['status', m.status],
        ['size', `${m.size} bytes`],
        ...(m.reason ? ([['reason', m.reason]] as [string, string][]) : []),
      ]);
      if (detail.deliveries.length > 0) {
        ctx.out.line();
        ctx.out.table(
          ['RECIPIENT', 'STATUS', 'ATTEMPTS', 'LAST ERROR'],
          detail.deliveries.map((d) => [d.recipient, d.status, String(d.attempts), d.lastError ?? '']),
        );
      }
      if (detail.raw !== null) {
        ctx.out.line();
        ctx.io.stdout.write(detail.raw.endsWith('\n') ? detail.raw : `${detail.raw}\n`);
      }
    });

  mail
    .command('rotate')
    .description('new SMTP_URL and MAIL_API_TOKEN for the app: the old ones stop working at once')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: AppOptions) => {
      const name = await resolveAppName(opts.app, [ctx.io.cwd]);
      const rotated = await (await ctx.client()).mailRotate(name);
      if (opts.json) return ctx.out.json(rotated);
      ctx.out.line(`Rotated the mail credentials of ${rotated.app}: ${rotated.note}`);
    });

  mail
    .command('limits')
    .description("an app's mail limits (admins): messages per hour and day, recipients per message")
    .argument('<app>', 'the app')
    .option('--per-hour <n>', "messages per hour ('default': the server's)")
    .option('--per-day <n>', "messages per day ('default': the server's)")
    .option('--recipients <n>', "recipients per message ('default': the server's)")
    .option('--resume', 'end a pause now')
    .option('--json', 'print JSON')
    .action(
      async (
        app: string,
        opts: { perHour?: string; perDay?: string; recipients?: string; resume?: boolean; json?: boolean },
      ) => {
        const change: MailLimitsChange = {
          ...(opts.perHour !== undefined && { perHour: limit('--per-hour', opts.perHour) }),
          ...(opts.perDay !== undefined && { perDay: limit('--per-day', opts.perDay) }),
          ...(opts.recipients !== undefined && { recipients: limit('--recipients', opts.recipients) }),
          ...(opts.resume && { resume: true }),
        };
        const client = await ctx.client();
        const summary =
          Object.keys(change).length > 0 ? await client.mailLimits(app, change) : await client.mail(app);
        if (opts.json) return ctx.out.json(summary.limits);
        printLimits(ctx, summary);
      },
    );

  mail
    .command('report')
    .description("every app's mail over the last 30 days (admins)")
    .option('--json', 'print JSON')
    .option('--csv', 'print CSV, for a spreadsheet')
    .action(async (opts: { json?: boolean; csv?: boolean }) => {
      const client = await ctx.client();
      if (opts.csv) {
        ctx.io.stdout.write(await client.mailReportCsv());
        return;
      }
      const rows = await client.mailReport();
      if (opts.json) return ctx.out.json(rows);
      if (rows.length === 0) return ctx.out.line('no app sent mail in the last 30 days');
      ctx.out.table(
        ['APP', 'SENT', 'QUEUED', 'DEFERRED', 'BOUNCED', 'REFUSED', 'CAPTURED'],
        rows.map((r) => [
          r.app,
          ...[r.sent, r.queued, r.deferred, r.bounced, r.refused, r.captured].map(String),
        ]),
      );
    });

  mail
    .command('dns')
    .description('the DNS records of the mail domain: the DKIM key Petri signs with, SPF and DMARC')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const dns = await (await ctx.client()).mailDns();
      if (opts.json) return ctx.out.json(dns);
      ctx.out.line(`Publish these records for ${dns.domain}${dns.relay ? ` (smarthost ${dns.relay})` : ''}:`);
      for (const r of dns.records) {
        ctx.out.line();
        ctx.out.line(`# ${r.why}`);
        ctx.out.line(`${r.name}. IN ${r.type} ${txtStrings(r.value)}`);
      }
    });
}

/** A TXT value in strings of at most 255 characters, as zone files and DNS want it. */
function txtStrings(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return parts.join(' ');
}

function limit(flag: string, value: string): number | null {
  if (value === 'default') return null;
  if (!/^[1-9][0-9]{0,7}$/.test(value)) {
    throw new UsageError(`${flag} must be a whole number from 1 to 10000000, or 'default', got '${value}'`);
  }
  return Number(value);
}

function printLimits(ctx: Context, s: AppMail): void {
  ctx.out.keyValues([
    ['per hour', String(s.limits.perHour)],
    ['per day', String(s.limits.perDay)],
    ['recipients', `${s.limits.recipients} per message`],
    ['size', `${Math.round(s.limits.maxBytes / 1024)} KiB per message`],
    ['audience only', s.limits.restrictToAudience ? 'yes, while the app is invite or staff' : 'no'],
    ['paused', s.pausedUntil ? `until ${shortTime(s.pausedUntil)} (ten refusals in a row)` : 'no'],
  ]);
}

function printSummary(ctx: Context, s: AppMail): void {
  ctx.out.line(`${s.app} sends as ${s.address}`);
  if (s.pausedUntil) {
    ctx.out.warn(`mail is paused until ${shortTime(s.pausedUntil)} after ten refusals in a row`);
  }
  ctx.out.table(
    ['', 'SENT', 'QUEUED', 'DEFERRED', 'BOUNCED', 'REFUSED', 'CAPTURED'],
    (
      [
        ['hour', s.hour],
        ['day', s.day],
        ['month', s.month],
      ] as const
    ).map(([label, c]) => [
      label,
      ...[c.sent, c.queued, c.deferred, c.bounced, c.refused, c.captured].map(String),
    ]),
  );
  ctx.out.line(
    `limits: ${s.limits.perHour}/hour, ${s.limits.perDay}/day, ${s.limits.recipients} recipients, ${Math.round(s.limits.maxBytes / 1024)} KiB`,
  );
  if (s.last.length === 0) return;
  ctx.out.line();
  ctx.out.table(
    ['ID', 'TIME', 'TO', 'SUBJECT', 'STATUS', 'SIZE'],
    s.last.map((m) => [
      m.id.slice(0, 8),
      shortTime(m.at),
      m.recipients.length > 1 ? `${m.recipients[0]} +${m.recipients.length - 1}` : (m.recipients[0] ?? ''),
      m.subject.length > 40 ? `${m.subject.slice(0, 39)}…` : m.subject,
      m.status === 'refused' && m.reason ? `refused: ${m.reason.slice(0, 60)}` : m.status,
      String(m.size),
    ]),
  );
}

// `petri domains`: an app's custom domains (issue 20). `add` claims a name and prints what to
// set up in DNS (where the name points, and the TXT record that proves it is the team's) and
// where Petri will check it; the list shows each one's state (pending
// verification, issuing, active, no certificate, failing with the reason) and its
// certificate's expiry; both say what HTTPS custom domains get when browsers would not trust it.
import type { Command } from 'commander';
import type { AppDomain, DomainAdded } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import type { Cell } from './output.js';

interface DomainOptions {
  app?: string;
  json?: boolean;
}

export function registerDomains(program: Command, ctx: Context): void {
  const appName = (app: string | undefined) => resolveAppName(app, [ctx.io.cwd]);
  const domains = program.command('domains').description("an app's custom domains: add, list, remove");

  domains
    .command('list', { isDefault: true })
    .description("the app's custom domains and their state (the default)")
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: DomainOptions) => {
      const name = await appName(opts.app);
      const list = await (await ctx.client()).domains(name);
      if (opts.json) return ctx.out.json(list);
      if (list.domains.length === 0) {
        ctx.out.line(
          `${name} has no custom domain; add one with 'petri domains add www.example.org --app ${name}'`,
        );
        return;
      }
      ctx.out.table(
        ['DOMAIN', 'STATE', 'CERTIFICATE', 'SINCE', 'WHY'],
        list.domains.map((d) => [
          shown(d),
          stateCell(d),
          certificateCell(d),
          (d.verifiedAt ?? d.createdAt).slice(0, 10),
          d.status === 'failing' ? (d.reason ?? 'no answer') : '',
        ]),
      );
      if (list.https) {
        ctx.out.line('');
        ctx.out.line(`Note: ${list.https}.`);
      }
    });

  domains
    .command('add')
    .description(
      "claim a custom domain for the app; it routes once its DNS points here and holds the claim's token",
    )
    .argument('<host>', 'e.g. www.example.org')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (host: string, opts: DomainOptions) => {
      const name = await appName(opts.app);
      const added = await (await ctx.client()).addDomain(name, host);
      if (opts.json) return ctx.out.json(added);
      for (const line of setupLines(name, added)) ctx.out.line(line);
    });

  domains
    .command('remove')
    .description('remove a custom domain: the app stops answering for it')
    .argument('<host>', 'the domain as listed')
    .addOption(appOption())
    .action(async (host: string, opts: DomainOptions) => {
      const name = await appName(opts.app);
      await (await ctx.client()).removeDomain(name, host);
      ctx.out.line(`${host} removed from ${name}: it no longer routes there`);
    });
}

/** What `add` prints: the DNS records to set up, and where Petri looks for them. */
export function setupLines(app: string, { domain, setup, https }: DomainAdded): string[] {
  const name = shown(domain);
  const records = [
    `  ${domain.host}  CNAME  ${setup.cname}.`,
    ...(setup.addresses.length > 0
      ? [
          '  or, for a name that cannot be a CNAME (an apex like example.org):',
          ...setup.addresses.map((a) => `  ${domain.host}  ${a.includes(':') ? 'AAAA' : 'A'}  ${a}`),
        ]
      : []),
  ];
  return [
    `${name} claimed for ${app}; it routes once Petri sees the records below in its DNS.`,
    '',
    'Set up in DNS:',
    ...records,
    '  and, to prove the name is yours (keep it while the domain is in use):',
    `  ${domain.verification.txt}  TXT  "${domain.verification.token}"`,
    '',
    'Petri then checks it (first within seconds, then with growing pauses):',
    `  TXT ${domain.verification.txt} holds the token`,
    `  GET ${domain.verification.url}`,
    `  must answer ${domain.verification.token} (the router serves it; nothing to do on your side)`,
    '',
    ...(https ? [`Note: ${https}.`, ''] : []),
    `See its state with 'petri domains --app ${app}'.`,
  ];
}

function shown(d: AppDomain): string {
  return d.unicode === d.host ? d.host : `${d.unicode} (${d.host})`;
}

function stateCell(d: AppDomain): Cell {
  if (d.status === 'failing') return { text: 'failing', style: 'red' };
  if (d.status === 'active') return { text: 'active', style: 'green' };
  return { text: d.status, style: 'yellow' };
}

/** The expiry, highlighted within 14 days of it. */
function certificateCell(d: AppDomain): Cell {
  if (!d.certificate) return '-';
  const days = Math.floor((Date.parse(d.certificate.notAfter) - Date.now()) / 86_400_000);
  const text = `until ${d.certificate.notAfter.slice(0, 10)}`;
  return days < 14 ? { text: `${text} (${Math.max(days, 0)} days)`, style: 'yellow' } : text;
}

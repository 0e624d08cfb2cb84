// `petri certs` (admins and auditors): the router's certificates, one per host, with where
// each comes from, its issuer and expiry, and how the last attempt to get or renew it went.
// Certificates expiring within 14 days (or none yet) are highlighted, failures in red.
import type { Command } from 'commander';
import type { CertificateInfo, OcspInfo } from '../client/index.js';
import type { Context } from './context.js';
import { type Cell, orDash, shortTime } from './output.js';

export function registerCerts(program: Command, ctx: Context): void {
  program
    .command('certs')
    .description("the router's certificates: issuer, expiry, last renewal attempt and outcome (admins)")
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await ctx.client()).certificates();
      if (opts.json) return ctx.out.json(list);
      const fallback = list.default;
      if (fallback) {
        const text = `default certificate (every other host): ${fallback.names.join(', ')}; ${fallback.issuer}; expires ${shortTime(fallback.notAfter)} (${fallback.daysLeft} days left); OCSP ${ocspText(fallback.ocsp)}`;
        ctx.out.line(fallback.expiringSoon ? ctx.out.paint('yellow', text) : text);
        ctx.out.line();
      }
      if (list.certificates.length === 0) {
        ctx.out.line(
          list.mode === 'acme'
            ? 'no certificates yet: each app host gets one from the ACME directory within seconds'
            : `no certificates of their own (tls.mode ${list.mode}: the router's default certificate serves every app host; custom domains get their own once verified)`,
        );
        return;
      }
      ctx.out.table(
        ['HOST', 'SOURCE', 'ISSUER', 'EXPIRES', 'DAYS LEFT', 'OCSP', 'LAST ATTEMPT', 'OUTCOME'],
        list.certificates.map((c) => row(c)),
      );
      const failing = list.certificates.filter((c) => c.failures > 0).length;
      const soon = list.certificates.filter((c) => c.expiringSoon).length;
      if (soon > 0 || failing > 0) {
        ctx.out.line();
        ctx.out.line(
          `${soon} expiring within 14 days or missing, ${failing} failing; renewal starts ${list.renewBeforeDays} days before expiry`,
        );
      }
    });
}

function row(c: CertificateInfo): Cell[] {
  const warn = c.expiringSoon ? ('yellow' as const) : undefined;
  const daysLeft = c.daysLeft === null ? '-' : String(c.daysLeft);
  return [
    c.host,
    c.source,
    orDash(c.issuer),
    { text: c.notAfter === null ? 'none yet' : shortTime(c.notAfter), style: warn },
    { text: daysLeft, style: warn },
    ocspCell(c.ocsp),
    c.lastAttemptAt === null ? '-' : shortTime(c.lastAttemptAt),
    outcome(c),
  ];
}

function outcome(c: CertificateInfo): Cell {
  if (c.lastOutcome === null) return '-';
  if (c.failures === 0) return { text: c.lastOutcome, style: 'green' };
  const next = c.nextAttemptAt === null ? '' : `; next attempt ${shortTime(c.nextAttemptAt)}`;
  const times = c.failures > 1 ? ` (${c.failures} times)` : '';
  return { text: `failed${times}: ${c.lastOutcome}${next}`, style: 'red' };
}

/** OCSP stapling in a word: `none` when the issuer offers none (the local CA, Let's Encrypt). */
function ocspText(ocsp: OcspInfo | null): string {
  return ocsp === null ? '-' : ocsp.state;
}

function ocspCell(ocsp: OcspInfo | null): Cell {
  const text = ocspText(ocsp);
  if (ocsp?.state === 'revoked' || ocsp?.state === 'failing') return { text, style: 'red' };
  if (ocsp?.state === 'stapled') return { text, style: 'green' };
  return text;
}

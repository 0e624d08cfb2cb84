// `petri tokens`: your API tokens (for scripts and CI) listed without their secret, made
// with an expiry, and revoked by id.
import type { Command } from 'commander';
import type { TokenInfo } from '../client/index.js';
import type { Context } from './context.js';
import { UsageError } from './output.js';
import { relativeTime } from './releases.js';

export function registerTokens(program: Command, ctx: Context): void {
  const tokens = program.command('tokens').description('list, make and revoke your API tokens');

  tokens
    .command('list', { isDefault: true })
    .description('list your tokens: name, kind, created, last used, expiry (never the secret; the default)')
    .option('--user <email>', "someone else's tokens (admins and auditors)")
    .option('--json', 'print JSON')
    .action(async (opts: { user?: string; json?: boolean }) => {
      const list = await (await ctx.client()).listTokens(opts.user);
      if (opts.json) return ctx.out.json(list);
      if (list.tokens.length === 0) {
        ctx.out.line(`${list.user} has no tokens; make one with 'petri tokens create NAME'`);
        return;
      }
      const now = Date.now();
      ctx.out.table(
        ['ID', 'NAME', 'KIND', 'CREATED', 'LAST USED', 'EXPIRES'],
        list.tokens.map((t) => [
          t.current ? `${t.id}*` : String(t.id),
          t.name,
          t.kind,
          relativeTime(t.createdAt, now),
          t.lastUsedAt === null ? 'never' : relativeTime(t.lastUsedAt, now),
          expiry(t),
        ]),
      );
      if (list.tokens.some((t) => t.current)) ctx.out.note('* the token this command used');
    });

  tokens
    .command('create')
    .description('make a token; it is printed once, never shown again')
    .argument('<name>', 'what it is for, e.g. ci-deploy')
    .option('--expires <duration>', 'when it expires: 90d (the default), 12h, 4w, 1y; never (admins only)')
    .option('--bot <name>', 'make it for a bot (admins), e.g. to replace its token')
    .option('--metrics', 'good for GET /metrics only: for a Prometheus scraper (admins and auditors)')
    .option('--json', 'print JSON (with the secret)')
    .action(
      async (name: string, opts: { expires?: string; bot?: string; metrics?: boolean; json?: boolean }) => {
        const made = await (await ctx.client()).createToken({
          name,
          ...expiresOption(opts.expires),
          ...(opts.bot === undefined ? {} : { bot: opts.bot }),
          ...(opts.metrics ? { metrics: true } : {}),
        });
        if (opts.json) return ctx.out.json(made);
        // The secret alone on stdout (TOKEN=$(petri tokens create ci)); the rest for people, on stderr.
        ctx.out.note(
          `Created token ${made.token.id} '${made.token.name}' for ${made.user}, ${expirySentence(made.token.expiresAt)}. Copy it now; it is not shown again:`,
        );
        ctx.out.line(made.secret);
        ctx.out.note("Use it as PETRI_TOKEN, or with 'petri login --url URL --token TOKEN'.");
      },
    );

  tokens
    .command('revoke')
    .description('revoke a token: it is refused from its next use on')
    .argument('<id>', "the token's id, from 'petri tokens'")
    .action(async (id: string) => {
      if (!/^[1-9][0-9]{0,15}$/.test(id)) throw new UsageError(`a token id is a number like 12; got '${id}'`);
      const token = await (await ctx.client()).revokeToken(Number(id));
      ctx.out.line(
        `Revoked token ${token.id} '${token.name}'${token.current ? ' (the one this CLI used)' : ''}`,
      );
    });
}

/** --expires as the API takes it (checked here for the shape only; the server decides the
 * bounds): nothing when not given. */
export function expiresOption(value: string | undefined): { expires?: string } {
  if (value === undefined) return {};
  const expires = value.trim().toLowerCase();
  if (!/^([0-9]{1,6}[hdwy]|never)$/.test(expires)) {
    throw new UsageError(`--expires takes a duration like 90d, 12h, 4w or 1y, or never; got '${value}'`);
  }
  return { expires };
}

/** never, the day it expires, or when it expired. */
export function expiry(token: Pick<TokenInfo, 'expiresAt' | 'expired'>): string {
  if (token.expiresAt === null) return 'never';
  const day = token.expiresAt.slice(0, 10);
  return token.expired ? `expired ${day}` : day;
}

/** "never expires" or "expires 2027-03-01", for sentences. */
export function expirySentence(expiresAt: string | null): string {
  return expiresAt === null ? 'never expires' : `expires ${expiresAt.slice(0, 10)}`;
}

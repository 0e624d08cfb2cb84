// `petri audience`: who may reach an app (issue 15). Shows and sets its audience (public,
// staff, invite), its invitees, its invite links and the visitors who consented to its
// notice. The server decides what is allowed (public with personal data is an admin's
// approval) and says so when it refuses.
import { type Command, InvalidArgumentError } from 'commander';
import type { Audience, AudienceLink } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { orDash, shortTime } from './output.js';

const MEANING: Record<string, string> = {
  public: 'anyone',
  staff: 'anyone who can sign in to Petri',
  invite: 'only the people invited and invite links',
};

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d{1,6}$/.test(value) || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError('give a whole number of people, like 50');
  }
  return n;
}

function linkId(value: string): number {
  if (!/^\d{1,12}$/.test(value) || Number(value) < 1) {
    throw new InvalidArgumentError("give the link's ID as 'petri audience links' shows it");
  }
  return Number(value);
}

export function registerAudience(program: Command, ctx: Context): void {
  const appName = (app: string | undefined) => resolveAppName(app, [ctx.io.cwd]);
  const audience = program
    .command('audience')
    .description('who may reach an app: its audience, invitees, invite links and visitors');

  const show = (view: Audience) => {
    ctx.out.keyValues([
      ['app', view.app],
      ['audience', `${view.audience} (${MEANING[view.audience] ?? view.audience})`],
      ['notice', `version ${view.noticeVersion}`],
      ['invitees', String(view.invitees.length)],
    ]);
    if (view.invitees.length > 0) {
      ctx.out.line();
      ctx.out.table(
        ['EMAIL', 'INVITED BY', 'INVITED'],
        view.invitees.map((i) => [i.email, orDash(i.invitedBy), shortTime(i.invitedAt)]),
      );
    }
  };

  audience
    .command('show', { isDefault: true })
    .description("show the app's audience and who is invited (the default)")
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: { app?: string; json?: boolean }) => {
      const view = await (await ctx.client()).audience(await appName(opts.app));
      if (opts.json) return ctx.out.json(view);
      show(view);
    });

  audience
    .command('set')
    .description('set the audience: public, staff (the default for new apps) or invite')
    .argument('<audience>', 'public, staff or invite')
    .addOption(appOption())
    .option('--approve', 'admins: approve making an app with personal or sensitive data public (audited)')
    .option('--json', 'print JSON')
    .action(async (value: string, opts: { app?: string; approve?: boolean; json?: boolean }) => {
      const name = await appName(opts.app);
      const view = await (await ctx.client()).setAudience(name, value, opts.approve);
      if (opts.json) return ctx.out.json(view);
      ctx.out.line(`${name} is now for ${view.audience}: ${MEANING[view.audience] ?? view.audience}`);
      if (view.audience === 'invite' && view.invitees.length === 0) {
        ctx.out.line(
          `Nobody is invited yet: 'petri audience invite EMAIL... --app ${name}' or 'petri audience links create --app ${name}'`,
        );
      }
    });

  audience
    .command('invite')
    .description("put people on the app's list by e-mail")
    .argument('<email...>', 'one or more e-mail addresses')
    .addOption(appOption())
    .option('--link', 'also print a personal single-use sign-in link for each (no account needed)')
    .option('--send', 'mail each person their personal link (through the mail relay)')
    .option('--json', 'print JSON')
    .action(
      async (emails: string[], opts: { app?: string; link?: boolean; send?: boolean; json?: boolean }) => {
        const name = await appName(opts.app);
        const links = opts.send ? 'send' : opts.link ? 'print' : 'none';
        const view = await (await ctx.client()).inviteToAudience(name, emails, links);
        if (opts.json) return ctx.out.json(view);
        const added = view.added ?? [];
        if (added.length > 0) ctx.out.line(`Invited to ${name}: ${added.join(', ')}`);
        const already = emails.map((e) => e.trim().toLowerCase()).filter((e) => !added.includes(e));
        if (already.length > 0) ctx.out.line(`Already invited: ${[...new Set(already)].join(', ')}`);
        if (opts.send) {
          for (const link of view.links ?? []) ctx.out.line(`Mailed ${link.email} their personal link`);
        }
        for (const link of opts.link ? (view.links ?? []) : []) {
          ctx.out.line(
            `Personal link for ${link.email} (once, until ${link.expiresAt.slice(0, 10)}; shown only now):`,
          );
          ctx.out.line(`  ${link.url}`);
        }
        if (view.audience !== 'invite') {
          ctx.out.line(
            `${name} is for ${view.audience}, so the list does not matter until 'petri audience set invite --app ${name}'`,
          );
        }
      },
    );

  audience
    .command('remove')
    .description("take someone off the app's list; every visitor of the app signs in again")
    .argument('<email>', 'their e-mail address')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (email: string, opts: { app?: string; json?: boolean }) => {
      const name = await appName(opts.app);
      const view = await (await ctx.client()).removeFromAudience(name, email);
      if (opts.json) return ctx.out.json(view);
      ctx.out.line(`Removed ${email.trim().toLowerCase()} from ${name}'s list`);
    });

  const links = audience.command('links').description("the app's invite links: list, create, revoke");

  const linkRows = (list: AudienceLink[]) =>
    list.map((l) => [
      String(l.id),
      l.state,
      `${l.usesLeft}/${l.maxUses}`,
      shortTime(l.expiresAt),
      orDash(l.createdBy),
    ]);

  links
    .command('list', { isDefault: true })
    .description('list the invite links, live or not (the default)')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: { app?: string; json?: boolean }) => {
      const name = await appName(opts.app);
      const list = await (await ctx.client()).audienceLinks(name);
      if (opts.json) return ctx.out.json(list);
      if (list.length === 0) {
        ctx.out.line(
          `${name} has no invite links; create one with 'petri audience links create --app ${name}'`,
        );
        return;
      }
      ctx.out.table(['ID', 'STATE', 'USES LEFT', 'EXPIRES', 'CREATED BY'], linkRows(list));
    });

  links
    .command('create')
    .description('create an invite link and print its URL (shown once: keep it)')
    .addOption(appOption())
    .option('--uses <n>', 'how many people it may let in (default 50)', positiveInteger)
    .option('--expires <period>', 'how long it works: 7d (default), 12h, 2w; at most 90d')
    .option('--json', 'print JSON')
    .action(async (opts: { app?: string; uses?: number; expires?: string; json?: boolean }) => {
      const name = await appName(opts.app);
      const created = await (await ctx.client()).createAudienceLink(name, {
        ...(opts.uses === undefined ? {} : { uses: opts.uses }),
        ...(opts.expires === undefined ? {} : { expires: opts.expires }),
      });
      if (opts.json) return ctx.out.json(created);
      ctx.out.line(created.url);
      ctx.out.note(
        `Link ${created.link.id} lets in ${created.link.maxUses} people until ${shortTime(created.link.expiresAt)}; this is the only time its URL is shown. Revoke it with 'petri audience links revoke ${created.link.id} --app ${name}'`,
      );
    });

  links
    .command('revoke')
    .description('revoke an invite link; those it let in sign in again')
    .argument('<id>', "the link's ID (petri audience links)", linkId)
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (id: number, opts: { app?: string; json?: boolean }) => {
      const name = await appName(opts.app);
      const link = await (await ctx.client()).revokeAudienceLink(name, id);
      if (opts.json) return ctx.out.json(link);
      ctx.out.line(`Revoked link ${link.id} of ${name}`);
    });

  audience
    .command('visitors')
    .description('who consented to the notice, when, to which version; their last visit')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: { app?: string; json?: boolean }) => {
      const name = await appName(opts.app);
      const list = await (await ctx.client()).audienceVisitors(name);
      if (opts.json) return ctx.out.json(list);
      if (list.visitors.length === 0) {
        ctx.out.line(`Nobody has consented to ${name}'s notice yet`);
        return;
      }
      ctx.out.table(
        ['VISITOR', 'NOTICE', 'CONSENTED', 'LAST VISIT', 'LEFT'],
        list.visitors.map((v) => [
          // What a visitor's sign-in gave: never a terminal escape.
          v.visitor.replace(/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, '?'),
          v.noticeVersion === list.noticeVersion
            ? `v${v.noticeVersion}`
            : `v${v.noticeVersion} (now v${list.noticeVersion})`,
          shortTime(v.consentedAt),
          v.lastVisitAt ? shortTime(v.lastVisitAt) : '-',
          v.withdrawnAt ? shortTime(v.withdrawnAt) : '-',
        ]),
      );
    });
}

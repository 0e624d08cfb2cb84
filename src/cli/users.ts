// `petri users` (admins; auditors list): people and bots, invitations, disabling and
// enabling, platform roles, bots for CI; and `petri whoami`, who the CLI is signed in as.
import type { Command } from 'commander';
import type { InvitationInfo, UserInfo } from '../client/index.js';
import type { Context } from './context.js';
import { type Cell, orDash, UsageError } from './output.js';
import { relativeTime } from './releases.js';
import { expiresOption, expirySentence } from './tokens.js';

const PLATFORM_ROLES = ['member', 'auditor', 'admin'] as const;
const TEAM_ROLES = ['admin', 'member', 'viewer'] as const;
const BOT_ROLES = ['member', 'viewer'] as const;

function oneOf<T extends string>(what: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new UsageError(`${what} is one of ${allowed.join(', ')}; got '${value}'`);
  return value as T;
}

export function registerUsers(program: Command, ctx: Context): void {
  const users = program
    .command('users')
    .description('people and bots: list, invite, disable, enable, roles, bots (admins; auditors list)');

  users
    .command('list', { isDefault: true })
    .description('list everyone: role, kind, provider, last seen, apps (the default)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await ctx.client()).listUsers();
      if (opts.json) return ctx.out.json(list);
      const now = Date.now();
      ctx.out.table(
        ['NAME', 'ROLE', 'KIND', 'PROVIDER', 'LAST SEEN', 'APPS', 'STATUS'],
        list.map((u) => [
          u.email ?? u.name,
          u.role,
          u.kind,
          u.provider,
          u.lastSeenAt === null ? 'never' : relativeTime(u.lastSeenAt, now),
          String(u.apps),
          status(u),
        ]),
      );
    });

  users
    .command('invite')
    .description('invite someone by e-mail: prints a link that works once, for 7 days')
    .argument('<email>', 'their e-mail address (their sign-in must bring the same one)')
    .option('--role <role>', 'their platform role: member (the default), auditor or admin')
    .option('--team <team>', 'a team they join on sign-up')
    .option('--team-role <role>', 'their role in --team: member (the default), viewer or admin')
    .option('--json', 'print JSON (with the link)')
    .action(
      async (email: string, opts: { role?: string; team?: string; teamRole?: string; json?: boolean }) => {
        if (opts.teamRole !== undefined && opts.team === undefined)
          throw new UsageError('--team-role needs --team TEAM');
        const made = await (await ctx.client()).inviteUser({
          email,
          ...(opts.role === undefined ? {} : { role: oneOf('--role', opts.role, PLATFORM_ROLES) }),
          ...(opts.team === undefined ? {} : { team: opts.team }),
          ...(opts.teamRole === undefined
            ? {}
            : { teamRole: oneOf('--team-role', opts.teamRole, TEAM_ROLES) }),
        });
        if (opts.json) return ctx.out.json(made);
        const i = made.invitation;
        const team = i.team === null ? '' : `, in team ${i.team} as ${i.teamRole}`;
        // The link alone on stdout (LINK=$(petri users invite ...)); the rest for people, on stderr.
        ctx.out.note(
          `Invited ${i.email} as ${i.role}${team}. The link works once, until ${i.expiresAt.slice(0, 10)}; it is not shown again:`,
        );
        ctx.out.line(made.link);
        ctx.out.note(`Send it to them; signing in with ${i.email} (or 'petri login --invite LINK') uses it.`);
      },
    );

  const invitations = users
    .command('invitations')
    .description('invitations not used yet, and withdrawing one');
  invitations
    .command('list', { isDefault: true })
    .description('list the open invitations (the default)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await ctx.client()).listInvitations();
      if (opts.json) return ctx.out.json(list);
      if (list.length === 0) {
        ctx.out.line("No open invitations; invite someone with 'petri users invite EMAIL'");
        return;
      }
      ctx.out.table(
        ['ID', 'E-MAIL', 'ROLE', 'TEAM', 'BY', 'EXPIRES'],
        list.map((i: InvitationInfo): Cell[] => [
          String(i.id),
          i.email,
          i.role,
          i.team === null ? '-' : `${i.team} (${i.teamRole})`,
          i.createdBy,
          i.expiresAt.slice(0, 10),
        ]),
      );
    });
  invitations
    .command('cancel')
    .description('withdraw an open invitation: its link stops working')
    .argument('<id>', "the invitation's id, from 'petri users invitations'")
    .action(async (id: string) => {
      if (!/^[1-9][0-9]{0,15}$/.test(id))
        throw new UsageError(`an invitation id is a number like 3; got '${id}'`);
      const i = await (await ctx.client()).cancelInvitation(Number(id));
      ctx.out.line(`Withdrew the invitation of ${i.email}; its link no longer works`);
    });

  users
    .command('disable')
    .description('disable a user: every token and session of theirs stops working at once')
    .argument('<email>', "their e-mail, or a bot's name")
    .action(async (who: string) => {
      const { user, tokensRevoked } = await (await ctx.client()).disableUser(who);
      ctx.out.line(
        `Disabled ${user.email ?? user.name}; revoked ${tokensRevoked} token${tokensRevoked === 1 ? '' : 's'} and sessions`,
      );
    });

  users
    .command('enable')
    .description('enable a disabled user again (they sign in anew; old tokens stay revoked)')
    .argument('<email>', "their e-mail, or a bot's name")
    .action(async (who: string) => {
      const user = await (await ctx.client()).enableUser(who);
      const next =
        user.kind === 'bot'
          ? `make it a token with 'petri tokens create NAME --bot ${user.name}'`
          : "they sign in again with 'petri login'";
      ctx.out.line(`Enabled ${user.email ?? user.name}; ${next}`);
    });

  users
    .command('role')
    .description("change someone's platform role: admin, auditor or member")
    .argument('<email>', 'their e-mail')
    .argument('<role>', 'admin, auditor or member')
    .action(async (who: string, role: string) => {
      const user = await (await ctx.client()).setUserRole(who, oneOf('the role', role, PLATFORM_ROLES));
      ctx.out.line(`${user.email ?? user.name} is now ${user.role}`);
    });

  users
    .command('create-bot')
    .description('make a bot (a service account for CI) in a team; prints its token once')
    .argument('<name>', 'lowercase letters, digits and dashes, e.g. ci-deploy')
    .requiredOption('--team <team>', 'the team it works in')
    .requiredOption('--role <role>', 'its role there: member (deploys, configures) or viewer (reads)')
    .option('--expires <duration>', 'when its token expires: never (the default), or 90d, 1y ...')
    .option('--json', 'print JSON (with the token)')
    .action(async (name: string, opts: { team: string; role: string; expires?: string; json?: boolean }) => {
      const made = await (await ctx.client()).createBot({
        name,
        team: opts.team,
        role: oneOf('--role', opts.role, BOT_ROLES),
        ...expiresOption(opts.expires),
      });
      if (opts.json) return ctx.out.json(made);
      ctx.out.note(
        `Created bot ${made.user.name} in team ${opts.team} as ${opts.role}; its token ${expirySentence(made.token.expiresAt)}. Copy it now; it is not shown again:`,
      );
      ctx.out.line(made.secret);
      ctx.out.note('Give it to your CI as PETRI_TOKEN (with PETRI_URL). A bot never signs in.');
    });

  program
    .command('whoami')
    .description('show who the CLI is signed in as: e-mail, role, teams, and the token')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const settings = await ctx.settings();
      const client = await ctx.client();
      const who = await client.whoamiWithToken();
      if (opts.json) return ctx.out.json({ ...who, url: client.url, profile: settings.profile });
      const { user, token } = who;
      const teams = user.teams.map((t) => `${t.name} (${t.role}${t.personal ? ', personal' : ''})`);
      const from = ctx.io.env.PETRI_TOKEN ? ' (from PETRI_TOKEN)' : ` (profile ${settings.profile})`;
      ctx.out.keyValues([
        ['User', `${user.email ?? user.name} (${user.role})`],
        ['Kind', user.kind === 'bot' ? 'bot' : `person, signs in with ${user.provider}`],
        ['Teams', orDash(teams.join(', '))],
        ['Token', token === null ? '-' : `${token.name} (${token.kind}), ${expirySentence(token.expiresAt)}`],
        ['Server', `${client.url}${from}`],
      ]);
    });
}

function status(user: UserInfo): Cell {
  return user.disabled
    ? { text: `disabled ${orDash(user.disabledAt?.slice(0, 10))}`, style: 'red' }
    : { text: 'active', style: 'green' };
}

// `petri teams`: the teams you are in, creating one, its members and their roles (viewer
// reads, member also changes apps, admin also manages the team's people and apps).
import type { Command } from 'commander';
import type { TeamDetail, TeamRole } from '../client/index.js';
import type { Context } from './context.js';
import { type Cell, orDash, shortTime, UsageError } from './output.js';
import { printQuotas } from './quotas.js';

const ROLES: readonly TeamRole[] = ['admin', 'member', 'viewer'];

export function registerTeams(program: Command, ctx: Context): void {
  const teams = program.command('teams').description('list and create teams, add and remove their members');

  teams
    .command('list', { isDefault: true })
    .description('list your teams with your role in each (the default; admins and auditors: every team)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await ctx.client()).listTeams();
      if (opts.json) return ctx.out.json(list);
      if (list.length === 0) {
        ctx.out.line("You are in no team yet; create one with 'petri teams create NAME'");
        return;
      }
      ctx.out.table(
        ['NAME', 'ROLE', 'APPS', 'MEMBERS', 'KIND'],
        list.map((t): Cell[] => [
          t.name,
          orDash(t.role),
          String(t.apps),
          String(t.members),
          t.personal ? `personal (${t.personalOf ?? '?'})` : 'shared',
        ]),
      );
    });

  teams
    .command('create')
    .description('create a team; you become its admin')
    .argument('<name>', 'lowercase letters, digits and dashes')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const team = await (await ctx.client()).createTeam(name);
      if (opts.json) return ctx.out.json(team);
      ctx.out.line(`Created team ${team.name}; you are its admin`);
      ctx.out.line(`Add people with 'petri teams add ${team.name} EMAIL --role member'`);
    });

  teams
    .command('info')
    .description("a team's members with their roles, its apps, and its quotas against what it uses")
    .argument('<name>', 'the team')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const team = await (await ctx.client()).getTeam(name);
      if (opts.json) return ctx.out.json(team);
      printTeam(ctx, team);
    });

  teams
    .command('add')
    .description('add a person to a team (by e-mail; a bot by name), or change their role')
    .argument('<team>', 'the team')
    .argument('<email>', "the person's e-mail")
    .option('--role <role>', 'admin, member or viewer', parseRole, 'member' as TeamRole)
    .option('--json', 'print JSON')
    .action(async (team: string, email: string, opts: { role: TeamRole; json?: boolean }) => {
      const change = await (await ctx.client()).setTeamMember(team, email, opts.role);
      if (opts.json) return ctx.out.json(change);
      const who = change.member.email ?? change.member.name;
      if (change.previousRole === null) ctx.out.line(`Added ${who} to ${team} as ${change.member.role}`);
      else if (change.previousRole === change.member.role)
        ctx.out.line(`${who} already is ${change.member.role} of ${team}`);
      else ctx.out.line(`${who} is now ${change.member.role} of ${team} (was ${change.previousRole})`);
    });

  teams
    .command('remove')
    .description('take a person out of a team (anyone may leave; never its last admin)')
    .argument('<team>', 'the team')
    .argument('<email>', "the person's e-mail")
    .action(async (team: string, email: string) => {
      await (await ctx.client()).removeTeamMember(team, email);
      ctx.out.line(`Removed ${email} from ${team}`);
    });
}

function printTeam(ctx: Context, team: TeamDetail): void {
  ctx.out.keyValues([
    ['name', team.name],
    ['kind', team.personal ? `personal team of ${team.personalOf ?? '?'}` : 'shared'],
    ['your role', orDash(team.role)],
    ['created', shortTime(team.createdAt)],
    ['apps', team.apps.length === 0 ? '-' : team.apps.join(', ')],
  ]);
  ctx.out.line();
  ctx.out.table(
    ['MEMBER', 'E-MAIL', 'ROLE', 'KIND'],
    team.members.map((m): Cell[] => [
      m.disabled ? { text: `${m.name} (disabled)`, style: 'dim' } : m.name,
      orDash(m.email),
      m.role,
      m.kind,
    ]),
  );
  ctx.out.line();
  printQuotas(ctx.out, team.quotas);
}

function parseRole(value: string): TeamRole {
  if (!(ROLES as readonly string[]).includes(value)) {
    throw new UsageError(`--role must be admin, member or viewer, got '${value}'`);
  }
  return value as TeamRole;
}

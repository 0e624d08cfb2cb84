// The experiment side of `petri apps`: the keys of `petri apps set` that describe an
// experiment (description, data, privacy, retention; expires and stage for admins; redirect
// for a graduated app), `petri apps approve`, and how info and the list show stage, data
// class and expiry. The server checks every value; its errors name the field.
import type { Command } from 'commander';
import type { App, ExperimentUpdate } from '../client/index.js';
import type { Context } from './context.js';
import { type Cell, shortTime, UsageError } from './output.js';

/** `petri apps set` keys sent to PATCH /v1/apps/:name/experiment, with their help. */
export const EXPERIMENT_KEYS: Record<keyof ExperimentUpdate, string> = {
  description: 'what the experiment is, in a sentence or two',
  data: "the data it holds: none, anonymous, personal or sensitive (personal and sensitive need privacy and retention; sensitive an admin's approval)",
  privacy: 'for personal or sensitive data: what is collected, and why',
  retention: 'for personal or sensitive data: how long it is kept: 30d, 12w, 6m, 1y',
  expires: 'admins: the exact expiry, e.g. 2027-03-01T00:00:00Z (owners: petri apps renew)',
  stage: 'admins: graduated (closes a handoff) or experiment (back, with a new lifetime)',
  redirect: "a graduated app's new home, http(s)://... (team admins); redirect= removes it",
};

/** Splits KEY=VALUE pairs into the experiment's (as the API takes them) and the rest. */
export function experimentPairs(args: string[]): { experiment: ExperimentUpdate; rest: string[] } {
  const experiment: Record<string, string | null> = {};
  const rest: string[] = [];
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq > 0 ? arg.slice(0, eq) : '';
    if (!Object.hasOwn(EXPERIMENT_KEYS, key)) {
      rest.push(arg);
      continue;
    }
    if (Object.hasOwn(experiment, key)) throw new UsageError(`${key} is given twice; give each setting once`);
    const value = arg.slice(eq + 1);
    experiment[key] = key === 'redirect' && value.trim() === '' ? null : value;
  }
  return { experiment: experiment as ExperimentUpdate, rest };
}

/** The lines `petri apps info` (and `apps set`) shows of the experiment. */
export function experimentInfo(app: App): [string, string][] {
  const e = app.experiment;
  const pairs: [string, string][] = [
    ['description', e.description || '-'],
    ['stage', e.stage],
    ['data', dataText(app)],
  ];
  if (e.privacyNote !== null) pairs.push(['privacy', e.privacyNote]);
  if (e.retentionDays !== null) pairs.push(['retention', `${e.retentionDays} days`]);
  pairs.push(['expires', expiryText(app)]);
  if (e.redirectUrl !== null) pairs.push(['redirect', e.redirectUrl]);
  return pairs;
}

/** personal (approved), sensitive (awaits review): the class and where its review stands. */
export function dataText(app: App): string {
  const e = app.experiment;
  if (e.awaitsReview) return `${e.dataClass} (awaits an admin's review: petri apps approve ${app.name})`;
  if (e.dataClass === 'personal' || e.dataClass === 'sensitive')
    return e.approvedClass === e.dataClass ? `${e.dataClass} (approved)` : e.dataClass;
  return e.dataClass;
}

function expiryText(app: App): string {
  const e = app.experiment;
  if (e.expiredAt !== null && e.stage === 'experiment')
    return `expired ${shortTime(e.expiredAt)} (petri apps renew ${app.name})`;
  if (e.expiresAt === null) return e.stage === 'experiment' ? '-' : `never (${e.stage})`;
  return shortTime(e.expiresAt);
}

/** The list's cells: stage, data class, expiry date. */
export function experimentCells(app: App): Cell[] {
  const e = app.experiment;
  const expires =
    e.expiredAt !== null && e.stage === 'experiment'
      ? { text: 'expired', style: 'red' as const }
      : e.expiresAt === null
        ? '-'
        : e.expiresAt.slice(0, 10);
  const data: Cell = e.awaitsReview ? { text: `${e.dataClass}!`, style: 'yellow' } : e.dataClass;
  return [e.stage, data, expires];
}

export const EXPERIMENT_HEADERS = ['STAGE', 'DATA', 'EXPIRES'];

/** `petri apps approve NAME` (admins). */
export function registerApprove(apps: Command, ctx: Context): void {
  apps
    .command('approve')
    .description(
      'approve the data class an app declares (admins): sensitive data serves beyond its team once approved',
    )
    .argument('<name>', 'the app')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      // What is approved is what this command shows: if the app changes between the look and
      // the approval, the server refuses rather than approve something nobody read.
      const client = await ctx.client();
      const seen = (await client.getApp(name)).experiment;
      const app = await client.approveApp(name, {
        data: seen.dataClass,
        privacyNote: seen.privacyNote,
        retentionDays: seen.retentionDays,
      });
      if (opts.json) return ctx.out.json(app);
      const e = app.experiment;
      ctx.out.line(
        `Approved ${e.dataClass} data for ${app.name}${e.privacyNote ? ` (${e.privacyNote}; kept ${e.retentionDays} days)` : ''}`,
      );
    });
}

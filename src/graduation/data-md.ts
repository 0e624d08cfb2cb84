// data.md: what each add-on's backup in the bundle holds and how to restore it into a
// database of one's own, with the data class and retention the data came with.
import type { BundleAddon, BundleInput } from './input.js';
import { DATA_CLASS_WORDS, formatBytes, mdText } from './markdown.js';

export function renderDataMd(input: BundleInput): string {
  const { app } = input;
  const out: string[] = [`# The data of ${app.name}`, ''];
  out.push(
    `Data class: **${app.dataClass}** (${DATA_CLASS_WORDS[app.dataClass]}).` +
      (app.retentionDays !== null ? ` Retention: ${app.retentionDays} days.` : ''),
  );
  if (app.privacyNote) out.push('', 'Privacy note:', '', ...quote(app.privacyNote));
  out.push('');
  if (app.dataClass === 'personal' || app.dataClass === 'sensitive') {
    out.push(
      'These backups hold that data: keep them where such data may be kept, restrict who may read',
      'them, and delete them once restored and checked.',
      '',
    );
  }
  if (input.addons.length === 0) {
    out.push(
      `${app.name} has no add-ons: Petri kept no data for it. Whatever it wrote to its own disk (/app,`,
      '/tmp) was lost at every restart, as it will be in a container.',
      '',
    );
    return out.join('\n');
  }
  out.push(
    'Petri kept its data in add-ons, on database servers of its own. The latest backup of each is in',
    '`backups/`. The app found each add-on through a config var (the Secret template names it):',
    'restore the backup into your database, then set that config var to its URL.',
    '',
  );
  for (const addon of input.addons) out.push(...addonSection(addon, app.name));
  return out.join('\n');
}

function addonSection(addon: BundleAddon, appName: string): string[] {
  const out: string[] = [`## ${addon.name} (${ENGINE[addon.type]}, ${addon.envVar})`, ''];
  out.push(`${HOLDS[addon.type]}`, '');
  const b = addon.backup;
  if (!b) {
    out.push(
      `**No backup in this bundle**: Petri could not take one${addon.backupError ? ` (${mdText(addon.backupError)})` : ''} and had none.`,
      `Take one with \`petri addons backup ${addon.name} -a ${appName}\` once the engine answers, and download it\nwith \`petri addons download ${addon.name} BACKUP -a ${appName}\`.`,
      '',
    );
    return out;
  }
  out.push(
    `Backup: \`${b.path}\` (${b.label}, ${formatBytes(b.sizeBytes)}, taken ${b.takenAt}` +
      `${b.fresh ? ', for this bundle' : ''}).`,
  );
  if (!b.fresh) {
    out.push(
      '',
      `Petri could not take a fresh backup for this bundle${addon.backupError ? ` (${mdText(addon.backupError)})` : ''}:`,
      'this is the latest one it had, and the app may have written more since.',
    );
  }
  out.push('', 'Restore:', '', '```sh', ...RESTORE[addon.type](b.path, addon.envVar), '```', '');
  if (addon.type === 'redis') {
    out.push(
      `Every key carries the add-on's key prefix (the ECHO at the top of the file names it), which the`,
      `app read from ${addon.vars.filter((v) => v !== addon.envVar).join(', ') || 'its key prefix variable'}: set that variable to the same prefix, or`,
      'rename the keys. RESTORE needs a Redis of the same or a newer version than the one that dumped them.',
      '',
    );
  }
  return out;
}

const ENGINE = { postgres: 'PostgreSQL', mysql: 'MariaDB/MySQL', redis: 'Redis' } as const;

const HOLDS = {
  postgres:
    'Every table, view, sequence and function of the database Petri gave the app, as `pg_dump --format=custom --no-owner --no-acl` wrote them (no roles or grants: give your own).',
  mysql:
    'Every table of the database Petri gave the app, with its routines, triggers and events, as `mariadb-dump --single-transaction` wrote them (no CREATE DATABASE: it restores into any database).',
  redis:
    "Every key under the app's prefix with its time to live, as `RESTORE key ttl payload REPLACE` commands in the Redis protocol.",
} as const;

const RESTORE: Record<BundleAddon['type'], (file: string, envVar: string) => string[]> = {
  postgres: (file, v) => [
    `# into an empty database; ${v} is its URL`,
    `pg_restore --no-owner --no-acl --dbname "$${v}" ${file}`,
  ],
  mysql: (file, v) => [
    `# into an empty database, then set ${v} to its URL`,
    `mariadb --host HOST --user USER --password DATABASE < ${file}   # or mysql, the same way`,
  ],
  redis: (file, v) => [`# ${v} is the URL of your Redis`, `redis-cli -u "$${v}" --pipe < ${file}`],
};

function quote(text: string): string[] {
  return text.split(/\r\n|[\r\n]/).map((l) => `> ${mdText(l)}`);
}

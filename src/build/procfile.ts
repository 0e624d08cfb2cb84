// Procfile: one process type per line, `type: command`, as Heroku defined it. Process type
// names become part of instance ids, cgroup and log names, so they are short and plain, and
// an app has a bounded number of them (checked for every plan in checkProcessTypes).
import { UserError } from '../lib/errors.js';

/** A process type name: a subset of the runtime's id charset (`_` becomes `-` in ids), short
 * enough that app name + type + index + a unique suffix always fit an instance id. */
export const PROCESS_TYPE_PATTERN = /^[a-z][a-z0-9_-]{0,29}$/;
/** Process types per release, the release phase's `release:` included. */
export const MAX_PROCESS_TYPES = 10;

const LINE = /^([^\s:]+)\s*:\s*(.+)$/;

export function parseProcfile(text: string): Record<string, string> {
  const types: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = LINE.exec(line);
    if (!m) {
      throw new UserError(
        'build_failed',
        `Procfile line ${i + 1} is not 'type: command': '${line.slice(0, 80)}'`,
      );
    }
    // Heroku's names are case-insensitive (Web: is web:).
    const type = m[1]!.toLowerCase();
    checkProcessTypeName(type, `Procfile line ${i + 1}: `);
    types[type] = m[2]!.trim();
  });
  return types;
}

export function checkProcessTypeName(type: string, where = ''): void {
  if (!PROCESS_TYPE_PATTERN.test(type)) {
    const shown = type.length > 40 ? `${type.slice(0, 40)}...' (${type.length} characters)` : `${type}'`;
    throw new UserError(
      'build_failed',
      `${where}process type '${shown} must match ${PROCESS_TYPE_PATTERN.source}: a lower-case letter, then up to 29 letters, digits, '_' or '-'; rename it and deploy again`,
    );
  }
}

/** Every name of a plan's process types, and how many there are. */
export function checkProcessTypes(types: Record<string, string>): void {
  const names = Object.keys(types);
  for (const name of names) checkProcessTypeName(name);
  if (names.length > MAX_PROCESS_TYPES) {
    throw new UserError(
      'build_failed',
      `${names.length} process types; at most ${MAX_PROCESS_TYPES} per app (the release phase included): merge some into one process and deploy again`,
    );
  }
}

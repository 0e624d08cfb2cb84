// Procfile: one process type per line, `type: command`, as Heroku defined it.
import { UserError } from '../lib/errors.js';

const LINE = /^([A-Za-z0-9_-]+)\s*:\s*(.+)$/;

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
    types[m[1]!.toLowerCase()] = m[2]!.trim();
  });
  return types;
}

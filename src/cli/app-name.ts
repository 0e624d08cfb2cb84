// Which app a command acts on: `--app/-a NAME`, else the name in the petri.toml of the
// app's directory. Only the top-level `name = "..."` line is read; the rest of the
// manifest belongs to the server.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Option } from 'commander';
import { UsageError } from './output.js';

export const NO_APP = 'no app given: pass --app NAME or put name = "NAME" in petri.toml';

export function appOption(): Option {
  return new Option('-a, --app <name>', 'the app to act on (default: name in ./petri.toml)');
}

/** `dirs` are searched in order; the first petri.toml that names an app wins. */
export async function resolveAppName(given: string | undefined, dirs: string[]): Promise<string> {
  if (given) return given;
  for (const dir of dirs) {
    let text: string;
    try {
      text = await readFile(path.join(dir, 'petri.toml'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const name = manifestName(text);
    if (name) return name;
  }
  throw new UsageError(NO_APP);
}

/** The top-level `name` of a petri.toml: keys after the first [table] header are not it. */
export function manifestName(toml: string): string | undefined {
  for (const raw of toml.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('[')) return undefined;
    const match = /^name\s*=\s*(?:"([^"]*)"|'([^']*)')\s*(?:#.*)?$/.exec(line);
    if (match) return match[1] ?? match[2];
  }
  return undefined;
}

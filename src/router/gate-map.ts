// The audience gate's map: one line per host of a gated app, `HOST APP:KEY`. HAProxy reads it
// on every request to an app (config.ts), and the runtime API changes it in place (`add map`,
// `set map`, `del map`): making an app gated or public, or rotating its key, reloads nothing
// and takes effect on the very next request. The file on disk is rewritten too, so a reload
// or a restart loads what runs. Pure, so the plan is unit-tested apart from HAProxy.
import type { AppRoute } from './routes.js';
import type { RuntimeCommand } from './runtime-api.js';

/** The gate cookie (src/gate/cookie.ts GATE_COOKIE; the router imports nothing of the gate). */
export const GATE_COOKIE = 'petri_gate';

/** The one JOSE header the gate writes, base64url of {"alg":"HS256","typ":"JWT"}: a cookie
 * with any other header (alg none, another algorithm, a kid) is refused before its signature
 * is even checked. */
export const GATE_JWT_HEADER = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9';

/** host -> `APP:KEY` for every host of a gated app (neither an app name nor a base64url key
 * holds a colon, nor a space, which the runtime API would split on). */
export function gateMapEntries(apps: readonly AppRoute[]): Map<string, string> {
  const entries = new Map<string, string>();
  for (const app of apps) {
    if (app.gate === undefined) continue;
    for (const host of app.hosts) entries.set(host, `${app.app}:${app.gate.key}`);
  }
  return entries;
}

export function renderGateMap(entries: ReadonlyMap<string, string>): string {
  const lines = ['# Rendered by Petri (src/router/gate-map.ts): host, then app:key of its gate.'];
  for (const [host, value] of [...entries].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`${host} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `show map FILE`: `<ref> <key> <value>` lines, key -> value (the last one, if added twice). */
export function parseShowMap(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length === 3 && fields[0]?.startsWith('0x')) entries.set(fields[1]!, fields[2]!);
  }
  return entries;
}

const SILENT = /^\s*$/;

/** The commands that turn the running map into the wanted one. `set map` and `del map` act on
 * every entry of a key, so an entry added twice is handled too. */
export function planMapChanges(
  mapFile: string,
  wanted: ReadonlyMap<string, string>,
  running: ReadonlyMap<string, string>,
): RuntimeCommand[] {
  const commands: RuntimeCommand[] = [];
  for (const [host, value] of wanted) {
    const current = running.get(host);
    if (current === value) continue;
    commands.push({
      command: `${current === undefined ? 'add' : 'set'} map ${mapFile} ${host} ${value}`,
      ok: SILENT,
    });
  }
  for (const host of running.keys()) {
    if (!wanted.has(host)) commands.push({ command: `del map ${mapFile} ${host}`, ok: SILENT });
  }
  return commands;
}

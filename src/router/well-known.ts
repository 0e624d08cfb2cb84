// The router's own answers under /.well-known/ (issue 20): ACME HTTP-01 challenges and custom
// domains' ownership tokens, on every host, over HTTP and HTTPS, before the redirect to HTTPS
// and before the audience gate. A map file (path -> body) that the runtime API changes in
// place (add/set/del map, no reload), one command per change; the file follows in batches and
// before every reload or start, so they answer the same. Pure parts here; HaproxyRouter
// applies them.
import type { RuntimeCommand } from './runtime-api.js';

/** Only these paths: nothing else under /.well-known/ is the router's to answer. */
export const WELL_KNOWN_PATH = /^\/\.well-known\/(acme-challenge|petri-domain)\/[A-Za-z0-9_-]{1,128}$/;
/** A token (an ACME key authorization is TOKEN.THUMBPRINT): no space, no '%', no quote. */
export const WELL_KNOWN_BODY = /^[A-Za-z0-9_.-]{1,512}$/;

export function assertWellKnown(path: string, body?: string): void {
  if (!WELL_KNOWN_PATH.test(path)) {
    throw new Error(`a well-known path must match ${WELL_KNOWN_PATH}, got '${path.slice(0, 200)}'`);
  }
  if (body !== undefined && !WELL_KNOWN_BODY.test(body)) {
    throw new Error(`a well-known answer must match ${WELL_KNOWN_BODY} (${body.length} characters given)`);
  }
}

/** Config lines: a GET or HEAD of a path in the map is answered with its body, nothing else
 * is looked up (one prefix test per request). */
export function wellKnownLines(mapFile: string): string[] {
  return [
    `  http-request set-var(txn.well_known) path,map_str(${mapFile}) if { path_beg /.well-known/ } METH_GET`,
    '  http-request return status 200 content-type "text/plain; charset=utf-8" lf-string "%[var(txn.well_known)]" hdr Cache-Control no-store if { var(txn.well_known) -m found }',
  ];
}

export function renderWellKnownMap(entries: ReadonlyMap<string, string>): string {
  const lines = ['# Rendered by Petri (src/router/well-known.ts): path, then the answer.'];
  for (const [path, body] of [...entries].sort(([a], [b]) => a.localeCompare(b))) {
    assertWellKnown(path, body);
    lines.push(`${path} ${body}`);
  }
  return `${lines.join('\n')}\n`;
}

export function parseWellKnownMap(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [path, body, extra] = line.trim().split(/\s+/);
    if (path === undefined || body === undefined || extra !== undefined) continue;
    if (WELL_KNOWN_PATH.test(path) && WELL_KNOWN_BODY.test(body)) entries.set(path, body);
  }
  return entries;
}

const SILENT = /^\s*$/;

/** The one command that makes the running map give `body` for `path` (undefined: none). */
export function planWellKnown(
  mapFile: string,
  path: string,
  body: string | undefined,
  running: string | undefined,
): RuntimeCommand[] {
  if (body === running) return [];
  if (body === undefined) return [{ command: `del map ${mapFile} ${path}`, ok: SILENT }];
  return [{ command: `${running === undefined ? 'add' : 'set'} map ${mapFile} ${path} ${body}`, ok: SILENT }];
}

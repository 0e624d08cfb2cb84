// Where the gate sends a visitor once they are through: `next`, which arrives in a query
// string or a form field and so is the visitor's (or an attacker's) text. Only a path on the
// app's own host is ever used; anything else becomes '/', so the gate is never an open
// redirect (`//evil.example`, `https://evil.example`, `/\evil.example`, `/%0d%0aSet-Cookie`).

/** Longer paths are not a place anyone was going: cut off rather than carried around. */
export const NEXT_MAX = 2000;

/** The gate's own pages: coming back to one after consent would loop. */
const GATE_PREFIX = '/.petri/';

/**
 * `raw` if it is a path on this host, else '/'. Accepted: starts with one '/', followed by
 * anything but a second '/' or a backslash; only printable ASCII (a browser sends other
 * characters %-encoded), so no control character, space or header break; no backslash
 * anywhere (browsers read it as '/'); not one of the gate's own pages.
 */
export function safeNext(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > NEXT_MAX) return '/';
  if (!/^\/(?![/\\])[\x21-\x7e]*$/.test(raw)) return '/';
  if (raw.includes('\\')) return '/';
  // The same check a browser makes: resolved against the app's host, it stays on that host.
  let resolved: URL;
  try {
    resolved = new URL(raw, 'http://app.invalid/');
  } catch {
    return '/';
  }
  if (resolved.origin !== 'http://app.invalid') return '/';
  const pathOnly = resolved.pathname.toLowerCase();
  if (pathOnly === '/.petri' || pathOnly.startsWith(GATE_PREFIX)) return '/';
  return raw;
}

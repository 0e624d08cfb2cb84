// Turns the untrusted request-target of a proxied request (absolute-form `http://host:port/path`
// or CONNECT's `host:port`) into one normalised host and port. Host spellings go through the
// WHATWG URL parser, so `http://2130706433/`, `0x7f.1` or `EXAMPLE.org.` all reach the matcher in
// the one form a pattern can name (127.0.0.1, example.org) and cannot slip past it.
import { isIP } from 'node:net';
import { UserError } from '../lib/errors.js';
import { type EgressTarget, isHostName } from './matching.js';

export interface HttpTarget extends EgressTarget {
  /** The path and query exactly as the client sent them (a proxy does not rewrite them). */
  path: string;
}

/** Parses an absolute-form target; throws a UserError saying what is wrong. */
export function parseAbsoluteTarget(raw: string): HttpTarget {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/i.exec(raw);
  if (!m) throw bad(`request target ${show(raw)} is not an absolute http:// URL`);
  const [, scheme = '', authority = '', rest = ''] = m;
  if (scheme.toLowerCase() === 'https') {
    throw bad('https:// goes through a CONNECT tunnel: set HTTPS_PROXY, not an https:// URL to the proxy');
  }
  if (scheme.toLowerCase() !== 'http') throw bad(`scheme ${show(scheme)} is not supported; only http://`);
  const { host, port } = parseAuthority(authority, 80);
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  if (/[\s\x00-\x1f\x7f]/.test(path)) throw bad('request target contains white space or control characters');
  return { host, port, path };
}

/** Parses CONNECT's authority-form `host:port` (the port is required). */
export function parseConnectTarget(raw: string): EgressTarget {
  if (!/:[0-9]+$/.test(raw)) throw bad(`CONNECT target ${show(raw)} must be host:port`);
  return parseAuthority(raw, undefined);
}

function parseAuthority(authority: string, defaultPort: number | undefined): EgressTarget {
  // Credentials in the URL would have to become a header the client did not send; refuse them.
  if (authority.includes('@'))
    throw bad('credentials in the URL are not forwarded; send an Authorization header');
  if (authority === '' || /[\s/?#\\]/.test(authority)) throw bad(`host ${show(authority)} is not valid`);
  let url: URL;
  try {
    url = new URL(`http://${authority}/`);
  } catch {
    throw bad(`host ${show(authority)} is not valid`);
  }
  // URL drops a port equal to the scheme's default (80), so read an explicit one from the text.
  const explicit = /:([0-9]+)$/.exec(authority)?.[1];
  const port = explicit !== undefined ? Number(explicit) : defaultPort;
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad(`port in ${show(authority)} must be from 1 to 65535`);
  }
  let host = url.hostname;
  if (host.startsWith('[')) host = host.slice(1, -1);
  else if (host.endsWith('.')) host = host.slice(0, -1);
  if (isIP(host) === 0 && !isHostName(host)) throw bad(`host ${show(host)} is not a valid host name`);
  return { host, port };
}

function bad(message: string): UserError {
  return new UserError('bad_request', `petri egress: ${message}`);
}

/** Targets come from apps: quote them and cut them short before they reach a response or a log. */
function show(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}...` : text);
}

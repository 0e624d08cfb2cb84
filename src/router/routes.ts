// Checks route specs and groups them by app. Everything here ends up inside HAProxy's config
// or a runtime-API command line, so anything that is not a plain name, IP or port is refused:
// a host with a newline in it must never become a config directive.
import net from 'node:net';
import { SAFE_LOCATION } from '../lib/redirect-location.js';
import type { RouteAnswer, RouteGate, RouteServer, RouteSpec } from './router.js';

export interface AppRoute {
  app: string;
  /** HAProxy backend name of the app. */
  backend: string;
  /** Sorted, unique. */
  hosts: string[];
  /** Sorted by id. */
  servers: RouteServer[];
  /** What the router answers instead of the app (see RouteSpec.answer). */
  answer?: RouteAnswer;
  /** The audience gate (see RouteSpec.gate). */
  gate?: RouteGate;
}

const HOST = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const APP = /^[a-z0-9][a-z0-9-]{0,62}$/;
const SERVER_ID = /^[a-z0-9][a-z0-9.-]{0,99}$/;
/** A gate key goes into a map file line and a runtime-API command: base64url text only. */
const GATE_KEY = /^[A-Za-z0-9_-]{16,128}$/;

export function backendName(app: string): string {
  return `app_${app}`;
}

/** The app a backend serves; undefined for the router's own backends (the API, the waker). */
export function appOfBackend(backend: string): string | undefined {
  return backend.startsWith('app_') ? backend.slice('app_'.length) : undefined;
}

export function assertHost(host: string, what = 'host'): void {
  if (!HOST.test(host)) throw new Error(`${what} must be a lower-case host name without port, got '${host}'`);
}

export function assertAddress(address: string, port: number, what: string): void {
  if (net.isIP(address) === 0) throw new Error(`${what} address must be an IP address, got '${address}'`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${what} port must be an integer in 1..65535, got ${port}`);
  }
}

/** Validates and groups routes; the result is sorted so equal inputs render equal configs. */
export function groupRoutes(routes: readonly RouteSpec[], apiHost: string): AppRoute[] {
  const byApp = new Map<string, AppRoute>();
  const hostOwner = new Map<string, string>([[apiHost, 'the Petri API']]);
  for (const route of routes) {
    if (!APP.test(route.app)) throw new Error(`app name must match ${APP}, got '${route.app}'`);
    assertHost(route.host, `host of app '${route.app}'`);
    const owner = hostOwner.get(route.host);
    if (owner !== undefined && owner !== route.app) {
      throw new Error(`host '${route.host}' of app '${route.app}' is already routed to ${owner}`);
    }
    hostOwner.set(route.host, route.app);
    const servers = [...route.servers].sort((a, b) => a.id.localeCompare(b.id));
    const seen = new Set<string>();
    for (const server of servers) {
      if (!SERVER_ID.test(server.id))
        throw new Error(`server id must match ${SERVER_ID}, got '${server.id}'`);
      if (seen.has(server.id))
        throw new Error(`server id '${server.id}' appears twice in app '${route.app}'`);
      seen.add(server.id);
      assertAddress(server.address, server.port, `server '${server.id}'`);
    }
    if (route.answer?.kind === 'redirect' && !SAFE_LOCATION.test(route.answer.location)) {
      throw new Error(
        `redirect of app '${route.app}' must be an http(s) URL of URL-safe characters (see lib/redirect-location.ts)`,
      );
    }
    if (route.gate !== undefined && !GATE_KEY.test(route.gate.key)) {
      throw new Error(`gate key of app '${route.app}' must be base64url text (16 to 128 characters)`);
    }
    const existing = byApp.get(route.app);
    if (existing === undefined) {
      byApp.set(route.app, {
        app: route.app,
        backend: backendName(route.app),
        hosts: [route.host],
        servers,
        ...(route.answer ? { answer: route.answer } : {}),
        ...(route.gate ? { gate: { key: route.gate.key } } : {}),
      });
      continue;
    }
    // Several hosts of one app share its backend, so they must agree on its servers.
    if (serversKey(existing.servers) !== serversKey(servers)) {
      throw new Error(`routes of app '${route.app}' disagree on its servers`);
    }
    if (JSON.stringify(existing.answer) !== JSON.stringify(route.answer)) {
      throw new Error(`routes of app '${route.app}' disagree on its answer`);
    }
    if (existing.gate?.key !== route.gate?.key) {
      throw new Error(`routes of app '${route.app}' disagree on its gate`);
    }
    if (!existing.hosts.includes(route.host)) existing.hosts.push(route.host);
  }
  return [...byApp.values()]
    .map((app) => ({ ...app, hosts: [...app.hosts].sort() }))
    .sort((a, b) => a.app.localeCompare(b.app));
}

function serversKey(servers: readonly RouteServer[]): string {
  return servers.map((s) => `${s.id}=${s.address}:${s.port}`).join(',');
}

/** HAProxy's address syntax: IPv6 needs brackets so the last colon is the port. */
export function formatAddress(address: string, port: number): string {
  return net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

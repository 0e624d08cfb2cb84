// Renders the whole HAProxy configuration from route specs: a pure function, golden-tested.
// The config carries a fingerprint of everything except the app servers; the router reads it
// back from the running worker (`show info`) to know whether a reload is needed or whether
// the runtime API can make the change.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { GATE_COOKIE, GATE_JWT_HEADER } from './gate-map.js';
import {
  API_DOWN_PAGE,
  answerStatus,
  appAnswerPage,
  appDownPage,
  GATE_DOWN_PAGE,
  GATE_REFUSED_PAGE,
  NOT_FOUND_PAGE,
  type PageOptions,
  POOL_DOWN_PAGE,
  renderPages,
} from './pages.js';
import { routerPaths } from './paths.js';
import { assignPool, POOL_PREFIX, type Pool, placeApps, poolBackend } from './pool.js';
import type { RouteServer, RouteSpec } from './router.js';
import { type AppRoute, assertAddress, assertHost, formatAddress, groupRoutes } from './routes.js';
import { type HttpsOptions, hstsLines, httpsBindLine, redirectLines, TLS_GLOBAL_LINES } from './tls.js';
import { wellKnownLines } from './well-known.js';

export interface RenderOptions extends PageOptions {
  dir: string;
  httpPort: number;
  /** HTTPS on the same address (tls.ts); none when undefined. */
  https?: HttpsOptions;
  bindAddress?: string;
  apiServer: { address: string; port: number };
  /** Prometheus exporter and stats page on 127.0.0.1; none when undefined. */
  statsPort?: number;
  /** HAProxy's threads (nbthread); HAProxy's own default, one per CPU, when undefined. The
   * router passes routerThreads(). */
  threads?: number;
  /** Petri's waker: every app's backup server, so a request to an app with no instance up
   * (asleep, or starting) goes to the control plane, which wakes it and holds the request. */
  waker?: { address: string; port: number };
  /** Where every HTTP request is logged, one UDP syslog line each (the metrics collector
   * listens there); no request log when undefined. */
  /** Where HAProxy sends its request log (UDP), and the tag every line carries: a secret of
   * the collector's, so a line that any other local process sends is told apart. */
  requestLog?: RequestLog;
}

export interface RequestLog {
  address: string;
  port: number;
  /** 16 to 64 lower-case hex digits. */
  tag: string;
}

/** The request log's line, after the syslog header: a version word, the collector's tag,
 * then the routing host, the status, the total active time in ms and the bytes sent to the
 * client. The host is checked before (a host name and a port: no space can shift a field). */
export function requestLogFormat(tag: string): string {
  if (!/^[0-9a-f]{16,64}$/.test(tag)) throw new Error('the request log tag must be 16 to 64 hex digits');
  return `petri1 ${tag} %[var(txn.host)] %ST %Ta %B`;
}

/** A Host header's value as the router takes it: a name (or an address, in brackets for
 * IPv6) and an optional port. No backslash: the config parser would take it as an escape. */
const HOST_VALUE = '^[][A-Za-z0-9._:-]+$';
const BAD_HOST =
  'Bad request: the Host header must be a host name with an optional port (letters digits dots hyphens and a colon).';

/** The backend of the gate's pages (/.petri/... on app hosts): the control plane. */
export const GATE_BACKEND = 'petri_gate';

/** The gate's paths (src/api/routes/gate.ts), as an HAProxy regex word (no backslash: the
 * config parser would take it as an escape). */
export const GATE_PATHS = '^/[.]petri/(gate|consent|leave|sso|join/[A-Za-z0-9_-]{1,512})$';

/** What a Set-Cookie of Petri's cookies from an app becomes at the router. */
export const REFUSED_APP_COOKIE = 'petri-app-cookie-refused=; Max-Age=0';

/** The waker's server name in every app backend; the runtime API never adds or removes it. */
export const WAKER_SERVER = 'petri_waker';

/** Options of every app server, in the config and in `add server` alike: HAProxy 2.6 does not
 * apply `default-server` to servers added at runtime, so they are spelled out on each line.
 * A TCP check every second, down after two failures (a dead instance is out within ~2 s),
 * up again after one success. pool-max-conn and pool-purge-delay: a server added at runtime
 * otherwise gets 0 for both (not the config's defaults),
 * so no idle connection was kept and every request opened a new connection to the
 * app (connect = sessions, reuse 0 in `show stat`; a third of the requests/s of a reload's). */
export const SERVER_OPTIONS = 'check inter 1s fall 2 rise 1 pool-max-conn -1 pool-purge-delay 5s';

const FINGERPRINT_PREFIX = 'petri-config-';

/** The answer to a request that names more than one host (no comma: it is a config word). */
const ONE_HOST = 'Bad request: the Host header must name exactly one host; send one Host line with one name.';

/** Headers other proxies and CDNs use to tell an app the client's address or the original
 * URL, which frameworks may trust (Express, Django, Rails, IIS ...); from a client they are lies. */
const CLIENT_CLAIMS = [
  'X-Real-IP',
  'X-Original-Forwarded-For',
  'X-Client-IP',
  'True-Client-IP',
  'Client-IP',
  'X-Cluster-Client-IP',
  'CF-Connecting-IP',
  'Fastly-Client-IP',
  'X-Original-URL',
  'X-Rewrite-URL',
  'X-Original-Host',
  'X-Host',
  // Read by request-ip and libraries like it; the X-Forwarded- prefix rule misses them.
  'X-Forwarded',
  'Forwarded-For',
  'X-ProxyUser-Ip',
  'X-AppEngine-User-IP',
  'Cf-Pseudo-IPv4',
  'Cf-Pseudo-IPv6',
];

/** Every header by which a proxy tells an app who asked, how and for what, as one HAProxy
 * regex on a header's name (HAProxy keeps names lower-cased; no backslash: the config parser
 * would take it as an escape): the X-Forwarded- family, Forwarded, the CLIENT_CLAIMS; any
 * name with an underscore, which CGI and WSGI gateways (gunicorn among them) turn into the
 * same HTTP_X_REAL_IP as `X-Real-IP` (nginx drops these by default too); and the X-Petri-
 * prefix: X-Petri-User and X-Petri-User-Name tell an app who its visitor is (issue 15), so
 * only Petri may set them, for every app, public ones included. */
const CLAIMED_HEADERS = `^(x-forwarded-.*|forwarded|${CLIENT_CLAIMS.map((n) => n.toLowerCase()).join('|')}|.*_.*|x-petri-.*)$`;

/** Whether the names of a request's headers (req.hdr_names: comma-separated) include one of
 * CLAIMED_HEADERS: a cheap test before the rule that walks them. It may say yes for a name
 * the rule keeps (x-forwardedness, say), never no for one the rule removes. */
const CLAIMED_IN_NAMES = `(^|,)(x-forwarded|x-petri-|(forwarded|${CLIENT_CLAIMS.map((n) => n.toLowerCase()).join('|')})(,|$))|_`;

/** The config for these routes. `pool`: the pool backends the router already gave out (the
 * running host map), kept so that no app moves; without it, a fresh assignment. */
export function renderHaproxyConfig(opts: RenderOptions, routes: readonly RouteSpec[], pool?: Pool): string {
  assertHost(opts.apiHost, 'apiHost');
  assertAddress(opts.apiServer.address, opts.apiServer.port, 'apiServer');
  assertAddress(opts.bindAddress ?? '127.0.0.1', opts.httpPort, 'http bind');
  if (opts.https) assertAddress(opts.bindAddress ?? '127.0.0.1', opts.https.port, 'https bind');
  if (opts.statsPort !== undefined) assertAddress('127.0.0.1', opts.statsPort, 'stats');
  if (opts.requestLog) assertAddress(opts.requestLog.address, opts.requestLog.port, 'requestLog');
  const apps = groupRoutes(routes, opts.apiHost);
  const placed = pool ?? assignPool(apps, new Map(), 0);
  const backends = placeApps(apps, placed);
  // Fingerprint = the config with the app servers left out, plus the pages it loads: equal
  // fingerprints mean the runtime API alone can turn the running config into this one. Which
  // app holds which pool backend is in neither (the host map says it).
  const skeleton = renderBody(opts, backends, placed.size, true);
  const pages = [...renderPages(opts, apps)].map(([name, content]) => `${name}\n${content}`);
  const fingerprint = createHash('sha256')
    .update([skeleton, ...pages].join('\0'))
    .digest('hex')
    .slice(0, 16);
  return renderBody(opts, backends, placed.size, false, `${FINGERPRINT_PREFIX}${fingerprint}`);
}

/**
 * HAProxy's threads on a machine of `cpus` CPUs: half of them, at least one. The router
 * shares the machine with the apps it passes requests to and with their clients, and every
 * thread more costs CPU per request (wakeups, atomics, locks): on a loaded 2-CPU host
 * (load average 6-8, wrk -t2 -c16 against the rendered config), one thread served more
 * kept-alive HTTPS requests/s than two (20.7k against 16.0k, p50 of 4) at 23 us of CPU each
 * against 27, and as many new handshakes/s (1,600 against 1,550 at 358 us against 371).
 * nginx did alike: one worker 23.9k/s at 16 us, two 20.7k/s at 23 us.
 */
export function routerThreads(cpus = availableParallelism()): number {
  return Math.max(1, Math.floor(cpus / 2));
}

/** The fingerprint inside a rendered config, or inside `show info` output's description. */
export function fingerprintOf(text: string): string | undefined {
  const match = new RegExp(`${FINGERPRINT_PREFIX}([0-9a-f]{16})`).exec(text);
  return match?.[1];
}

function renderBody(
  opts: RenderOptions,
  apps: readonly AppRoute[],
  poolSize: number,
  skeleton: boolean,
  description?: string,
): string {
  const paths = routerPaths(opts.dir);
  const page = (name: string) => path.join(paths.pagesDir, name);
  const lines: string[] = [
    '# Rendered by Petri (src/router/config.ts). Edits are overwritten on the next change of routes.',
    'global',
    // Runtime API for server changes. expose-fd listeners: on reload the new worker takes
    // the listening sockets over from the old one, so no connection is refused meanwhile.
    `  stats socket ${paths.adminSocket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 30s',
    // An old worker serving a websocket after a reload is let go when `timeout tunnel` would
    // have ended it anyway.
    '  hard-stop-after 1h',
    // HAProxy binds with SO_REUSEPORT by default, so a second router on a taken port would
    // share it and take some of the other's visitors: without it, a taken port is a failed
    // start. Reloads keep working: the new worker takes the sockets over (expose-fd above).
    '  noreuseport',
  ];
  if (description !== undefined) lines.push(`  description ${description}`);
  if (opts.threads !== undefined) lines.push(`  nbthread ${opts.threads}`);
  if (opts.https) lines.push(...TLS_GLOBAL_LINES);
  // UDP, so a collector that is down or slow never holds a request; len: room for long hosts.
  if (opts.requestLog)
    lines.push(`  log ${formatAddress(opts.requestLog.address, opts.requestLog.port)} len 2048 local0`);
  lines.push(
    '',
    'defaults',
    '  mode http',
    '  option forwardfor',
    // On a reload the old worker would close idle keep-alive client connections at once, and
    // a client sending its next request on one just then sees it reset (most clients do not
    // retry). This waits for that next request and answers it with Connection: close.
    '  option idle-close-on-response',
    // A connection that fails, or a reused keep-alive connection that the app closed just as
    // a request was sent, is retried on another server instead of becoming a 502/503.
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure empty-response',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-request 10s',
    '  timeout http-keep-alive 60s',
    '  timeout queue 30s',
    '  timeout client-fin 30s',
    '  timeout tunnel 1h',
    '',
    'frontend http',
    `  bind ${formatAddress(opts.bindAddress ?? '127.0.0.1', opts.httpPort)}`,
    ...(opts.https ? [httpsBindLine(opts.bindAddress ?? '127.0.0.1', opts.https, paths.crtList)] : []),
    // Every request, logged when it ends (the format replaces option httplog's).
    ...(opts.requestLog ? ['  log global', `  log-format "${requestLogFormat(opts.requestLog.tag)}"`] : []),
    // One Host, one name. req.hdr() splits on commas and takes the last value, so
    // `Host: a, b` was routed to b while the app saw both; and RFC 9112 wants a 400 for
    // more than one Host line (HAProxy merges identical ones, refuses differing ones).
    `  http-request return status 400 content-type "text/plain; charset=utf-8" string "${ONE_HOST}" if { req.fhdr_cnt(host) gt 1 } || { req.fhdr(host) -m sub , }`,
    // And a host name: a Host with a space in it would shift the request log's fields (the
    // collector would count a forged status and time for the app it names), and names no app.
    `  http-request return status 400 content-type "text/plain; charset=utf-8" string "${BAD_HOST}" if { req.fhdr(host) -m found } !{ req.fhdr(host) -m reg ${HOST_VALUE} }`,
    // Petri is the edge: forwarding headers sent by the client are not to be trusted. Every
    // header by which a proxy tells an app who asked, how and for what is removed, and the
    // ones apps read are set from what the edge saw (X-Forwarded-For by option forwardfor).
    // One rule (the names in CLAIMED_HEADERS), run only when the names the client sent include
    // one: most requests carry none, and 21 del-header lines each walked every header (7k of
    // the 116k instructions HAProxy ran per kept-alive HTTPS request, by callgrind).
    `  http-request del-header ${CLAIMED_HEADERS} -m reg if { req.hdr_names -m reg ${CLAIMED_IN_NAMES} }`,
    // Added, not set: the rule above removed any the client sent (set-header would walk the
    // headers again to remove them).
    '  http-request add-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]',
    '  http-request add-header X-Forwarded-Host %[req.hdr(host)]',
    '  http-request add-header X-Forwarded-Port %[dst_port]',
    '  http-request add-header X-Real-IP %[src]',
    // Routing key: the Host header without its port, lower-cased.
    '  http-request set-var(txn.host) req.hdr(host),field(1,:),lower',
    // The router's own answers (ACME challenges, domain checks): before the redirect to
    // HTTPS, which would break them, and before the gate, which would hide them.
    ...wellKnownLines(paths.wellKnownMap),
    ...(opts.https ? redirectLines(opts.https) : []),
    // Its backend, from the host map (pool.ts): no per-app line, so apps come and go with no
    // reload. A host not in the map is no app's.
    `  http-request set-var(txn.backend) var(txn.host),map(${paths.hostMap})`,
    ...gateLines(paths.gateMap, page(GATE_REFUSED_PAGE)),
    `  use_backend petri_api if { var(txn.host) -m str ${opts.apiHost} }`,
    // The gate's pages under an app's own host are the control plane's: exactly these paths,
    // so no other API route is ever reached through an app's host (not by /.petri/../v1/...).
    `  use_backend ${GATE_BACKEND} if { var(txn.backend) -m found } { path -m reg ${GATE_PATHS} }`,
    // Map values are only ever our backend names (pool_NNNN, app_NAME).
    '  use_backend %[var(txn.backend)] if { var(txn.backend) -m found }',
    // Petri's cookies (petri_gate, petri_session ...) are Petri's to set: an app's response
    // that sets one, above all for the parent domain (which the API host and every other app
    // host receive), would plant it on its visitors to loop them at the gate or sign them in
    // as the app's owner. Such a Set-Cookie becomes an expired cookie of a harmless name.
    // The gate's own pages (the control plane under the app's host) set them legitimately.
    `  http-response replace-header Set-Cookie (?i)^[[:blank:]]*petri_.* "${REFUSED_APP_COOKIE}" if { var(txn.backend) -m found } !{ be_name ${GATE_BACKEND} }`,
  );
  lines.push(
    ...(opts.https ? hstsLines(opts.https) : []),
    '  default_backend petri_not_found',
    '',
    'backend petri_api',
    `  errorfile 503 ${page(API_DOWN_PAGE)}`,
    `  server api ${formatAddress(opts.apiServer.address, opts.apiServer.port)}`,
    '',
    // The control plane again, for the gate's pages on app hosts: while it is down, a visitor
    // is told that sign-in is briefly unavailable rather than that Petri restarts.
    `backend ${GATE_BACKEND}`,
    `  errorfile 503 ${page(GATE_DOWN_PAGE)}`,
    `  server api ${formatAddress(opts.apiServer.address, opts.apiServer.port)}`,
    '',
    'backend petri_not_found',
    `  http-request return status 404 content-type "text/html; charset=utf-8" file ${page(NOT_FOUND_PAGE)} hdr Cache-Control no-store`,
  );
  const waker = opts.waker
    ? [`  server ${WAKER_SERVER} ${formatAddress(opts.waker.address, opts.waker.port)} backup`]
    : [];
  // Apps the router answers for: a backend of their own, its answer in the config.
  for (const app of apps.filter((a) => !a.backend.startsWith(POOL_PREFIX))) {
    lines.push(
      '',
      `backend ${app.backend}`,
      '  balance roundrobin',
      // The app's own answer (an experiment that ended or moved), given before any server is
      // chosen: its servers, if any still run, get no request.
      ...answerLines(app, page),
      // HAProxy answers 503 itself when the backend has no server up (none, or all down).
      `  errorfile 503 ${page(appDownPage(app.app))}`,
      ...(skeleton ? [] : app.servers.map((server) => `  ${serverLine(server)}`)),
      ...waker,
    );
  }
  // The pool: the same lines for every backend, whichever app holds it.
  const byBackend = new Map(apps.map((a) => [a.backend, a]));
  for (let i = 1; i <= poolSize; i++) {
    const backend = poolBackend(i);
    const servers = skeleton ? [] : (byBackend.get(backend)?.servers ?? []);
    lines.push(
      '',
      `backend ${backend}`,
      '  balance roundrobin',
      `  errorfile 503 ${page(POOL_DOWN_PAGE)}`,
      ...servers.map((server) => `  ${serverLine(server)}`),
      // Only while no instance is up; the waker answers the app's 503 itself (naming it) when
      // it is neither asleep nor waking, and HAProxy does when the control plane is down.
      ...waker,
    );
  }
  if (opts.statsPort !== undefined) {
    lines.push(
      '',
      'frontend stats',
      `  bind 127.0.0.1:${opts.statsPort}`,
      '  http-request use-service prometheus-exporter if { path /metrics }',
      '  stats enable',
      '  stats uri /stats',
      '  stats refresh 10s',
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The audience gate at the edge (issue 15). A host in the gate map (gate-map.ts) is gated; any
 * other pays one map lookup and nothing more. A gated request passes only with a cookie
 * that has the gate's one header, an HS256 signature made with the host's key, an `exp` in
 * the future and the host's app in `app`; the app then gets who the visitor is. Without
 * one, a GET or HEAD goes to the gate (its pages are open to all), anything else gets a 401:
 * a redirect would lose what it sent. No request waits on the control plane: a visitor with
 * a valid cookie reaches the app while the control plane is down.
 *
 * HAProxy 2.6's jwt_verify takes an HMAC secret from a variable, filled here from the map,
 * so keys change through the runtime API with no reload. The signature is checked before the
 * claims are read: json_query then parses what the gate itself signed. (json_query decodes a
 * \u escape above \u00ff to nothing: the gate writes names as UTF-8.)
 */
function gateLines(mapFile: string, refusedPage: string): string[] {
  const gated = '{ var(txn.gate) -m found }';
  const passed = '{ var(txn.gate_pass) -m bool }';
  const cookie = 'var(txn.gate_cookie)';
  return [
    `  http-request set-var(txn.gate) var(txn.host),map(${mapFile})`,
    `  http-request unset-var(txn.gate) if ${gated} { path -m reg ${GATE_PATHS} }`,
    `  http-request set-var(txn.gate_app) var(txn.gate),field(1,:) if ${gated}`,
    `  http-request set-var(txn.gate_key) var(txn.gate),field(2,:) if ${gated}`,
    `  http-request set-var(txn.gate_cookie) req.cook(${GATE_COOKIE}) if ${gated}`,
    // The claims are decoded once, and only once the signature holds.
    `  http-request set-var(txn.gate_claims) ${cookie},field(2,.),ub64dec if { ${cookie},field(1,.) -m str ${GATE_JWT_HEADER} } { ${cookie},jwt_verify(HS256,txn.gate_key) -m int 1 }`,
    `  http-request set-var(txn.gate_exp) var(txn.gate_claims),json_query('$.exp','int') if { var(txn.gate_claims) -m found }`,
    `  http-request set-var(txn.gate_pass) bool(1) if { var(txn.gate_exp) -m found } { date,sub(txn.gate_exp) -m int lt 0 } { var(txn.gate_claims),json_query('$.app'),strcmp(txn.gate_app) eq 0 }`,
    `  http-request set-header X-Petri-User %[var(txn.gate_claims),json_query('$.sub')] if ${passed}`,
    `  http-request set-header X-Petri-User-Name %[var(txn.gate_claims),json_query('$.name')] if ${passed}`,
    // pathq: the path and query as sent; url_enc makes them one query parameter.
    `  http-request redirect location /.petri/gate?next=%[pathq,url_enc] code 302 if ${gated} !${passed} METH_GET`,
    `  http-request return status 401 content-type "text/html; charset=utf-8" file ${refusedPage} hdr Cache-Control no-store if ${gated} !${passed}`,
  ];
}

function answerLines(app: AppRoute, page: (name: string) => string): string[] {
  const answer = app.answer;
  if (answer === undefined) return [];
  if (answer.kind === 'redirect') {
    // The location is a log-format string: '%' is its only special character (groupRoutes
    // let nothing else through that the quotes would not hold).
    return [`  http-request redirect location "${answer.location.replace(/%/g, '%%')}" code 308`];
  }
  return [
    `  http-request return status ${answerStatus(answer)} content-type "text/html; charset=utf-8" file ${page(appAnswerPage(app.app))} hdr Cache-Control no-store`,
  ];
}

export function serverLine(server: RouteServer): string {
  return `server ${server.id} ${formatAddress(server.address, server.port)} ${SERVER_OPTIONS}`;
}

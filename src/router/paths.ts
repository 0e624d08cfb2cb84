// Where the router keeps its state inside its directory. One place, because the config, the
// process flags and the runtime-API client must agree on every path.
import path from 'node:path';

export interface RouterPaths {
  dir: string;
  config: string;
  /** Candidate config, validated before it replaces `config`. */
  nextConfig: string;
  pidfile: string;
  masterSocket: string;
  adminSocket: string;
  pagesDir: string;
  /** The last applied routes, so a fresh start after a reboot serves what was served. */
  routesFile: string;
  /** The audience gate's map, host -> app and key (mode 600: it holds the keys). */
  gateMap: string;
  /** Host -> backend (pool.ts). */
  hostMap: string;
  /** The router's certificates, one NAME.pem each (chain then key, mode 600): certificates.ts. */
  certsDir: string;
  /** The crt-list HAProxy's HTTPS bind loads: the default certificate first, then one line per host. */
  crtList: string;
  /** Path -> body of the /.well-known/ answers the router gives itself (well-known.ts). */
  wellKnownMap: string;
}

// HAProxy config lines are split on spaces and '#' starts a comment; Unix socket paths are
// limited to 108 bytes. Refusing odd directories here beats a cryptic HAProxy parse error.
const SAFE_DIR = /^\/[A-Za-z0-9._/-]+$/;
const MAX_SOCKET_PATH = 100;

export function routerPaths(dir: string): RouterPaths {
  const resolved = path.resolve(dir);
  if (!SAFE_DIR.test(resolved)) {
    throw new Error(`router dir must match ${SAFE_DIR} (no spaces or quotes), got '${resolved}'`);
  }
  const paths: RouterPaths = {
    dir: resolved,
    config: path.join(resolved, 'haproxy.cfg'),
    nextConfig: path.join(resolved, 'haproxy.cfg.next'),
    pidfile: path.join(resolved, 'haproxy.pid'),
    masterSocket: path.join(resolved, 'master.sock'),
    adminSocket: path.join(resolved, 'admin.sock'),
    pagesDir: path.join(resolved, 'pages'),
    routesFile: path.join(resolved, 'routes.json'),
    gateMap: path.join(resolved, 'gate.map'),
    hostMap: path.join(resolved, 'hosts.map'),
    certsDir: path.join(resolved, 'certs'),
    crtList: path.join(resolved, 'certs.list'),
    wellKnownMap: path.join(resolved, 'well-known.map'),
  };
  if (paths.masterSocket.length > MAX_SOCKET_PATH) {
    throw new Error(`router dir '${resolved}' is too long for a Unix socket path; use a shorter one`);
  }
  return paths;
}

// An in-process Router for fast unit tests of the reconciler: a small HTTP proxy on
// 127.0.0.1 that routes by Host to the servers of the last apply(), round robin, answers 404
// for an unknown host and 503 for an app without servers, and counts what drained() and
// lastRequests() report. It passes the same contract suite as the HAProxy router
// (test/router/contract.ts), so tests on it cannot lean on what HAProxy would not do.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Router, RouteServer, RouteSpec } from '../../src/router/router.js';

export class FakeRouter implements Router {
  private server: http.Server | undefined;
  private routes: RouteSpec[] = [];
  private readonly next = new Map<string, number>();
  /** Requests in flight per server id. */
  private readonly sessions = new Map<string, number>();
  /** When each app last had a request (ms since the epoch). */
  private readonly lastRequest = new Map<string, number>();
  /** Every apply(), for tests that look at what was routed. */
  readonly applied: RouteSpec[][] = [];
  /** Certificates set, by name (no TLS here: tests look at what was set). */
  readonly certificates = new Map<string, string>();
  /** The router's own answers under /.well-known/, path -> body, served on every host. */
  readonly wellKnown = new Map<string, string>();

  constructor(private readonly opts: { port?: number } = {}) {}

  /** Where it listens (after start()). */
  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, '127.0.0.1', resolve);
    });
    this.server = server;
  }

  async apply(routes: RouteSpec[]): Promise<void> {
    this.routes = structuredClone(routes);
    this.applied.push(this.routes);
  }

  async drained(serverId: string): Promise<boolean> {
    if (this.routes.some((r) => r.servers.some((s) => s.id === serverId))) return false;
    return (this.sessions.get(serverId) ?? 0) === 0;
  }

  async lastRequests(): Promise<Map<string, number>> {
    const now = Date.now();
    const seconds = new Map<string, number>();
    for (const route of this.routes) {
      const at = this.lastRequest.get(route.app);
      seconds.set(route.app, at === undefined ? -1 : Math.floor((now - at) / 1000));
    }
    return seconds;
  }

  async setCertificate(name: string, pem: string): Promise<void> {
    this.certificates.set(name, pem);
  }

  async removeCertificate(name: string): Promise<void> {
    this.certificates.delete(name);
  }

  async setWellKnown(path: string, body: string): Promise<void> {
    this.wellKnown.set(path, body);
  }

  async deleteWellKnown(path: string): Promise<void> {
    this.wellKnown.delete(path);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const known =
      req.method === 'GET' || req.method === 'HEAD' ? this.wellKnown.get(req.url ?? '') : undefined;
    if (known !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(known);
      return;
    }
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const route = this.routes.find((r) => r.host === host);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>No app here</h1>\n');
      return;
    }
    this.lastRequest.set(route.app, Date.now());
    const server = this.pick(route);
    if (!server) {
      res.writeHead(503, { 'content-type': 'text/html', 'retry-after': '5' }).end('not running\n');
      return;
    }
    this.sessions.set(server.id, (this.sessions.get(server.id) ?? 0) + 1);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.sessions.set(server.id, (this.sessions.get(server.id) ?? 1) - 1);
    };
    const upstream = http.request(
      {
        host: server.address,
        port: server.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '' },
        agent: false,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on('end', end);
        up.on('error', end);
      },
    );
    upstream.on('error', () => {
      end();
      if (!res.headersSent) res.writeHead(502).end('bad gateway\n');
      else res.destroy();
    });
    res.on('close', end);
    req.pipe(upstream);
  }

  private pick(route: RouteSpec): RouteServer | undefined {
    if (route.servers.length === 0) return undefined;
    const n = this.next.get(route.app) ?? 0;
    this.next.set(route.app, n + 1);
    return route.servers[n % route.servers.length];
  }
}

// The waker: every app's backup server in the router, so a request reaches it only while no
// instance of the app is up. For a sleeping app it records the wake (desired state, so a
// restart of the control plane does not lose it), holds the request until a web process
// answers, and passes it on; requests arriving meanwhile wait for the same wake. An app that
// is neither asleep nor waking gets its 503 page, as HAProxy would answer it.
import http from 'node:http';
import type { Logger } from 'pino';
import { findAppByName, wakeApp } from '../domain/apps.js';
import { appNameOfDomain } from '../domain/domains.js';
import { servingWebAddress } from '../domain/instances.js';
import { routeAnswerOf } from '../domain/lifecycle.js';
import type { PetriConfig } from '../lib/config.js';
import type { LogStore } from '../logs/log-store.js';
import { answerHtml, answerStatus, appDownHtml, RETRY_AFTER_SECONDS, wakingHtml } from '../router/pages.js';
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';

/** How often a held request looks for a web process that is up, unless told (webUp). */
const POLL_MS = 10;
const PETRI = { name: 'petri' };

interface Target {
  address: string;
  port: number;
}

export class Waker {
  private server: http.Server | undefined;
  /** One wait per app, shared by every request held for it. */
  private readonly waits = new Map<number, Promise<Target | undefined>>();
  /** Ends the pause between two looks of an app's wait. */
  private readonly kicks = new Map<number, () => void>();
  private closed = false;

  constructor(
    private readonly deps: {
      db: Store;
      config: PetriConfig;
      logs: LogStore;
      logger: Logger;
      /** The app was woken: the reconciler should start it now. */
      nudge: () => void;
    },
  ) {}

  async listen(): Promise<void> {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.deps.logger.error({ err }, 'waker failed on a request');
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
    });
    // Held requests may wait for the whole wake timeout.
    server.requestTimeout = 0;
    server.headersTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.deps.config.wakerPort, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  async close(): Promise<void> {
    this.closed = true;
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { db, config } = this.deps;
    // NAME.DOMAIN, or a verified custom domain of the app (issue 20).
    const name = appNameOf(req.headers.host, config.domain) ?? (await appNameOfDomain(db, req.headers.host));
    const app = name ? await findAppByName(db, name) : undefined;
    if (!app) return page(res, 503, appDownHtml(config, name ?? 'unknown'));
    // Expired, archived, awaiting review or moved: never woken, answered as the router does
    // (a request may get here before the router has its answer).
    const answer = await routeAnswerOf(db, app);
    if (answer?.kind === 'redirect') {
      res.writeHead(308, { location: answer.location, 'content-length': 0, 'cache-control': 'no-store' });
      return void res.end();
    }
    if (answer) return page(res, answerStatus(answer), answerHtml(config, app.name, answer));
    const woke =
      app.sleeping_since !== null && (await wakeApp(db, PETRI, app, `a request for ${pathOf(req.url)}`));
    if (woke) {
      this.deps.logs.append(
        app.name,
        'petri',
        `waking up: a request for ${pathOf(req.url)} arrived while asleep\n`,
      );
      this.deps.nudge();
    }
    const wokeAt = woke ? Date.now() : app.woke_at ? Date.parse(app.woke_at) : 0;
    const deadline = wokeAt + config.wakeTimeoutMs;
    if (app.sleeping_since === null && !woke && Date.now() >= deadline) {
      return page(res, 503, appDownHtml(config, app.name));
    }
    const target = await this.waitFor(app, deadline);
    if (!target) {
      if (!this.closed) {
        this.deps.logs.append(
          app.name,
          'petri',
          `no web process was up ${Math.round(config.wakeTimeoutMs / 1000)} s after waking; visitors get a 503 until one is (see the lines above)\n`,
        );
      }
      return page(res, 503, wakingHtml(config, app.name));
    }
    pass(req, res, target);
  }

  /** Resolves with a web process of the serving release once one is up, or undefined at
   * the deadline. */
  private waitFor(app: App, deadline: number): Promise<Target | undefined> {
    let wait = this.waits.get(app.id);
    if (!wait) {
      wait = this.poll(app.id, deadline).finally(() => this.waits.delete(app.id));
      this.waits.set(app.id, wait);
    }
    return wait;
  }

  /** A web process of the app was marked up: its held requests go to it now, not at the
   * next look (up to POLL_MS later). */
  webUp(appId: number): void {
    this.kicks.get(appId)?.();
  }

  private async poll(appId: number, deadline: number): Promise<Target | undefined> {
    while (!this.closed) {
      const up = await servingWebAddress(this.deps.db, appId);
      if (up) return { address: up.address ?? '127.0.0.1', port: up.port };
      if (Date.now() >= deadline) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        this.kicks.set(appId, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.kicks.delete(appId);
    }
    return undefined;
  }
}

/** NAME from NAME.<domain>[:port]; undefined for any other host. */
function appNameOf(host: string | undefined, domain: string): string | undefined {
  const bare = host?.split(':')[0]?.toLowerCase();
  const suffix = `.${domain}`;
  return bare?.endsWith(suffix) ? bare.slice(0, -suffix.length) : undefined;
}

function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?')[0]?.slice(0, 200) ?? '/';
}

function page(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'retry-after': String(RETRY_AFTER_SECONDS),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** Hands the held request to the app's process and its answer back, streaming both ways. */
function pass(req: http.IncomingMessage, res: http.ServerResponse, target: Target): void {
  const upstream = http.request(
    { host: target.address, port: target.port, method: req.method, path: req.url, headers: req.headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent)
      res.writeHead(502, { 'content-type': 'text/plain' }).end('the app closed the connection\n');
    else res.destroy();
  });
  req.pipe(upstream);
}

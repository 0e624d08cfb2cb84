// Test world for the router: a temp dir, free ports, tiny HTTP backends on 127.0.0.1, and
// HAProxy stopped by pid afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/lib/ports.js';
import { HaproxyRouter, type HaproxyRouterOptions } from '../../src/router/haproxy-router.js';
import type { RouteServer } from '../../src/router/router.js';

export interface Backend {
  name: string;
  server: http.Server;
  route: RouteServer;
  hits: number;
  close(): Promise<void>;
}

/** Answers `backend:NAME PATH`; `/slow` streams one chunk and ends when `release()` is called. */
export async function startBackend(name: string): Promise<Backend & { release(): void }> {
  const waiting: (() => void)[] = [];
  const backend = { name, hits: 0 } as Backend & { release(): void };
  const server = http.createServer((req, res) => {
    backend.hits++;
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      waiting.push(() => res.end('last'));
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/plain',
      'x-forwarded-proto-seen': String(req.headers['x-forwarded-proto']),
    });
    res.end(`backend:${name} ${req.url} xff=${req.headers['x-forwarded-for']}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  backend.server = server;
  backend.route = { id: name, address: '127.0.0.1', port };
  backend.release = () => {
    for (const done of waiting.splice(0)) done();
  };
  backend.close = () =>
    new Promise<void>((resolve) => {
      backend.release();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return backend;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function get(port: number, host: string, urlPath = '/', agent?: http.Agent | false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: urlPath, headers: { host }, agent: agent ?? false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`request to ${host}${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface RouterWorld {
  dir: string;
  opts: HaproxyRouterOptions;
  router: HaproxyRouter;
  api: Backend;
  /** Stops every HAProxy started in this dir and removes it. */
  cleanup(): Promise<void>;
}

export async function makeRouterWorld(extra: Partial<HaproxyRouterOptions> = {}): Promise<RouterWorld> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'petri-router-'));
  const api = await startBackend('api');
  const opts: HaproxyRouterOptions = {
    dir,
    httpPort: await freePort(),
    apiHost: 'petri.localhost',
    apiServer: { address: '127.0.0.1', port: api.route.port },
    domain: 'petri.localhost',
    haproxyBin: '/usr/sbin/haproxy',
    stopGraceMs: 2_000,
    ...extra,
  };
  const router = new HaproxyRouter(opts);
  return {
    dir,
    opts,
    router,
    api,
    async cleanup() {
      // A fresh instance finds the HAProxy by pidfile, even one this test failed to track.
      await new HaproxyRouter(opts).stop();
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

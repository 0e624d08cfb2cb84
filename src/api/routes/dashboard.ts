// The dashboard (issue 19) on the API host: the files `npm run build:dashboard` wrote to
// dist/dashboard, read once at start and kept in memory (with their gzip), served with
// caching headers and a strict Content-Security-Policy: scripts, styles and requests from
// this origin only, no inline script, no frame. Its pages' paths all answer index.html; the
// page reads and changes everything through /v1 like the CLI.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Api } from '../context.js';

/** Where the build is: <checkout>/dist/dashboard, from src/api/routes and dist/api/routes alike. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../dist/dashboard/', import.meta.url));

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The dashboard's own paths (router.tsx): each answers the page, which shows the right one. */
const PAGE_PATHS = ['/', '/apps', '/apps/*', '/inventory', '/ops', '/ops/*'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

interface Asset {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  etag: string;
}

export function dashboardRoutes(api: Api, dir = DASHBOARD_DIR): void {
  const assets = loadAssets(dir);
  const index = assets.get('/index.html');
  const route = { config: { access: 'public' as const }, schema: { hide: true } };

  for (const url of PAGE_PATHS) {
    api.get(url, route, async (req, reply) => {
      if (!index) return notBuilt(reply);
      // The page is small and names the hashed files of this build: always asked again (a 304
      // when unchanged), so a new build is picked up at once.
      return send(req, reply, index, 'no-cache');
    });
  }
  api.get('/assets/*', route, async (req, reply) => {
    const file = assets.get(new URL(req.url, 'http://x').pathname);
    if (!file) return reply.code(404).type('text/plain; charset=utf-8').send('no such file\n');
    // Content-hashed names: a file never changes under its name.
    return send(req, reply, file, 'public, max-age=31536000, immutable');
  });
}

function send(req: FastifyRequest, reply: FastifyReply, file: Asset, cacheControl: string) {
  reply
    .header('content-security-policy', DASHBOARD_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin')
    .header('x-frame-options', 'DENY')
    .header('cache-control', cacheControl)
    .header('etag', file.etag)
    .header('vary', 'accept-encoding')
    .type(file.type);
  if (req.headers['if-none-match'] === file.etag) return reply.code(304).send();
  if (file.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    return reply.header('content-encoding', 'gzip').send(file.gzip);
  }
  return reply.send(file.body);
}

function notBuilt(reply: FastifyReply) {
  return reply
    .code(503)
    .header('content-security-policy', DASHBOARD_CSP)
    .type('text/plain; charset=utf-8')
    .send(
      "The dashboard is not built on this server: run 'npm run build:dashboard' (scripts/install.sh does).\n",
    );
}

/** Every file of the build by its URL path (/index.html, /assets/index-H4SH.js). */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(path.join(dir, 'index.html'))) return assets;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    const body = readFileSync(full);
    const type = TYPES[path.extname(entry.name)] ?? 'application/octet-stream';
    const compressible =
      type.startsWith('text/') || type.startsWith('image/svg') || type === 'application/json';
    assets.set(`/${path.relative(dir, full).split(path.sep).join('/')}`, {
      body,
      gzip: compressible && body.length > 1024 ? gzipSync(body, { level: 9 }) : null,
      type,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    });
  }
  return assets;
}

// Petri's static file server: the web process of a static site. The build copies this one
// file into the slug (/app/.petri/static-server.mjs) because the sandbox cannot see Petri's
// install; so it is plain JavaScript on node:http, node:fs and node:zlib, with no dependencies.
// Run as `node server.mjs [ROOT]` (ROOT defaults to /app): listens on 0.0.0.0:$PORT.
import { createReadStream, realpathSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const TYPES = {
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  json: 'application/json',
  map: 'application/json',
  webmanifest: 'application/manifest+json',
  txt: 'text/plain; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  xml: 'application/xml',
  svg: 'image/svg+xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  ico: 'image/x-icon',
  wasm: 'application/wasm',
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  pdf: 'application/pdf',
  mp4: 'video/mp4',
  webm: 'video/webm',
  mp3: 'audio/mpeg',
};
const DEFAULT_TYPE = 'application/octet-stream';
// Formats that are already compressed (images, woff2, video) gain nothing from gzip.
const COMPRESSIBLE =
  /^(text\/|application\/(json|manifest\+json|xml|wasm)|image\/(svg\+xml|x-icon)|font\/(ttf|otf))/;
// Below this, the gzip header and the CPU cost more than the bytes saved.
const COMPRESS_MIN_BYTES = 1024;
// Platform files at the root, not part of the site (petri.toml names the app's egress hosts).
const HIDDEN_AT_ROOT = new Set(['Procfile', 'petri.toml']);
const NOT_FOUND_ERRORS = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP', 'EACCES']);

const DEFAULT_404 =
  '<!doctype html><html><head><meta charset="utf-8"><title>404 Not Found</title></head>' +
  '<body><h1>404 Not Found</h1><p>There is nothing at this address.</p></body></html>\n';

/**
 * An http.Server (not yet listening) serving the files under `root`.
 * @param {{ root: string, log?: (line: string) => void }} options
 */
export function createStaticServer({ root, log = (line) => process.stdout.write(`${line}\n`) }) {
  // Every path served is checked against the real root, so a symlink cannot lead out of it.
  const rootReal = realpathSync(root);
  return http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    const rawPath = (req.url ?? '').split(/[?#]/, 1)[0] ?? '';
    res.once('close', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // The path only: a query string may carry a token. Control characters are escaped so
      // a request cannot forge log lines.
      const shown = rawPath.replace(/[\x00-\x20\x7f]/g, (c) => encodeURIComponent(c));
      log(`${req.method} ${shown} ${res.statusCode} ${ms.toFixed(1)}ms`);
    });
    handle(rootReal, req, res).catch((err) => {
      process.stderr.write(`static server: ${req.method} ${rawPath}: ${err?.stack ?? err}\n`);
      if (!res.headersSent) sendText(req, res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
}

async function handle(root, req, res) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return sendText(req, res, 405, 'text/plain; charset=utf-8', 'method not allowed: use GET or HEAD\n');
  }
  const segments = urlSegments(req.url ?? '');
  if (!segments) return sendText(req, res, 400, 'text/plain; charset=utf-8', 'bad request path\n');
  const found = await lookup(root, segments);
  if (!found) return notFound(root, req, res);
  if (found.stats.isDirectory()) {
    // /docs → /docs/, so the page's relative links resolve inside the directory. Built from
    // the checked segments, never the raw path: `//evil.example` must not become a
    // protocol-relative Location.
    const rawPath = (req.url ?? '').split(/[?#]/, 1)[0] ?? '';
    if (!rawPath.endsWith('/')) {
      const query = (req.url ?? '').slice(rawPath.length).split('#', 1)[0] ?? '';
      const location = `/${segments.map(encodeURIComponent).join('/')}/${query}`;
      res.setHeader('Location', location);
      return sendText(req, res, 301, 'text/plain; charset=utf-8', `moved to ${location}\n`);
    }
    const index = await lookup(root, [...segments, 'index.html']);
    if (!index?.stats.isFile()) return notFound(root, req, res);
    return sendFile(req, res, index.file, index.stats, 200);
  }
  if (!found.stats.isFile()) return notFound(root, req, res);
  return sendFile(req, res, found.file, found.stats, 200);
}

/** The request path as decoded segments, or undefined when it is malformed (no leading
 * slash, bad percent-encoding, NUL). Empty segments (`a//b`) are dropped. */
export function urlSegments(url) {
  const rawPath = url.split(/[?#]/, 1)[0] ?? '';
  if (!rawPath.startsWith('/')) return undefined;
  let decoded;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  // Decoded first, then split: `%2f` is a separator and `%2e%2e` is `..` like any other.
  return decoded.split('/').filter((s) => s !== '');
}

/** The file a request path names, when it may be served: no segment is `.`, `..` or a
 * dotfile (which keeps .petri/, .git/ and .env out), and its real path, symlinks resolved,
 * stays under the root with no dotfile on the way either. */
async function lookup(root, segments) {
  if (segments.some((s) => s.startsWith('.'))) return undefined;
  if (segments.length === 1 && HIDDEN_AT_ROOT.has(segments[0])) return undefined;
  let file;
  try {
    file = await realpath(path.join(root, ...segments));
  } catch (err) {
    if (NOT_FOUND_ERRORS.has(err?.code)) return undefined;
    throw err;
  }
  if (file !== root && !file.startsWith(`${root}${path.sep}`)) return undefined;
  const inside = path
    .relative(root, file)
    .split(path.sep)
    .filter((s) => s !== '');
  if (inside.some((s) => s.startsWith('.'))) return undefined;
  if (inside.length === 1 && HIDDEN_AT_ROOT.has(inside[0])) return undefined;
  try {
    return { file, stats: await stat(file) };
  } catch (err) {
    if (NOT_FOUND_ERRORS.has(err?.code)) return undefined;
    throw err;
  }
}

async function notFound(root, req, res) {
  const page = await lookup(root, ['404.html']);
  if (page?.stats.isFile()) return sendFile(req, res, page.file, page.stats, 404);
  return sendText(req, res, 404, 'text/html; charset=utf-8', DEFAULT_404);
}

function sendText(req, res, status, type, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sendFile(req, res, file, stats, status) {
  const type = TYPES[path.extname(file).slice(1).toLowerCase()] ?? DEFAULT_TYPE;
  const compressible = COMPRESSIBLE.test(type);
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // HTML is revalidated on every visit so a new release shows at once; assets are cached
  // for an hour and then revalidated cheaply with their ETag.
  res.setHeader('Cache-Control', type.startsWith('text/html') ? 'no-cache' : 'public, max-age=3600');
  if (compressible) res.setHeader('Vary', 'Accept-Encoding');
  if (status === 200) {
    // Weak: the same ETag covers the gzip, brotli and identity bodies of one file.
    const etag = `W/"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
    res.setHeader('ETag', etag);
    res.setHeader('Last-Modified', stats.mtime.toUTCString());
    if (notModified(req, etag, stats.mtimeMs)) {
      res.statusCode = 304;
      res.removeHeader('Content-Type');
      return res.end();
    }
  }
  const encoding = compressible && stats.size >= COMPRESS_MIN_BYTES ? pickEncoding(req) : undefined;
  if (encoding) res.setHeader('Content-Encoding', encoding);
  else res.setHeader('Content-Length', stats.size);
  if (req.method === 'HEAD') return res.end();
  const streams = [createReadStream(file)];
  if (encoding === 'br') {
    // Quality 5 of 11: most of brotli's gain at a fraction of its CPU, compressing per request.
    streams.push(
      zlib.createBrotliCompress({
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: 5,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: stats.size,
        },
      }),
    );
  } else if (encoding === 'gzip') {
    streams.push(zlib.createGzip());
  }
  pipeline(...streams, res, (err) => {
    // A client that went away is not an error worth a line; the request line says 'close'.
    if (err && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      process.stderr.write(`static server: ${file}: ${err.message}\n`);
    }
  });
}

/** If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2); ETags compare weakly. */
function notModified(req, etag, mtimeMs) {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) {
    const opaque = (tag) => tag.trim().replace(/^W\//, '');
    return inm.split(',').some((tag) => tag.trim() === '*' || opaque(tag) === opaque(etag));
  }
  const ims = req.headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  // HTTP dates have whole seconds.
  return !Number.isNaN(since) && Math.floor(mtimeMs / 1000) * 1000 <= since;
}

/** br when the client takes it, else gzip, else none (identity), by Accept-Encoding's q-values. */
export function pickEncoding(req) {
  const header = req.headers['accept-encoding'];
  if (!header) return undefined;
  const q = new Map();
  for (const part of header.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const value = qParam ? Number.parseFloat(qParam.slice(2)) : 1;
    q.set(name.trim(), Number.isNaN(value) ? 0 : value);
  }
  const accepts = (name) => (q.get(name) ?? q.get('*') ?? 0) > 0;
  if (accepts('br')) return 'br';
  if (accepts('gzip')) return 'gzip';
  return undefined;
}

function isMain() {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write(`static server: PORT must be a port number, got '${process.env.PORT ?? ''}'\n`);
    process.exit(1);
  }
  const root = process.argv[2] ?? '/app';
  const server = createStaticServer({ root });
  server.listen(port, '0.0.0.0', () => {
    process.stdout.write(`static server: serving ${root} on 0.0.0.0:${port}\n`);
  });
  // Petri drains an instance before SIGTERM: finish what is in flight, then exit.
  process.once('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
}

// Test world for the egress proxy: the "internet" is a tiny HTTP server and a TCP echo server
// on 127.0.0.1, names resolve through a stub, and every connection the proxy opens is recorded,
// so a refusal can be shown to have happened before any packet left. Nothing here sends
// traffic anywhere but 127.0.0.1.
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { EgressAttempt } from '../../src/egress/counters.js';
import { EgressCounters } from '../../src/egress/counters.js';
import { type EgressClient, EgressProxy, type EgressProxyOptions } from '../../src/egress/proxy.js';
import { until } from '../../src/lib/until.js';

export interface Upstreams {
  httpPort: number;
  echoPort: number;
  /** Connections the echo server holds open now. */
  echoOpen(): number;
  close(): Promise<void>;
}

/**
 * HTTP: `/stream?bytes=N` answers N bytes; anything else answers JSON describing the request
 * it saw (method, url, headers, body length and sha256). TCP: echoes bytes back.
 */
export async function startUpstreams(): Promise<Upstreams> {
  const httpServer = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/stream') {
      const bytes = Number(url.searchParams.get('bytes'));
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let sent = 0;
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = () => {
        while (sent < bytes) {
          const n = Math.min(chunk.length, bytes - sent);
          sent += n;
          if (!res.write(chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => {
      length += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-upstream': 'yes',
        connection: 'x-drop-me',
        'x-drop-me': '1',
      });
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          headers: req.headers,
          bodyLength: length,
          bodySha: hash.digest('hex'),
        }),
      );
    });
  });
  const echoSockets = new Set<net.Socket>();
  const echoServer = net.createServer((s) => {
    echoSockets.add(s);
    s.on('close', () => echoSockets.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  const httpPort = await listen(httpServer);
  const echoPort = await listen(echoServer);
  return {
    httpPort,
    echoPort,
    echoOpen: () => echoSockets.size,
    async close() {
      for (const s of echoSockets) s.destroy();
      httpServer.closeAllConnections();
      await Promise.all([new Promise((r) => httpServer.close(r)), new Promise((r) => echoServer.close(r))]);
    },
  };
}

/** The stub DNS: upstream.test is the local "internet"; the others exist to be refused. */
export const NAMES: Record<string, string[]> = {
  'upstream.test': ['127.0.0.1'],
  'a.wild.test': ['127.0.0.1'],
  'deep.a.wild.test': ['127.0.0.1'],
  'wild.test': ['127.0.0.1'],
  'evil.test': ['127.0.0.1'],
  'meta.test': ['169.254.169.254'],
  'ten.test': ['10.0.0.5'],
  // A name that answers with a public and a private address: refused as a whole.
  // (93.184.215.14 stands for any public address; the proxy never dials it.)
  'mixed.test': ['93.184.215.14', '10.0.0.6'],
};

/** The names the operator lets resolve to loopback, because the test "internet" lives there. */
export const PRIVATE_OK = ['upstream.test', 'a.wild.test', 'deep.a.wild.test', 'wild.test'];

export interface ProxyWorld {
  proxy: EgressProxy;
  port: number;
  attempts: EgressAttempt[];
  counters: EgressCounters;
  /** Every TCP connection the proxy opened, in order. */
  connects: { host: string; port: number }[];
  /** Every name the proxy resolved. */
  lookups: string[];
}

export async function startProxy(
  clients: Record<string, EgressClient>,
  overrides: Partial<EgressProxyOptions> = {},
): Promise<ProxyWorld> {
  const attempts: EgressAttempt[] = [];
  const counters = new EgressCounters();
  const connects: { host: string; port: number }[] = [];
  const lookups: string[] = [];
  const proxy = new EgressProxy({
    identify: (address) => clients[address],
    allowPrivateHosts: PRIVATE_OK,
    onAttempt: (a) => {
      attempts.push(a);
      counters.record(a);
    },
    resolve: async (host) => {
      lookups.push(host);
      const found = NAMES[host];
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return found;
    },
    connect: (to) => {
      connects.push(to);
      // The proxy must only ever dial the local test servers.
      if (to.host !== '127.0.0.1') throw new Error(`test proxy tried to connect to ${to.host}`);
      return net.connect(to);
    },
    connectTimeoutMs: 2000,
    ...overrides,
  });
  const port = await proxy.listen('127.0.0.1', 0);
  return { proxy, port, attempts, counters, connects, lookups };
}

export interface ProxiedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  reusedSocket: boolean;
}

/** A request through the proxy the way an HTTP_PROXY client sends it: an absolute URI. */
export function viaProxy(
  proxyPort: number,
  url: string,
  opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer; agent?: http.Agent } = {},
): Promise<ProxiedResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: proxyPort,
      method: opts.method ?? 'GET',
      path: url,
      headers: { host: new URL(url).host, ...opts.headers },
      agent: opts.agent ?? false,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          reusedSocket: req.reusedSocket,
        }),
      );
    });
    req.end(opts.body);
  });
}

/** A plain TCP client that keeps everything it receives, for CONNECT and malformed requests. */
export class RawClient {
  readonly socket: net.Socket;
  private received = Buffer.alloc(0);
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.received = Buffer.concat([this.received, c]);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static async open(port: number): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  get text(): string {
    return this.received.toString('latin1');
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until what was received contains text. */
  async waitFor(text: string, timeout = 5000): Promise<void> {
    await until(() => this.text.includes(text), {
      timeout,
      interval: 10,
      message: `${JSON.stringify(text)}`,
    });
  }

  async waitClosed(timeout = 5000): Promise<void> {
    await until(() => this.closed, { timeout, interval: 10, message: 'the connection to close' });
  }

  /** Everything after the response head. */
  get body(): string {
    const t = this.text;
    const end = t.indexOf('\r\n\r\n');
    return end < 0 ? '' : t.slice(end + 4);
  }

  get status(): number {
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(this.text)?.[1] ?? 0);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Sends raw bytes to the proxy and returns the whole answer once the proxy closes. */
export async function rawExchange(port: number, request: string | Buffer): Promise<RawClient> {
  const c = await RawClient.open(port);
  c.write(request);
  await c.waitClosed();
  return c;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

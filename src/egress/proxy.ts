// Petri's egress proxy: the only way out of an app's network namespace (apps get HTTP_PROXY
// and HTTPS_PROXY pointing here). It lets through what the app declared in petri.toml, resolves
// names itself and connects to the address it checked (so no DNS rebinding can reach the host,
// any of its own addresses, its private networks or cloud metadata), refuses the rest with a message saying how to
// declare a host, and reports every attempt through onAttempt.
import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage, isUserError } from '../lib/errors.js';
import { forbiddenAddressKind } from './address-policy.js';
import type { EgressAttempt } from './counters.js';
import { HostAddresses } from './host-addresses.js';
import { type EgressTarget, formatHostPort, isEgressAllowed } from './matching.js';
import { parseAbsoluteTarget, parseConnectTarget } from './target.js';

export interface EgressClient {
  app: string;
  /** Egress patterns (host:port, *.domain:port, host). */
  allowed: readonly string[];
}

export interface EgressProxyOptions {
  /** Who is asking: the app (or build) behind a source address; undefined = refuse (403 'unknown client'). */
  identify: (remoteAddress: string) => EgressClient | undefined | Promise<EgressClient | undefined>;
  /** Host names the operator allows even when they resolve to private/loopback addresses or
   * to this host's own (e.g. an internal API). */
  allowPrivateHosts?: readonly string[];
  /** Every address of this host's interfaces, re-read every few seconds; default
   * os.networkInterfaces(). Tests give their own. */
  hostAddresses?: () => Iterable<string>;
  /** Called for every attempt (allowed or refused); the platform persists counts (see EgressCounters). */
  onAttempt?: (a: EgressAttempt) => void;
  /** Name to addresses; default: the system resolver (dns.lookup, all addresses). */
  resolve?: (host: string) => Promise<string[]>;
  /** Opens the TCP connection to a checked address; default net.connect. Tests spy on it. */
  connect?: (to: { host: string; port: number }) => net.Socket;
  /** Per address tried, and for name resolution; default 10 s. */
  connectTimeoutMs?: number;
  /** A tunnel or upstream connection with no bytes either way for this long is closed; default 5 min. */
  idleTimeoutMs?: number;
  logger?: { warn(o: object, m?: string): void };
}

// Bounds what one request can make the proxy hold in memory; Node's parser enforces it.
const MAX_HEADER_BYTES = 16 * 1024;
// A name with many addresses must not turn one request into many slow connects.
const MAX_ADDRESSES_TRIED = 4;
// Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, never forwarded. Host is set
// from the target (RFC 9112 3.2.2) so an app cannot reach another virtual host on the same IP.
// Expect is answered by this proxy's server already.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
]);

type Reached = { socket: net.Socket } | Refusal;

interface Refusal {
  status: number;
  body: string;
  /** The verdict of policy, for the count: false when policy refused, true when the way out failed. */
  allowed: boolean;
  reason: string;
}

export class EgressProxy {
  private readonly server: http.Server;
  private readonly allowPrivate: Set<string>;
  private readonly hostAddresses: HostAddresses;
  private readonly resolveName: (host: string) => Promise<string[]>;
  private readonly connectTo: (to: { host: string; port: number }) => net.Socket;
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  /** Every socket this proxy holds, both sides, so close() leaves nothing open. */
  private readonly sockets = new Set<net.Socket | Duplex>();

  constructor(private readonly opts: EgressProxyOptions) {
    this.allowPrivate = new Set((opts.allowPrivateHosts ?? []).map(normalizeName));
    this.hostAddresses = new HostAddresses({ read: opts.hostAddresses });
    this.resolveName = opts.resolve ?? systemResolve;
    this.connectTo = opts.connect ?? ((to) => net.connect(to));
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 5 * 60_000;
    this.server = http.createServer({
      maxHeaderSize: MAX_HEADER_BYTES,
      // The default 5-minute limit on receiving a request would cut long uploads; idle
      // sockets are closed by the idle timeout instead. Headers must still arrive promptly.
      requestTimeout: 0,
      headersTimeout: 30_000,
    });
    this.server.setTimeout(this.idleTimeoutMs);
    this.server.on('connection', (socket: net.Socket) => this.track(socket));
    this.server.on('request', (req, res) => {
      this.onRequest(req, res).catch((err: unknown) => this.internalError(err, res));
    });
    this.server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onConnect(req, socket, head).catch((err: unknown) => {
        this.opts.logger?.warn({ err: errorMessage(err) }, 'egress proxy: CONNECT failed');
        socket.destroy();
      });
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket));
  }

  /** Listens on host:port (0 = any free port) and returns the port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops accepting and closes every connection, tunnels included. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    return closed;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const client = await this.identify(req.socket);
    if (!client) return reply(res, 403, unknownClient(req.socket));
    const raw = req.url ?? '';
    if (raw.startsWith('/') || raw === '*') {
      return reply(
        res,
        400,
        "petri egress: this is Petri's egress proxy, not a web server. Send requests through it as a proxy " +
          '(HTTP_PROXY and HTTPS_PROXY): absolute http:// URLs, and CONNECT for https://.\n',
      );
    }
    let target: ReturnType<typeof parseAbsoluteTarget>;
    try {
      target = parseAbsoluteTarget(raw);
    } catch (err) {
      if (!isUserError(err)) throw err;
      return reply(res, 400, `${err.message}\n`);
    }

    const reached = await this.reach(client, target);
    if (!('socket' in reached)) return reply(res, reached.status, reached.body);
    const socket = reached.socket;
    if (res.destroyed || req.socket.destroyed) {
      socket.destroy();
      return;
    }
    socket.setTimeout(this.idleTimeoutMs, () => socket.destroy(new IdleTimeout()));

    const upstream = http.request({
      createConnection: () => socket,
      method: req.method,
      path: target.path,
      headers: forwardHeaders(req, formatAuthority(target)),
      setHost: false,
    });
    upstream.on('response', (upRes) => {
      upRes.on('error', () => res.destroy());
      try {
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, withoutHopByHop(upRes.rawHeaders));
      } catch (err) {
        // Node's parser accepts some header bytes its writer refuses; that is the upstream's fault.
        upstream.destroy();
        reply(
          res,
          502,
          `petri egress: ${formatHostPort(target.host, target.port)} sent a response that cannot be forwarded: ${errorMessage(err)}\n`,
        );
        return;
      }
      upRes.pipe(res);
    });
    upstream.on('error', (err) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const idle = err instanceof IdleTimeout;
      reply(
        res,
        idle ? 504 : 502,
        `petri egress: ${formatHostPort(target.host, target.port)} ${idle ? 'did not answer in time' : `failed: ${errorMessage(err)}`}\n`,
      );
    });
    // The client went away before the answer was complete: stop talking to the upstream.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    // An app that hangs up mid-upload aborts the upstream request too.
    req.on('error', () => upstream.destroy());
    req.pipe(upstream);
  }

  private async onConnect(req: http.IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    // From here the socket is ours alone; a reset from the app must not become an uncaught error.
    client.on('error', () => client.destroy());
    const who = await this.identify(req.socket);
    if (!who) return refuseRaw(client, 403, unknownClient(req.socket));
    let target: EgressTarget;
    try {
      target = parseConnectTarget(req.url ?? '');
    } catch (err) {
      if (!isUserError(err)) throw err;
      return refuseRaw(client, 400, `${err.message}\n`);
    }

    const reached = await this.reach(who, target);
    if (!('socket' in reached)) return refuseRaw(client, reached.status, reached.body);
    const upstream = reached.socket;
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    // Bytes either way reset both sockets' timers, so a tunnel closes only when both are silent.
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      (s as net.Socket).setTimeout(this.idleTimeoutMs, closeBoth);
      s.on('error', closeBoth);
      s.on('close', closeBoth);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /**
   * Decides and opens the way out for one attempt, and reports it. The address is checked
   * before any connection is made, and the connection goes to that very address.
   */
  private async reach(client: EgressClient, target: EgressTarget): Promise<Reached> {
    const outcome = await this.decide(client, target);
    const failed = 'socket' in outcome ? undefined : outcome;
    this.report({
      app: client.app,
      host: target.host,
      port: target.port,
      allowed: failed ? failed.allowed : true,
      reason: failed?.reason,
      time: new Date(),
    });
    return outcome;
  }

  private async decide(client: EgressClient, target: EgressTarget): Promise<Reached> {
    const where = formatHostPort(target.host, target.port);
    const prefix = `petri egress: ${client.app} may not reach ${where}`;
    if (!isEgressAllowed(client.allowed, target)) {
      return {
        status: 403,
        allowed: false,
        reason: 'not declared',
        body: `${prefix}. Declare it in petri.toml:\n[network]\negress = ["${where}"]\nand deploy again.\n`,
      };
    }

    const literal = net.isIP(target.host) !== 0;
    let addresses: string[];
    if (literal) {
      addresses = [target.host];
    } else {
      try {
        addresses = await withTimeout(
          this.resolveName(target.host),
          this.connectTimeoutMs,
          'DNS lookup timed out',
        );
        if (addresses.length === 0) throw new Error('no addresses');
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
        return {
          status: 502,
          allowed: true,
          reason: `unresolvable: ${why}`,
          body: `petri egress: cannot resolve ${target.host}: ${errorMessage(err)}\n`,
        };
      }
    }

    // Every address must pass, not just the first: a name that answers with a private
    // address next to a public one is misconfigured or an attempt at rebinding.
    if (!this.allowPrivate.has(target.host)) {
      for (const ip of addresses) {
        // The host's own addresses are refused whatever their range (a public address on the
        // host's interface reaches every service listening on all interfaces), and named as
        // the host's in the message unless the range already says so (loopback).
        const range = forbiddenAddressKind(ip);
        const kind = range !== 'loopback' && this.hostAddresses.has(ip) ? HOST_KIND : range;
        if (kind === undefined) continue;
        const what = literal
          ? `${target.host} is ${describeKind(kind)}`
          : `${target.host} resolves to ${describeKind(kind)} (${ip})`;
        return {
          status: 403,
          allowed: false,
          reason: `${kind} address ${ip}`,
          body:
            `${prefix}: ${what}, which apps may not reach.\n` +
            'If it is an internal service apps should use, an operator can allow it by name.\n',
        };
      }
    }

    let lastError: unknown;
    for (const ip of addresses.slice(0, MAX_ADDRESSES_TRIED)) {
      try {
        return { socket: await this.dial(ip, target.port) };
      } catch (err) {
        lastError = err;
      }
    }
    const timedOut = lastError instanceof ConnectTimeout;
    const code = (lastError as NodeJS.ErrnoException | undefined)?.code;
    return {
      status: timedOut ? 504 : 502,
      allowed: true,
      reason: timedOut ? 'connect timeout' : `connect failed: ${code ?? errorMessage(lastError)}`,
      body: `petri egress: cannot connect to ${where}: ${errorMessage(lastError)}\n`,
    };
  }

  /** Connects to one checked address (an IP literal: the OS resolves nothing). */
  private dial(ip: string, port: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = this.connectTo({ host: ip, port });
      this.track(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new ConnectTimeout(`no answer from ${formatHostPort(ip, port)} within ${this.connectTimeoutMs} ms`),
        );
      }, this.connectTimeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.setNoDelay(true);
        resolve(socket);
      });
    });
  }

  /** May ask the platform (a store or driver lookup); the request waits, paused, meanwhile. */
  private async identify(socket: net.Socket): Promise<EgressClient | undefined> {
    const address = socket.remoteAddress;
    if (address === undefined) return undefined;
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; identify them by their IPv4.
    const plain = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
    const client = await this.opts.identify(plain);
    if (!client) this.opts.logger?.warn({ remoteAddress: plain }, 'egress proxy: refused an unknown client');
    return client;
  }

  private report(a: EgressAttempt): void {
    try {
      this.opts.onAttempt?.(a);
    } catch (err) {
      // Counting must never break an app's traffic.
      this.opts.logger?.warn({ err: errorMessage(err) }, 'egress proxy: onAttempt failed');
    }
  }

  private track(socket: net.Socket | Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private internalError(err: unknown, res: http.ServerResponse): void {
    this.opts.logger?.warn({ err: errorMessage(err) }, 'egress proxy: request failed');
    if (!res.headersSent) reply(res, 502, 'petri egress: internal error\n');
    else res.destroy();
  }
}

const HOST_KIND = "this host's";

/** "a private address", "an IETF protocol assignment address", "an address of this host". */
function describeKind(kind: string): string {
  if (kind === HOST_KIND) return 'an address of this host';
  return `${/^([aeio]|IETF|unspec)/i.test(kind) ? 'an' : 'a'} ${kind} address`;
}

class ConnectTimeout extends Error {}
class IdleTimeout extends Error {
  constructor() {
    super('no data within the idle timeout');
  }
}

function reply(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** A response written on a socket no HTTP server owns any more (CONNECT, client errors). */
function refuseRaw(socket: Duplex, status: number, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  // Node's default would answer 431 for large headers; the proxy says what it refused instead.
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    refuseRaw(socket, 408, 'petri egress: the request headers did not arrive in time\n');
    return;
  }
  const why = err.code === 'HPE_HEADER_OVERFLOW' ? 'request headers are too large' : 'malformed request';
  refuseRaw(socket, 400, `petri egress: ${why}\n`);
}

function unknownClient(socket: net.Socket): string {
  return `petri egress: unknown client ${socket.remoteAddress ?? ''}; only Petri's apps and builds may use this proxy.\n`;
}

/** The request's headers without hop-by-hop ones, with Host set from the target. */
function forwardHeaders(req: http.IncomingMessage, authority: string): string[] {
  const out = ['Host', authority, ...withoutHopByHop(req.rawHeaders)];
  // The body is re-framed on this hop: keep chunked framing when the client used it (Node
  // would otherwise send a GET body with no framing at all).
  if (req.headers['transfer-encoding'] !== undefined) out.push('Transfer-Encoding', 'chunked');
  out.push('Connection', 'close');
  return out;
}

/** rawHeaders (name, value, name, value...) without hop-by-hop headers and those Connection lists. */
function withoutHopByHop(raw: readonly string[]): string[] {
  const listed = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === 'connection') {
      for (const token of (raw[i + 1] ?? '').split(',')) listed.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    out.push(name, raw[i + 1] ?? '');
  }
  return out;
}

function formatAuthority(t: EgressTarget): string {
  const host = net.isIP(t.host) === 6 ? `[${t.host}]` : t.host;
  return t.port === 80 ? host : `${host}:${t.port}`;
}

function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

async function systemResolve(host: string): Promise<string[]> {
  const found = await dns.promises.lookup(host, { all: true, verbatim: true });
  return found.map((a) => a.address);
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

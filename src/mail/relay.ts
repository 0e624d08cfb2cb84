// The mail relay every app may send through (issue 17): an SMTP server (smtp-server) and a
// small HTTP send API on the sandboxes' gateway, both requiring the app's own credentials;
// every message passes the same checks (recipients, audience, unsubscribed, headers, the
// quota reserved atomically with the queue row) and is refused at SMTP time with a reply
// that says which limit and when it resets, never dropped. Accepted mail is queued in the
// store (synchronous=FULL) and delivered by delivery.ts. The SMTP port listens from the start,
// but smtp-server (1.3 MiB of heap) is loaded by the first connection: most hosts with mail on
// see none for hours, or ever (issue 16).
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import type { Logger } from 'pino';
import type { SMTPServer, SMTPServerAuthentication, SMTPServerSession } from 'smtp-server';
import {
  appForMail,
  isUnsubscribed,
  type MailLimits,
  type MailRefusal,
  mailAddress,
  mailLimitsOf,
  mayMail,
  rateRefusal,
  recordRefusal,
  reserveMessage,
} from '../domain/mail.js';
import { mailApiToken, mailPassword, sameSecret } from '../domain/mail-credentials.js';
import type { MailConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import type { SecretBox } from '../lib/secrets.js';
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';
import { isRefusal, prepareMessage } from './message.js';
import type { MailNotices } from './notices.js';

/** Failed logins per (address, user) within AUTH_WINDOW_MS before that user's AUTH from that
 * address is refused: sandboxes sharing an address never lock each other out. */
const AUTH_FAILURES_MAX = 10;
const AUTH_WINDOW_MS = 10 * 60_000;
/** The failures remembered at most (a flood of made-up users forgets the oldest). */
const AUTH_FAILURES_KEPT = 10_000;
/** Connections to the SMTP server at most: in all, from one address, of one app (beyond: 421).
 * An app's 100 concurrent sends still get in (the quota test). */
const MAX_CLIENTS = 1000;
const CONNECTIONS_PER_ADDRESS = 100;
const CONNECTIONS_PER_APP = 100;
/** On close, how long open SMTP connections may finish before they are told 421 and closed
 * (smtp-server's own closeTimeout, which its close() cannot apply to sockets handed to it). */
const SMTP_CLOSE_TIMEOUT_MS = 30_000;
/** Refused transactions on one connection before it is closed (421): a loop reconnects. */
const SESSION_REFUSALS_MAX = 20;
/** While an app is paused, one refusal a minute is stored; the others are counted into it. */
const PAUSED_ROW_EVERY_MS = 60_000;
/** HTTP send API: requests in flight per app (beyond: 429), and how long one may take to arrive. */
const HTTP_IN_FLIGHT_PER_APP = 4;
const HTTP_REQUEST_TIMEOUT_MS = 30_000;
/** An address (RFC 5321 path, no display name, no line breaks). */
const ADDRESS = /^[^\s<>@",;:\\()[\]]{1,64}@[a-z0-9.-]{1,253}$/i;

export interface MailRelayOptions {
  db: Store;
  config: MailConfig;
  secrets: SecretBox;
  logger: Logger;
  /** Where to listen: the gateway (or 127.0.0.1); ports 0 pick free ones (tests). */
  host: string;
  smtpPort: number;
  httpPort: number;
  /** Tells owners of a pause. */
  notices?: MailNotices;
  /** Called when a message was queued, so delivery need not wait for its next pass. */
  onQueued?: () => void;
}

type Session = SMTPServerSession & {
  app?: App;
  limits?: MailLimits;
  refusedOnce?: boolean;
  /** Refused transactions on this connection. */
  refusals?: number;
};

class RelayError extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
    /** The limit of a refusal (per-hour, recipients, size ...); none for a failed login. */
    readonly limit?: string,
  ) {
    super(message);
  }
}

/** smtp-server's reply for a refusal: the code and the enhanced status with the text. */
function smtpError(r: MailRefusal): RelayError {
  const enhanced = r.code >= 500 ? (r.limit === 'size' ? '5.3.4' : '5.7.1') : '4.7.0';
  return new RelayError(r.code, `${enhanced} ${r.message}`, r.limit);
}

export class MailRelay {
  /** The SMTP port, listening from start(); it hands each connection to smtp-server. */
  private smtpListener?: NetServer;
  /** smtp-server, made with the first connection (set once made). */
  private smtp?: SMTPServer;
  private smtpLoading?: Promise<SMTPServer>;
  private http?: Server;
  private readonly authFailures = new Map<string, { count: number; since: number }>();
  /** Open SMTP connections by session id, and their counts per address and per app. */
  private readonly connections = new Map<string, { ip: string; appId?: number }>();
  private readonly perAddress = new Map<string, number>();
  private readonly perApp = new Map<number, number>();
  /** Per paused app: when a refusal was last stored, and how many were counted since. */
  private readonly pausedRefusals = new Map<number, { storedAt: number; unstored: number }>();
  private readonly httpInFlight = new Map<number, number>();

  constructor(private readonly o: MailRelayOptions) {}

  get smtpPort(): number {
    return (this.smtpListener!.address() as AddressInfo).port;
  }

  get httpPort(): number {
    return (this.http!.address() as AddressInfo).port;
  }

  async start(): Promise<void> {
    const taken = (port: number, key: string) => (err: NodeJS.ErrnoException) =>
      err.code === 'EADDRINUSE'
        ? new UserError(
            'conflict',
            `the mail relay's port ${this.o.host}:${port} is already in use: free it, or set "mail": {"${key}": ...} in the config file`,
          )
        : err;
    const listener = createNetServer((socket) => this.handOver(socket));
    this.smtpListener = listener;
    listener.on('error', (err) => this.o.logger.warn({ err }, 'mail relay: SMTP error'));
    await new Promise<void>((resolve, reject) => {
      listener.listen(this.o.smtpPort, this.o.host, resolve);
      listener.once('error', (err) => reject(taken(this.o.smtpPort, 'smtpPort')(err)));
    });
    this.http = createServer(
      { requestTimeout: HTTP_REQUEST_TIMEOUT_MS, headersTimeout: 10_000 },
      (req, res) => void this.serveHttp(req, res),
    );
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', (err) => reject(taken(this.o.httpPort, 'httpPort')(err)));
      this.http!.listen(this.o.httpPort, this.o.host, resolve);
    });
  }

  /** An accepted connection to smtp-server, as if its own listener had accepted it (its
   * 'connection' handler: the same greeting, limits and timeouts), once it is loaded. */
  private handOver(socket: Socket): void {
    if (this.smtp) {
      this.smtp.server.emit('connection', socket);
      return;
    }
    // A client that resets while smtp-server loads must not be an uncaught error.
    const early = () => socket.destroy();
    socket.on('error', early);
    this.smtpLoading ??= import('smtp-server').then(({ SMTPServer }) => {
      this.smtp = this.makeSmtp(SMTPServer);
      return this.smtp;
    });
    this.smtpLoading.then(
      (smtp) => {
        socket.off('error', early);
        if (!socket.destroyed) smtp.server.emit('connection', socket);
      },
      (err: unknown) => {
        this.o.logger.error({ err }, 'mail relay: smtp-server could not be loaded');
        socket.destroy();
      },
    );
  }

  private makeSmtp(SMTPServerClass: typeof SMTPServer): SMTPServer {
    const { config } = this.o;
    const smtp = new SMTPServerClass({
      name: config.domain,
      banner: 'Petri mail relay: AUTH with the credentials in SMTP_URL',
      authMethods: ['PLAIN', 'LOGIN'],
      // The hop from a sandbox to its gateway never leaves this host; a certificate no client
      // can verify would make nodemailer's default (STARTTLS when offered) fail instead.
      hideSTARTTLS: true,
      allowInsecureAuth: true,
      size: config.maxBytes,
      disableReverseLookup: true,
      maxAllowedUnauthenticatedCommands: 5,
      maxClients: MAX_CLIENTS,
      logger: false,
      onConnect: (session, cb) => {
        const ip = session.remoteAddress;
        const n = this.perAddress.get(ip) ?? 0;
        if (n >= CONNECTIONS_PER_ADDRESS) {
          return cb(
            new RelayError(
              421,
              `4.7.0 too many connections from ${ip} (at most ${CONNECTIONS_PER_ADDRESS} at once); close some, then try again`,
            ),
          );
        }
        this.perAddress.set(ip, n + 1);
        this.connections.set(session.id, { ip });
        cb();
      },
      onClose: (session) => this.forget(session.id),
      onAuth: (auth, session, cb) => {
        this.authenticate(auth, session as Session).then(
          (app) => cb(null, { user: app.name }),
          (err: Error) => cb(err),
        );
      },
      onMailFrom: (_address, session, cb) => {
        this.checkSender(session as Session).then(() => cb(), cb);
      },
      onRcptTo: (address, session, cb) => {
        this.checkRecipient(session as Session, address.address).then(() => cb(), cb);
      },
      onData: (stream, session, cb) => {
        // Bytes past the size limit are counted, not kept: the answer is 552 whatever follows.
        let chunks: Buffer[] = [];
        let size = 0;
        stream.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= config.maxBytes) chunks.push(c);
          else chunks = [];
        });
        stream.on('error', () => undefined);
        stream.on('end', () => {
          const s = session as Session;
          const recipients = s.envelope.rcptTo.map((r) => r.address);
          const refused = (err: Error) => {
            if (err instanceof RelayError) s.refusals = (s.refusals ?? 0) + 1;
            cb(err);
          };
          if (size > config.maxBytes || (stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
            const refusal: MailRefusal = {
              code: 552,
              limit: 'size',
              message: `message size limit of ${config.maxBytes} bytes exceeded`,
            };
            void this.refuse(s.app!, recipients, '', size, refusal).finally(() =>
              refused(smtpError(refusal)),
            );
            return;
          }
          this.accept(s.app!, recipients, Buffer.concat(chunks)).then(
            (id) => cb(null, `2.0.0 queued as ${id}`),
            refused,
          );
        });
      },
    });
    smtp.on('error', (err) => this.o.logger.warn({ err }, 'mail relay: SMTP error'));
    return smtp;
  }

  async close(): Promise<void> {
    await Promise.all([
      this.closeSmtp(),
      new Promise<void>((r) => {
        if (!this.http) return r();
        this.http.close(() => r());
        this.http.closeAllConnections();
      }),
    ]);
  }

  /** As smtp-server's close(): no new connections; done when the open ones have ended, or
   * after SMTP_CLOSE_TIMEOUT_MS, when those left are told 421 and closed. */
  private async closeSmtp(): Promise<void> {
    const listener = this.smtpListener;
    if (!listener) return;
    // Its callback comes once every connection it accepted has ended.
    const ended = new Promise<void>((resolve) => listener.close(() => resolve()));
    const smtp = await this.smtpLoading?.catch(() => undefined);
    if (!smtp) return ended;
    smtp.close();
    let deadline: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      deadline = setTimeout(() => {
        for (const connection of smtp.connections) {
          connection.send(421, 'Server shutting down');
          connection.close();
        }
        resolve();
      }, SMTP_CLOSE_TIMEOUT_MS);
      deadline.unref();
    });
    await Promise.race([ended, forced]);
    clearTimeout(deadline);
  }

  private forget(sessionId: string): void {
    const c = this.connections.get(sessionId);
    if (!c) return;
    this.connections.delete(sessionId);
    const n = (this.perAddress.get(c.ip) ?? 1) - 1;
    if (n > 0) this.perAddress.set(c.ip, n);
    else this.perAddress.delete(c.ip);
    if (c.appId === undefined) return;
    const m = (this.perApp.get(c.appId) ?? 1) - 1;
    if (m > 0) this.perApp.set(c.appId, m);
    else this.perApp.delete(c.appId);
  }

  private async authenticate(auth: SMTPServerAuthentication, session: Session): Promise<App> {
    const ip = session.remoteAddress;
    const nowMs = Date.now();
    const key = `${ip}\0${auth.username ?? ''}`;
    const failures = this.authFailures.get(key);
    const app = auth.username ? await appForMail(this.o.db, auth.username) : undefined;
    const ok =
      app !== undefined &&
      app.stage !== 'archived' &&
      typeof auth.password === 'string' &&
      sameSecret(auth.password, mailPassword(this.o.secrets, app));
    // The right password always gets in (it is a 256-bit key: the lockout cannot be what keeps
    // a guess out, and it must not let one tenant lock another out); wrong ones are told of it.
    if (!ok || !app) {
      const f = failures && nowMs - failures.since < AUTH_WINDOW_MS ? failures : { count: 0, since: nowMs };
      f.count++;
      this.authFailures.delete(key);
      this.authFailures.set(key, f);
      this.pruneAuthFailures(nowMs);
      if (f.count > AUTH_FAILURES_MAX) {
        const at = new Date(f.since + AUTH_WINDOW_MS).toISOString().slice(11, 16);
        throw new RelayError(
          454,
          `4.7.0 too many failed logins as '${String(auth.username).slice(0, 64)}' from ${ip}; try again after ${at} UTC with the user and password in the app's SMTP_URL`,
        );
      }
      throw new RelayError(
        535,
        "5.7.8 authentication failed: use the user and password in the app's SMTP_URL",
      );
    }
    this.authFailures.delete(key);
    const connection = this.connections.get(session.id);
    if (connection) {
      const n = this.perApp.get(app.id) ?? 0;
      if (n >= CONNECTIONS_PER_APP) {
        throw new RelayError(
          421,
          `4.7.0 ${app.name} has ${n} connections open to the relay (at most ${CONNECTIONS_PER_APP}); reuse or close them`,
        );
      }
      this.perApp.set(app.id, n + 1);
      connection.appId = app.id;
    }
    session.app = app;
    session.limits = await mailLimitsOf(this.o.db, this.o.config, app.id);
    return app;
  }

  private pruneAuthFailures(nowMs: number): void {
    if (this.authFailures.size <= AUTH_FAILURES_KEPT) return;
    for (const [k, f] of this.authFailures) {
      if (nowMs - f.since >= AUTH_WINDOW_MS) this.authFailures.delete(k);
    }
    // Still too many: the oldest go first (a Map keeps insertion order).
    for (const k of this.authFailures.keys()) {
      if (this.authFailures.size <= AUTH_FAILURES_KEPT) break;
      this.authFailures.delete(k);
    }
  }

  /** MAIL FROM: the login still holds (no rotation, no archive since), the connection has not
   * been refused too often, then the rates and the pause. */
  private async checkSender(session: Session): Promise<void> {
    session.refusedOnce = false;
    const given = session.app!;
    const app = await appForMail(this.o.db, given.name);
    if (!app || app.id !== given.id || app.mail_key_version !== given.mail_key_version) {
      throw new RelayError(
        421,
        "4.7.0 this app's mail credentials changed (petri mail rotate): connect again with the new SMTP_URL",
      );
    }
    if (app.stage === 'archived') throw new RelayError(421, '4.7.1 this app no longer sends mail');
    if ((session.refusals ?? 0) >= SESSION_REFUSALS_MAX) {
      throw new RelayError(
        421,
        `4.7.0 ${session.refusals} messages refused on this connection; fix what the replies said before sending again`,
      );
    }
    const refusal = await rateRefusal(this.o.db, app.id, session.limits!);
    if (refusal) {
      await this.refuseOnce(session, [], refusal);
      throw smtpError(refusal);
    }
  }

  private async checkRecipient(session: Session, address: string): Promise<void> {
    const refusal = await this.recipientRefusal(
      session.app!,
      session.limits!,
      address,
      session.envelope.rcptTo.length,
    );
    if (refusal) {
      await this.refuseOnce(session, [address], refusal);
      throw smtpError(refusal);
    }
  }

  /** One refusal per transaction counts towards the pause: a flood of RCPTs is one. */
  private async refuseOnce(session: Session, recipients: string[], refusal: MailRefusal): Promise<void> {
    if (session.refusedOnce) return;
    session.refusedOnce = true;
    session.refusals = (session.refusals ?? 0) + 1;
    await this.refuse(session.app!, recipients, '', 0, refusal);
  }

  private async recipientRefusal(
    app: App,
    limits: MailLimits,
    address: string,
    already: number,
  ): Promise<MailRefusal | undefined> {
    if (already >= limits.recipients) {
      return {
        code: 452,
        limit: 'recipients',
        message: `recipients limit of ${limits.recipients} per message reached; send another message for the rest`,
      };
    }
    if (!ADDRESS.test(address)) {
      return {
        code: 553,
        limit: 'address',
        message: `'${address.slice(0, 80)}' is not an address like ana@example.org`,
      };
    }
    if (await isUnsubscribed(this.o.db, app.id, address)) {
      return { code: 550, limit: 'unsubscribed', message: `${address} unsubscribed from ${app.name}'s mail` };
    }
    if (this.o.config.restrictToAudience && !(await mayMail(this.o.db, app, address))) {
      return {
        code: 550,
        limit: 'audience',
        message: `${app.name}'s audience is '${app.audience}': it mails only people who may use it, and ${address} may not (invite them, or make the app public)`,
      };
    }
    return undefined;
  }

  private async refuse(app: App, recipients: string[], subject: string, size: number, refusal: MailRefusal) {
    let stored = refusal;
    if (refusal.limit === 'paused') {
      // A paused app's loop is counted, not written row by row.
      const nowMs = Date.now();
      const seen = this.pausedRefusals.get(app.id);
      if (seen && nowMs - seen.storedAt < PAUSED_ROW_EVERY_MS) {
        seen.unstored++;
        return;
      }
      if (seen?.unstored) {
        stored = {
          ...refusal,
          message: `${refusal.message} (${seen.unstored} more refused while paused before this)`,
        };
      }
      this.pausedRefusals.set(app.id, { storedAt: nowMs, unstored: 0 });
    }
    const paused = await recordRefusal(this.o.db, this.o.config, app, {
      id: randomUUID(),
      recipients,
      subject,
      size,
      refusal: stored,
    });
    if (!paused) return;
    this.o.logger.warn({ app: app.name }, 'mail relay: app paused after repeated refusals');
    const until = new Date(Date.now() + this.o.config.pauseMinutes * 60_000).toISOString();
    await this.o.notices
      ?.paused(app, until, refusal.message)
      .catch((err: Error) =>
        this.o.logger.error({ err, app: app.name }, 'mail relay: could not tell the owner of the pause'),
      );
  }

  /** Checks, completes and queues a message; answers its id, or throws the refusal's reply. */
  async accept(given: App, to: string[], raw: Buffer): Promise<string> {
    // The row as it is now: a connection may outlive a change of audience or an archive.
    const app = await appForMail(this.o.db, given.name);
    if (!app || app.id !== given.id || app.stage === 'archived') {
      throw new RelayError(554, '5.7.1 this app no longer sends mail');
    }
    if (app.mail_key_version !== given.mail_key_version) {
      throw new RelayError(
        554,
        "5.7.0 this app's mail credentials changed (petri mail rotate): connect again with the new SMTP_URL",
      );
    }
    const recipients = [...new Set(to)];
    const limits = await mailLimitsOf(this.o.db, this.o.config, app.id);
    const id = randomUUID();
    const fail = async (refusal: MailRefusal, subject = '') => {
      await this.refuse(app, recipients, subject, raw.length, refusal);
      return smtpError(refusal);
    };
    if (recipients.length === 0)
      throw await fail({ code: 554, limit: 'recipients', message: 'no recipients' });
    for (const [i, r] of recipients.entries()) {
      const refusal = await this.recipientRefusal(app, limits, r, i);
      if (refusal) throw await fail(refusal);
    }
    if (raw.length > limits.maxBytes) {
      throw await fail({
        code: 552,
        limit: 'size',
        message: `message size limit of ${limits.maxBytes} bytes exceeded`,
      });
    }
    const prepared = await prepareMessage(raw, {
      appAddress: mailAddress(this.o.config, app.name),
      messageId: id,
    });
    if (isRefusal(prepared)) throw await fail(prepared);
    const refusal = await reserveMessage(this.o.db, app, limits, {
      id,
      recipients,
      subject: prepared.subject,
      raw: prepared.raw,
      capture: this.o.config.relay === undefined,
    });
    if (refusal) throw await fail(refusal, prepared.subject);
    this.o.onQueued?.();
    return id;
  }

  // --- The HTTP send API: POST /v1/send {to, subject, text, html?} with MAIL_API_TOKEN ---

  private async serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const error = (status: number, code: string, message: string, headers?: Record<string, string>) =>
      answer(status, { error: { code, message } }, headers);
    try {
      if (req.url !== '/v1/send') return error(404, 'not_found', 'the mail API is POST /v1/send');
      if (req.method !== 'POST') return error(405, 'method_not_allowed', 'use POST');
      const app = await this.appOfToken(req.headers.authorization);
      if (!app) {
        return error(
          401,
          'unauthorized',
          'send Authorization: Bearer $MAIL_API_TOKEN (the token the app was given)',
        );
      }
      const inFlight = this.httpInFlight.get(app.id) ?? 0;
      if (inFlight >= HTTP_IN_FLIGHT_PER_APP) {
        return error(
          429,
          'too_many_requests',
          `${app.name} has ${inFlight} sends in flight (at most ${HTTP_IN_FLIGHT_PER_APP} at once); wait for one to finish`,
          { connection: 'close', 'retry-after': '1' },
        );
      }
      this.httpInFlight.set(app.id, inFlight + 1);
      try {
        return await this.send(app, req, answer, error);
      } finally {
        const n = (this.httpInFlight.get(app.id) ?? 1) - 1;
        if (n > 0) this.httpInFlight.set(app.id, n);
        else this.httpInFlight.delete(app.id);
      }
    } catch (err) {
      this.o.logger.error({ err }, 'mail API failed');
      if (!res.headersSent) error(500, 'internal', 'the mail API failed; see the server log');
    }
  }

  private async send(
    app: App,
    req: IncomingMessage,
    answer: (status: number, body: unknown) => void,
    error: (status: number, code: string, message: string) => void,
  ): Promise<void> {
    const body = await readBody(req, this.o.config.maxBytes + 64 * 1024);
    if (body === undefined) {
      return error(413, 'too_large', `message size limit of ${this.o.config.maxBytes} bytes exceeded`);
    }
    const input = parseSendInput(body);
    if (typeof input === 'string') return error(400, 'bad_request', input);
    // Loaded with the first message sent through the API, as for notices.
    const { default: MailComposer } = await import('nodemailer/lib/mail-composer/index.js');
    const raw = await new MailComposer({
      from: mailAddress(this.o.config, app.name),
      to: input.to,
      subject: input.subject,
      text: input.text,
      ...(input.html !== undefined && { html: input.html }),
    })
      .compile()
      .build();
    try {
      const id = await this.accept(app, input.to, raw);
      return answer(202, { id, status: this.o.config.relay === undefined ? 'captured' : 'queued' });
    } catch (err) {
      if (!(err instanceof RelayError)) throw err;
      const message = err.message.replace(/^\d\.\d\.\d /, '');
      // Only the rates and the pause pass with time; too many recipients never does.
      if (err.responseCode < 500 && err.limit !== 'recipients') return error(429, 'rate_limited', message);
      return error(err.responseCode === 552 ? 413 : 422, 'refused', message);
    }
  }

  /** Who sends: the app whose MAIL_API_TOKEN this is. */
  private async appOfToken(header: string | undefined): Promise<App | undefined> {
    const m = /^Bearer ([a-z][a-z0-9-]{0,62})\.([A-Za-z0-9_-]{1,100})$/.exec(header ?? '');
    if (!m) return undefined;
    const app = await appForMail(this.o.db, m[1]!);
    if (!app || app.stage === 'archived') return undefined;
    return sameSecret(`${app.name}.${m[2]}`, mailApiToken(this.o.secrets, app)) ? app : undefined;
  }
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return undefined;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

interface SendInput {
  to: string[];
  subject: string;
  text: string;
  html?: string;
}

/** The HTTP API's body; a line break in the subject or an address (header injection) is refused. */
export function parseSendInput(body: Buffer): SendInput | string {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body must be JSON like {"to": "ana@example.org", "subject": "Hi", "text": "..."}';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'the body must be a JSON object';
  const o = v as Record<string, unknown>;
  const unknown = Object.keys(o).find((k) => !['to', 'subject', 'text', 'html'].includes(k));
  if (unknown) return `unknown field '${unknown}'; the fields are to, subject, text, html`;
  const to = typeof o.to === 'string' ? [o.to] : o.to;
  if (!Array.isArray(to) || to.length === 0 || !to.every((t) => typeof t === 'string' && ADDRESS.test(t))) {
    return "'to' must be an address like ana@example.org or a list of them";
  }
  if (typeof o.subject !== 'string' || /[\r\n\0]/.test(o.subject) || o.subject.length > 998) {
    return "'subject' must be one line of text (no line breaks), at most 998 characters";
  }
  if (typeof o.text !== 'string') return "'text' must be the message's text";
  if (o.html !== undefined && typeof o.html !== 'string') return "'html' must be text (HTML) when given";
  // The same mailbox twice is one recipient (compared as the relay's unsubscribes are, by case).
  const seen = new Set<string>();
  const unique = (to as string[]).filter((t) => !seen.has(t.toLowerCase()) && seen.add(t.toLowerCase()));
  return {
    to: unique,
    subject: o.subject,
    text: o.text,
    ...(o.html !== undefined && { html: o.html as string }),
  };
}

export { RelayError };

// Delivers queued mail to the operator's smarthost: one copy per recipient, each with its own
// List-Unsubscribe link, DKIM-signed by nodemailer. A 4xx or no answer defers the delivery
// (backoff doubling from retryBaseMs up to an hour; given up after maxAgeMs: bounced), a 5xx
// bounces it. A delivery is marked sending before it is tried, and a restart puts those back
// in the queue: delivered once, or again after a crash mid-delivery, never lost.
// nodemailer (some 15 MiB resident) loads with the first delivery, not with the server.
import type { createTransport } from 'nodemailer';
import type { Logger } from 'pino';
import {
  type DeliveryOutcome,
  type DueDelivery,
  requeueInterrupted,
  settleDeliveries,
  takeDueDeliveries,
} from '../domain/mail.js';
import { unsubscribeUrl } from '../domain/mail-credentials.js';
import type { DkimKey } from '../domain/mail-dkim.js';
import type { Store } from '../store/db.js';
import { recipientHeaders } from './message.js';

export interface DeliveryOptions {
  db: Store;
  logger: Logger;
  /** smtp://USER:PASSWORD@HOST:PORT */
  relay: string;
  dkim: DkimKey;
  /** The mail domain: envelope senders are APP@domain. */
  domain: string;
  /** http(s)://API_HOST[:PORT]: where the unsubscribe page is. */
  publicBase: string;
  unsubscribeKey: Buffer;
  intervalMs?: number;
  retryBaseMs?: number;
  maxAgeMs?: number;
  /** Deliveries tried at once. */
  concurrency?: number;
}

export class MailDelivery {
  private readonly transportOptions: Parameters<typeof createTransport>[0];
  private transport?: Promise<ReturnType<typeof createTransport>>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(private readonly o: DeliveryOptions) {
    const url = new URL(o.relay);
    this.transportOptions = {
      host: url.hostname,
      port: Number(url.port || (url.protocol === 'smtps:' ? 465 : 587)),
      secure: url.protocol === 'smtps:',
      requireTLS: url.searchParams.get('requireTLS') === 'true',
      ...(url.username && {
        auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) },
      }),
      pool: true,
      maxConnections: o.concurrency ?? 4,
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 60_000,
      dkim: o.dkim,
    };
  }

  private transporter(): Promise<ReturnType<typeof createTransport>> {
    this.transport ??= import('nodemailer').then((m) => m.createTransport(this.transportOptions));
    return this.transport;
  }

  async start(): Promise<void> {
    const back = await requeueInterrupted(this.o.db);
    if (back)
      this.o.logger.info({ deliveries: back }, 'mail: deliveries interrupted by a stop are queued again');
    this.timer = setInterval(() => this.nudge(), this.o.intervalMs ?? 5000);
    this.timer.unref();
    this.nudge();
  }

  /** A pass now (or right after the running one). */
  nudge(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err) => this.o.logger.error({ err }, 'mail delivery pass failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.nudge();
        }
      });
  }

  /** Runs passes until nothing is due (tests and the benchmark). */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    (await this.transport)?.close();
  }

  private async pass(): Promise<void> {
    const batch = this.o.concurrency ?? 4;
    for (;;) {
      const due = await takeDueDeliveries(this.o.db, batch * 4);
      if (due.length === 0) return;
      // Each worker takes the next; a slow recipient holds one worker, not the batch.
      let next = 0;
      const outcomes: DeliveryOutcome[] = [];
      await Promise.all(
        Array.from({ length: batch }, async () => {
          while (next < due.length) outcomes.push(await this.deliver(due[next++]!));
        }),
      );
      await settleDeliveries(this.o.db, outcomes);
      if (this.stopped) return;
    }
  }

  /** One copy to one recipient; the outcome is stored with the rest of the batch's. */
  private async deliver(d: DueDelivery): Promise<DeliveryOutcome> {
    const url = unsubscribeUrl(this.o.publicBase, this.o.unsubscribeKey, d.appId, d.recipient);
    const raw = Buffer.concat([Buffer.from(recipientHeaders(url), 'latin1'), d.raw]);
    const key = { messageId: d.messageId, recipient: d.recipient };
    try {
      await (await this.transporter()).sendMail({
        envelope: { from: `${d.appName}@${this.o.domain}`, to: [d.recipient] },
        raw,
      });
      return { ...key, status: 'sent' };
    } catch (err) {
      const e = err as Error & { responseCode?: number; response?: string };
      const error = e.response ?? e.message;
      const age = Date.now() - Date.parse(d.createdAt);
      if ((e.responseCode ?? 0) >= 500 || age > (this.o.maxAgeMs ?? 3 * 24 * 3_600_000)) {
        this.o.logger.warn({ message: d.messageId, error }, 'mail bounced');
        return { ...key, status: 'bounced', error };
      }
      const wait = Math.min(3_600_000, (this.o.retryBaseMs ?? 60_000) * 2 ** d.attempts);
      return { ...key, status: 'deferred', error, retryAt: new Date(Date.now() + wait).toISOString() };
    }
  }
}

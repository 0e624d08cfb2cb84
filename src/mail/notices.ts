// Petri's own mail about an app, through the relay's queue: to its owner, the expiry
// warnings of the experiment lifecycle, the metrics' alerts and the pause of the app's mail
// after refusals in a row; to an invitee of its audience, their personal link. From
// petri@<mail domain>, outside the app's quota and audience.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ExpiryWarning } from '../domain/lifecycle.js';
import { appForNotice, queueNotice, userEmail } from '../domain/mail.js';
import type { MailConfig } from '../lib/config.js';
import type { Store } from '../store/db.js';

export class MailNotices {
  constructor(
    private readonly o: {
      db: Store;
      config: MailConfig;
      logger: Logger;
      /** The `petri` command people run, for the hints in the text. */
      onQueued?: () => void;
    },
  ) {}

  /** Tells the owner their experiment expires in `days` (the lifecycle loop's seam). */
  async expiryWarning(w: ExpiryWarning): Promise<void> {
    const when =
      w.days >= 1 ? `${Math.round(w.days)} day${Math.round(w.days) === 1 ? '' : 's'}` : 'less than a day';
    await this.toOwner(w.appId, w.owner, `${w.app} expires in ${when}`, [
      `The experiment ${w.app} expires at ${w.expiresAt} (in ${when}).`,
      `Its processes stop then. To keep it: petri apps renew ${w.app}`,
    ]);
  }

  /** Tells the owner an alert episode began (the metrics: crash loop, 5xx, memory). */
  async alert(appId: number, message: string): Promise<void> {
    const app = await appForNotice(this.o.db, appId);
    if (!app) return;
    await this.toOwner(app.id, app.owner_id, `${app.name} needs a look`, [
      `Petri noticed that ${app.name} ${message}.`,
      `You are told once until it is over. petri metrics --app ${app.name} shows how it goes.`,
    ]);
  }

  /** Tells the owner the app's mail was paused after refusals in a row. */
  async paused(
    app: { id: number; name: string; owner_id: number },
    until: string,
    last: string,
  ): Promise<void> {
    await this.toOwner(app.id, app.owner_id, `Mail of ${app.name} is paused`, [
      `Petri's mail relay refused ${app.name}'s mail ${this.o.config.pauseAfterRefusals} times in a row and paused it until ${until}.`,
      `The last refusal: ${last}`,
      `See petri mail --app ${app.name}; an admin can end the pause with petri mail limits ${app.name} --resume.`,
    ]);
  }

  /** Sends an invitee of an app's audience their personal single-use link (petri audience
   * invite --send): from Petri, naming the app and who invited them. */
  async personalLink(invite: {
    appId: number;
    app: string;
    description: string;
    by: string;
    to: string;
    url: string;
    expiresAt: string;
  }): Promise<void> {
    await this.toAddress(invite.appId, invite.to, `You are invited to try ${invite.app}`, [
      `${invite.by} invites you to try the experiment ${invite.app}${invite.description ? `: ${invite.description}` : ''}.`,
      `Open this link to see what it is and what it keeps about you before you decide; it works once, for you, until ${invite.expiresAt}:\n${invite.url}`,
      'If you did not expect this, ignore it: nothing happens unless you open the link and agree.',
    ]);
  }

  private async toOwner(appId: number, ownerId: number, subject: string, lines: string[]): Promise<void> {
    const to = await userEmail(this.o.db, ownerId);
    if (!to) {
      this.o.logger.info({ appId, subject }, 'mail notice not sent: the owner has no e-mail address');
      return;
    }
    await this.toAddress(appId, to, subject, lines);
  }

  private async toAddress(appId: number, to: string, subject: string, lines: string[]): Promise<void> {
    const id = randomUUID();
    // Loaded with the first notice: nodemailer is not needed by a server that sends none.
    const { default: MailComposer } = await import('nodemailer/lib/mail-composer/index.js');
    const raw = await new MailComposer({
      from: `Petri <petri@${this.o.config.domain}>`,
      to,
      subject,
      text: `${lines.join('\n\n')}\n`,
      messageId: `<${id}@${this.o.config.domain}>`,
      date: new Date(),
    })
      .compile()
      .build();
    await queueNotice(this.o.db, appId, { id, to, subject, raw, capture: this.o.config.relay === undefined });
    this.o.onQueued?.();
  }
}

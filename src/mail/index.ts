// The mail relay as the server runs it: the SMTP server and HTTP send API on the sandboxes'
// gateway, and (with a smarthost configured) the delivery loop. Without a smarthost, mail
// stays in the capture box (`petri mail show ID`).
import type { Logger } from 'pino';
import { mailListenAddress } from '../domain/mail-credentials.js';
import { loadDkimKey } from '../domain/mail-dkim.js';
import type { PetriConfig } from '../lib/config.js';
import type { SecretBox } from '../lib/secrets.js';
import type { Store } from '../store/db.js';
import { MailDelivery } from './delivery.js';
import { MailNotices } from './notices.js';
import { MailRelay } from './relay.js';

export interface RunningMail {
  relay: MailRelay;
  delivery?: MailDelivery;
  /** Petri's own mail to owners (expiry warnings, a pause). */
  notices: MailNotices;
  close(): Promise<void>;
}

/** Where the unsubscribe page is: the API host, through the router. */
export function mailPublicBase(config: Pick<PetriConfig, 'apiHost' | 'httpPort'>): string {
  return `http://${config.apiHost}${config.httpPort === 80 ? '' : `:${config.httpPort}`}`;
}

export async function startMail(deps: {
  config: PetriConfig;
  db: Store;
  secrets: SecretBox;
  logger: Logger;
  /** Overrides for tests: listen address and ports (0: any free one), retry timing. */
  listen?: { host?: string; smtpPort?: number; httpPort?: number };
  delivery?: { intervalMs?: number; retryBaseMs?: number; maxAgeMs?: number };
}): Promise<RunningMail | undefined> {
  const { config, db, secrets, logger } = deps;
  if (!config.mail.enabled) return undefined;
  const delivery = config.mail.relay
    ? new MailDelivery({
        db,
        logger,
        relay: config.mail.relay,
        dkim: loadDkimKey(config.dataDir, config.mail.domain),
        domain: config.mail.domain,
        publicBase: mailPublicBase(config),
        unsubscribeKey: secrets.derive('mail unsubscribe'),
        ...deps.delivery,
      })
    : undefined;
  const notices = new MailNotices({ db, config: config.mail, logger, onQueued: () => delivery?.nudge() });
  const relay = new MailRelay({
    db,
    config: config.mail,
    secrets,
    logger,
    host: deps.listen?.host ?? mailListenAddress(config),
    smtpPort: deps.listen?.smtpPort ?? config.mail.smtpPort,
    httpPort: deps.listen?.httpPort ?? config.mail.httpPort,
    notices,
    onQueued: () => delivery?.nudge(),
  });
  await relay.start();
  await delivery?.start();
  return {
    relay,
    delivery,
    notices,
    async close() {
      await relay.close();
      await delivery?.close();
    },
  };
}

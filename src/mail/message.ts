// What a message must look like to leave through the relay, checked and completed when it is
// accepted: CRLF line endings only (a bare LF or CR is how SMTP smuggling hides a second
// message), well-formed header lines, a From (and Sender) that is the app's own address,
// never another's; Petri adds Sender, Message-ID and Date when missing and replaces any
// List-Unsubscribe with its own, per recipient, at delivery.
import type { MailRefusal } from '../domain/mail.js';

/** The header section: at most this many bytes (a long one is a mistake or an attack). */
const HEADER_MAX = 64 * 1024;

export interface HeaderField {
  name: string;
  /** The field as sent, folded lines and final CRLF included. */
  text: string;
}

export interface SplitMessage {
  fields: HeaderField[];
  /** From the blank line on (CRLF CRLF ...), or '' for a message of headers only. */
  body: Buffer;
}

const refuse = (code: MailRefusal['code'], limit: string, message: string): MailRefusal => ({
  code,
  limit,
  message,
});

/** Splits a message into header fields and body, refusing what no mail program writes. */
export function splitMessage(raw: Buffer): SplitMessage | MailRefusal {
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === 0) return refuse(554, 'header', 'the message holds a NUL byte; send text or MIME-encoded data');
    if (c === 0x0a && raw[i - 1] !== 0x0d) {
      return refuse(
        554,
        'header',
        'the message has a bare LF (line ends must be CRLF); refused against SMTP smuggling',
      );
    }
    if (c === 0x0d && raw[i + 1] !== 0x0a) {
      return refuse(
        554,
        'header',
        'the message has a bare CR (line ends must be CRLF); refused against SMTP smuggling',
      );
    }
  }
  let end = raw.indexOf('\r\n\r\n');
  const headerEnd = end === -1 ? raw.length : end + 2;
  if (headerEnd > HEADER_MAX) return refuse(552, 'header', `the header section is over ${HEADER_MAX} bytes`);
  const head = raw.subarray(0, headerEnd).toString('latin1');
  const lines = head.split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const fields: HeaderField[] = [];
  for (const [n, line] of lines.entries()) {
    if (/^[ \t]/.test(line)) {
      const last = fields[fields.length - 1];
      if (!last)
        return refuse(
          554,
          'header',
          'the message starts with a folded line; the first line must be a header field',
        );
      last.text += `${line}\r\n`;
      continue;
    }
    const m = /^([\x21-\x39\x3b-\x7e]+):/.exec(line);
    if (!m) {
      return refuse(
        554,
        'header',
        `header line ${n + 1} is not 'Name: value' (${JSON.stringify(line.slice(0, 40))})`,
      );
    }
    fields.push({ name: m[1]!.toLowerCase(), text: `${line}\r\n` });
  }
  if (end === -1) end = raw.length;
  return { fields, body: raw.subarray(headerEnd) };
}

export function isRefusal(x: unknown): x is MailRefusal {
  return typeof x === 'object' && x !== null && 'code' in x && 'limit' in x;
}

/** An app may write its own address or a tagged one (app+news@domain), nothing else. */
export function isAppAddress(address: string, appAddress: string): boolean {
  const [local, domain] = splitAddress(address.toLowerCase());
  const [appLocal, appDomain] = splitAddress(appAddress.toLowerCase());
  return domain === appDomain && (local === appLocal || local.startsWith(`${appLocal}+`));
}

function splitAddress(a: string): [string, string] {
  const at = a.lastIndexOf('@');
  return at === -1 ? [a, ''] : [a.slice(0, at), a.slice(at + 1)];
}

/** An addr-spec as mail programs write it (dot-atom local part, a host name). */
const ADDR_SPEC = String.raw`[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~.-]+@[A-Za-z0-9.-]+`;
/** A display name of plain words (atext, dots, encoded words, 8-bit text) or one quoted string. */
const DISPLAY_NAME = String.raw`(?:"(?:[^"\\\r\n]|\\[^\r\n])*"|[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~.\x80-\xff-]+(?:[ \t]+[A-Za-z0-9!#$%&'*+/=?^_\x60{|}~.\x80-\xff-]+)*)`;
const ONE_MAILBOX = new RegExp(
  String.raw`^(?:${ADDR_SPEC}|<${ADDR_SPEC}>|${DISPLAY_NAME}[ \t]*<${ADDR_SPEC}>)$`,
);

/** Whether a From or Sender value is one mailbox every parser reads alike: an address, or
 * `Name <address>` whose name is plain words or a quoted string. An unquoted '@', a comment
 * or an angle bracket in the name is read as another address by strict parsers (Python's
 * email package) while lenient ones (nodemailer's) see the app's: refused, not guessed. */
export function isPlainMailbox(field: HeaderField): boolean {
  const value = field.text
    .slice(field.text.indexOf(':') + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/\r\n$/, '')
    .trim();
  return ONE_MAILBOX.test(value);
}

export interface PreparedMessage {
  raw: Buffer;
  subject: string;
}

/** Checks the headers and adds what is missing. The app's address is `appAddress`. */
export async function prepareMessage(
  raw: Buffer,
  opts: { appAddress: string; messageId: string; now?: Date },
): Promise<PreparedMessage | MailRefusal> {
  const split = splitMessage(raw);
  if (isRefusal(split)) return split;
  const head = Buffer.from(split.fields.map((f) => f.text).join(''), 'latin1');
  // Loaded with the first message: mailparser (and its charsets and HTML tooling, some 6 MiB
  // of heap) is not needed by a server that relays none.
  const { simpleParser } = await import('mailparser');
  const parsed = await simpleParser(Buffer.concat([head, Buffer.from('\r\n')]), {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
    skipTextLinks: true,
  });
  const count = (name: string) => split.fields.filter((f) => f.name === name).length;
  for (const name of ['from', 'sender', 'subject', 'message-id', 'date', 'to', 'cc', 'reply-to']) {
    if (count(name) > 1)
      return refuse(
        554,
        'header',
        `the message has ${count(name)} '${name}' headers; at most one is allowed`,
      );
  }
  const fromHelp = `From must be ${opts.appAddress}, or Name <${opts.appAddress}> with the name in plain words or in double quotes ("Ana B." <${opts.appAddress}>; no @, comments or angle brackets outside the quotes)`;
  for (const f of split.fields) {
    if ((f.name === 'from' || f.name === 'sender') && !isPlainMailbox(f)) {
      const got = JSON.stringify(
        f.text
          .slice(f.text.indexOf(':') + 1)
          .trim()
          .slice(0, 80),
      );
      return refuse(553, 'from', `${fromHelp}; got ${got}`);
    }
  }
  const from = parsed.from?.value ?? [];
  if (count('from') === 1) {
    const forged = from.find((a) => !a.address || !isAppAddress(a.address, opts.appAddress));
    if (from.length === 0 || forged) {
      return refuse(
        553,
        'from',
        `From must be this app's address ${opts.appAddress} (or ${opts.appAddress.replace('@', '+tag@')}), got '${forged?.address ?? parsed.headers.get('from')?.toString() ?? ''}'`,
      );
    }
  }
  const sender = parsed.headers.get('sender') as { value?: { address?: string }[] } | undefined;
  if (
    count('sender') === 1 &&
    !sender?.value?.every((a) => a.address && isAppAddress(a.address, opts.appAddress))
  ) {
    return refuse(553, 'from', `Sender must be this app's address ${opts.appAddress}`);
  }
  const domain = opts.appAddress.slice(opts.appAddress.lastIndexOf('@') + 1);
  const added: string[] = [];
  if (count('from') === 0) added.push(`From: ${opts.appAddress}`);
  if (count('sender') === 0) added.push(`Sender: ${opts.appAddress}`);
  if (count('message-id') === 0) added.push(`Message-ID: <${opts.messageId}@${domain}>`);
  if (count('date') === 0)
    added.push(`Date: ${(opts.now ?? new Date()).toUTCString().replace('GMT', '+0000')}`);
  // Petri's own List-Unsubscribe replaces the app's (added per recipient at delivery).
  const kept = split.fields.filter(
    (f) => f.name !== 'list-unsubscribe' && f.name !== 'list-unsubscribe-post',
  );
  const out = Buffer.concat([
    Buffer.from(added.map((l) => `${l}\r\n`).join(''), 'latin1'),
    Buffer.from(kept.map((f) => f.text).join(''), 'latin1'),
    split.body.length ? split.body : Buffer.from('\r\n'),
  ]);
  return { raw: out, subject: parsed.subject ?? '' };
}

/** The headers a copy for one recipient gets in front of the accepted message. */
export function recipientHeaders(url: string): string {
  return `List-Unsubscribe: <${url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n`;
}

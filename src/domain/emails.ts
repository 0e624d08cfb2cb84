// E-mail addresses as Petri keeps them (people, invitees, audiences): a module of its own,
// so that users.ts and audiences.ts, which need each other's other parts, need not import
// each other.
import { UserError } from '../lib/errors.js';

const EMAIL = /^[^\s@<>()"',;:\\]+@[^\s@<>()"',;:\\]+\.[^\s@<>()"',;:\\]+$/;

/** An e-mail as the store keeps it: trimmed, lower case (people type both cases; the
 * providers answer either). Refuses what is not an address. */
export function normalizeEmail(raw: string): string {
  const email = raw.trim().toLowerCase();
  if (email.length > 254 || !EMAIL.test(email))
    throw new UserError('bad_request', `'${raw}' is not an e-mail address like ana@example.org`);
  return email;
}

// Identifiers: sortable by creation time, unguessable enough for URLs.
import { randomBytes } from 'node:crypto';

export function newId(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(5).toString('hex')}`;
}

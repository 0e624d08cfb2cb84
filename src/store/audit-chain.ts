// The audit trail's hash chain: each event's hash covers its fields and the hash of the event
// before it, so changing, deleting or inserting a row breaks the chain from there on. Here
// (not in domain/) because migration 0008 chains an install's earlier events with it.
//
// Frozen: the fields, their order and the encoding below are what every recorded hash was
// made with. Changing any of them breaks every existing chain; a new form needs a version.
import { createHash } from 'node:crypto';

/** The prev_hash of the first event. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** The fields an event's hash covers: every column but prev_hash (prefixed) and hash. */
export interface ChainedFields {
  id: number;
  at: string;
  actor: string;
  actor_id: number | null;
  token_id: number | null;
  via: string;
  action: string;
  target: string;
  app: string | null;
  team_id: number | null;
  outcome: string;
  status: number | null;
  source_ip: string | null;
  request_id: string | null;
  /** As stored: JSON text. */
  detail: string;
}

const FIELDS = [
  'action',
  'actor',
  'actor_id',
  'app',
  'at',
  'detail',
  'id',
  'outcome',
  'request_id',
  'source_ip',
  'status',
  'target',
  'team_id',
  'token_id',
  'via',
] as const satisfies readonly (keyof ChainedFields)[];

/** Canonical JSON of an event: its fields in sorted order, absent ones as null. */
export function canonicalEvent(row: ChainedFields): string {
  return `{${FIELDS.map((f) => `${JSON.stringify(f)}:${JSON.stringify(row[f] ?? null)}`).join(',')}}`;
}

/** sha256(prev_hash + canonical JSON of the event), hex. */
export function chainHash(prevHash: string, row: ChainedFields): string {
  return createHash('sha256')
    .update(prevHash + canonicalEvent(row))
    .digest('hex');
}

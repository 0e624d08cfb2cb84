// The audit trail: every change a person makes, who, what, when, from where.
import { now, type Store } from '../store/db.js';

export interface Actor {
  name: string;
  ip?: string | null;
}

export async function recordAudit(
  db: Store,
  actor: Actor,
  action: string,
  target: string,
  detail: Record<string, unknown> = {},
): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      at: now(),
      actor: actor.name,
      action,
      target,
      detail: JSON.stringify(detail),
      source_ip: actor.ip ?? null,
    })
    .execute();
}

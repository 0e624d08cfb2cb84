// Sign-ins in progress (the OIDC code flow, the device flow): in the store, sealed (they
// hold a PKCE verifier, a device code), so a restart of the control plane in the middle of
// one loses nothing; single use, and gone after their time.
import { randomBytes } from 'node:crypto';
import type { SecretBox } from '../lib/secrets.js';
import { now, type Store } from '../store/db.js';
import type { LoginFlowsTable } from '../store/schema.js';

/** How long a sign-in may take from its start to its end. */
export const LOGIN_FLOW_TTL_MS = 10 * 60_000;

export type LoginFlowKind = LoginFlowsTable['kind'];

export interface LoginFlow<T> {
  id: string;
  kind: LoginFlowKind;
  data: T;
  expiresAt: string;
}

/** Stores a new flow and answers its id (128 random bits: the id is all a client holds). */
export async function createLoginFlow<T extends object>(
  db: Store,
  secrets: SecretBox,
  kind: LoginFlowKind,
  data: T,
  ttlMs = LOGIN_FLOW_TTL_MS,
): Promise<LoginFlow<T>> {
  const at = new Date();
  const flow: LoginFlow<T> = {
    id: `lf_${randomBytes(16).toString('base64url')}`,
    kind,
    data,
    expiresAt: new Date(at.getTime() + ttlMs).toISOString(),
  };
  // Flows nobody finished would pile up: each start sweeps the expired ones.
  await db.deleteFrom('login_flows').where('expires_at', '<=', at.toISOString()).execute();
  await db
    .insertInto('login_flows')
    .values({
      id: flow.id,
      kind,
      data_sealed: secrets.seal(JSON.stringify(data)),
      created_at: at.toISOString(),
      expires_at: flow.expiresAt,
    })
    .execute();
  return flow;
}

/** The flow of this id and kind, or undefined when there is none (never was, used, or expired). */
export async function findLoginFlow<T>(
  db: Store,
  secrets: SecretBox,
  id: string,
  kind: LoginFlowKind,
): Promise<LoginFlow<T> | undefined> {
  const row = await db
    .selectFrom('login_flows')
    .selectAll()
    .where('id', '=', id)
    .where('kind', '=', kind)
    .where('expires_at', '>', now())
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    id: row.id,
    kind: row.kind,
    data: JSON.parse(secrets.open(row.data_sealed)) as T,
    expiresAt: row.expires_at,
  };
}

/** Replaces a flow's data (a device flow's polling interval after the provider said slow down). */
export async function updateLoginFlow<T extends object>(
  db: Store,
  secrets: SecretBox,
  id: string,
  data: T,
): Promise<void> {
  await db
    .updateTable('login_flows')
    .set({ data_sealed: secrets.seal(JSON.stringify(data)) })
    .where('id', '=', id)
    .execute();
}

/** Ends a flow; true for the one caller that ended it, so a flow is used at most once even
 * when two requests race to finish it. */
export async function consumeLoginFlow(db: Store, id: string): Promise<boolean> {
  const result = await db.deleteFrom('login_flows').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/** Flows not yet finished nor expired (a bound on what anonymous callers may open). */
export async function countOpenLoginFlows(db: Store): Promise<number> {
  const row = await db
    .selectFrom('login_flows')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('expires_at', '>', now())
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

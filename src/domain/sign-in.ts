// Who a sign-in is: the one decision every provider (OIDC, LDAP, local passwords) ends in.
// An account is found by the provider's id for the person, else by e-mail (and linked),
// else made, but only with an open invitation for the e-mail (consumed in the same
// transaction) or an allowed domain or group. Every refusal is on the audit record.
//
// The account remembers how it came in (users.admitted_by). One let in by the policy (an
// allowed domain or group) stays in only while the policy still admits it: every later
// sign-in and every re-check (recheckAdmission) asks again, and a person the provider no
// longer puts in an allowed group loses every token. One invited, or made by an admin,
// stays: an admin let that person in by name. Likewise an admin role the provider's
// adminGroups gave (users.role_from = 'groups') goes when the groups no longer give it; one
// an admin gave (petri users role, an invitation, the first start) never does.
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { AdmittedBy, IdentityProvider, Invitation, PlatformRole, User } from '../store/schema.js';
import { recordAudit } from './audit.js';
import { createUser } from './auth.js';
import { consumeInvitation, openInvitationFor } from './invitations.js';
import { normalizeEmail, revokeAllTokens } from './users.js';

export type SignInProvider = Exclude<IdentityProvider, 'bot'>;

/** What a provider vouches for, after it checked the person (password, ID token). */
export interface SignInClaims {
  provider: SignInProvider;
  /** The provider's stable id for the person (OIDC `sub`, LDAP entryUUID or DN). */
  subject: string;
  email: string;
  name?: string;
  /** Group names (and, for LDAP, DNs) the provider puts the person in. */
  groups: string[];
}

/** What the provider says of the person now (at a sign-in, or a re-check). */
export interface ProviderView {
  email: string;
  groups: string[];
}

/** Who may come in without an invitation, and who is an admin (from the configuration). */
export interface SignInPolicy {
  allowedDomains?: string[];
  allowedGroups?: string[];
  adminGroups?: string[];
}

/** The account the claims sign in as; refuses (and audits) a disabled account, a bot, an
 * e-mail tied to another identity, and a newcomer with no invitation, domain or group. */
export async function signIn(
  db: Store,
  claims: SignInClaims,
  policy: SignInPolicy,
  ip?: string,
): Promise<User> {
  const attempted = claims.email || claims.subject;
  try {
    if (!claims.subject)
      throw new UserError('bad_request', `the ${providerName(claims.provider)} named no subject`);
    const email = accountEmail(claims);
    // Serialised (one writer): two first sign-ins of one person make one account.
    return await db.transaction().execute(async (tx) => {
      const user = await findOrCreate(tx, { ...claims, email }, policy);
      await auditSignIn(tx, user, claims.provider, ip);
      return user;
    });
  } catch (err) {
    if (err instanceof NoLongerAdmitted) {
      // The provider says the policy no longer admits them: their tokens end too (a re-check
      // would end them within the window anyway).
      await providerSaysGone(db, err.user, claims.provider, err.message, ip);
    } else if (err instanceof UserError) {
      const userId = err instanceof AccountRefused ? err.userId : undefined;
      await auditRefusal(db, attempted, claims.provider, err.message, ip, {}, userId);
    }
    throw err;
  }
}

/** A successful sign-in on the record. */
export async function auditSignIn(db: Store, user: User, provider: string, ip?: string): Promise<void> {
  await recordAudit(
    db,
    { name: user.email ?? user.name, userId: user.id, ip: ip ?? null },
    'auth.signin',
    provider,
  );
}

/** A refusal of a known account (disabled, a bot): recorded with its id. */
class AccountRefused extends UserError {
  constructor(
    message: string,
    readonly userId: number,
  ) {
    super('forbidden', message);
  }
}

/** A known account the policy let in and no longer admits: refused, and its tokens end. */
class NoLongerAdmitted extends AccountRefused {
  constructor(
    message: string,
    readonly user: User,
  ) {
    super(message, user.id);
  }
}

async function findOrCreate(tx: Store, claims: SignInClaims, policy: SignInPolicy): Promise<User> {
  const admin = inAny(claims.groups, policy.adminGroups);
  const bySubject = await tx
    .selectFrom('users')
    .selectAll()
    .where('provider', '=', claims.provider)
    .where('subject', '=', claims.subject)
    .executeTakeFirst();
  if (bySubject) {
    refuseUnusable(bySubject);
    refuseUnlessAdmitted(bySubject, claims, policy);
    return update(tx, bySubject, {
      // The directory's address changed: follow it, unless another account has it.
      ...(bySubject.email !== claims.email && !(await emailTaken(tx, claims.email))
        ? { email: claims.email }
        : {}),
      ...roleFromGroups(bySubject, claims.groups, policy),
    });
  }

  const byEmail = await tx
    .selectFrom('users')
    .selectAll()
    .where('email', '=', claims.email)
    .executeTakeFirst();
  if (byEmail) {
    refuseUnusable(byEmail);
    // An account tied to another identity is not taken over by whoever shows the same
    // e-mail (a directory where people edit their own `mail` would allow exactly that).
    if (byEmail.subject !== null && byEmail.provider !== 'local') {
      throw new UserError(
        'forbidden',
        `${claims.email} belongs to an account that signs in with ${providerName(byEmail.provider)}; sign in that way, or ask an admin`,
      );
    }
    // A local account (invited, or the first admin) now signs in through the provider: it
    // is linked, and its password stops working (the provider decides from now on).
    refuseUnlessAdmitted(byEmail, claims, policy);
    return update(tx, byEmail, {
      provider: claims.provider,
      subject: claims.subject,
      password_hash: claims.provider === 'local' ? byEmail.password_hash : null,
      ...roleFromGroups(byEmail, claims.groups, policy),
    });
  }

  const invitation = await openInvitationFor(tx, claims.email);
  const admittedBy = invitation ? 'invitation' : policyAdmits(claims, policy);
  if (!admittedBy) {
    throw new UserError(
      'forbidden',
      `no invitation for ${claims.email}: ask an admin for an invitation ('petri users invite ${claims.email}')`,
    );
  }
  const user = await createAccount(tx, claims, admin ? 'admin' : 'member', invitation);
  // An invitation to be admin is an admin's word; an admin role only the groups gave is theirs.
  const roleFrom = user.role === 'admin' && admin && invitation?.role !== 'admin' ? 'groups' : null;
  return tx
    .updateTable('users')
    .set({ admitted_by: admittedBy, role_from: roleFrom })
    .where('id', '=', user.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Why the policy admits someone without an invitation now: their e-mail's domain, one of
 * their groups, or nothing. */
function policyAdmits(view: ProviderView, policy: SignInPolicy): 'domain' | 'group' | undefined {
  const domain = view.email.slice(view.email.lastIndexOf('@') + 1).toLowerCase();
  if ((policy.allowedDomains ?? []).some((d) => d.toLowerCase() === domain)) return 'domain';
  if (inAny(view.groups, policy.allowedGroups)) return 'group';
  return undefined;
}

/** Accounts whose access rests on the policy: it is asked again at every sign-in and re-check. */
const BY_POLICY: ReadonlySet<AdmittedBy> = new Set(['domain', 'group', 'policy']);

/** Refuses a known account the policy let in and no longer admits (an invited one stays). */
function refuseUnlessAdmitted(user: User, view: ProviderView, policy: SignInPolicy): void {
  const why = notAdmitted(user, view, policy);
  if (why) throw new NoLongerAdmitted(why, user);
}

/** Why the policy no longer admits an account it let in; undefined while it does (or when
 * the account came in by invitation or an admin). */
function notAdmitted(user: User, view: ProviderView, policy: SignInPolicy): string | undefined {
  if (!BY_POLICY.has(user.admitted_by) || policyAdmits(view, policy)) return undefined;
  const where =
    user.provider === 'ldap'
      ? 'in the LDAP directory'
      : user.provider === 'oidc'
        ? 'at the sign-in provider'
        : '';
  const groups = policy.allowedGroups ?? [];
  const causes = [
    groups.length > 0
      ? `you are in none of the groups allowed to use Petri (${groups.join(', ')}) ${where}`.trim()
      : 'Petri admits nobody by group any more',
    ...((policy.allowedDomains ?? []).length > 0
      ? [`your e-mail's domain is not one of ${(policy.allowedDomains ?? []).join(', ')}`]
      : []),
  ];
  const way = {
    domain: 'your e-mail domain',
    group: 'an allowed group',
    policy: 'an allowed group or domain',
  }[user.admitted_by as 'domain' | 'group' | 'policy'];
  const fix =
    groups.length > 0
      ? `ask an admin to put you back in one of those groups ${where}`.trim()
      : 'ask an admin';
  return `${causes.join(', and ')}; you came in through ${way}, not an invitation, so that ends your access to Petri (your Petri tokens were revoked): ${fix}`;
}

/** What the provider's admin groups make of the account's role now: admin while in one;
 * back to member when out of them all, only if it was the groups that made them admin. */
function roleFromGroups(
  user: User,
  groups: string[],
  policy: SignInPolicy,
): Partial<Pick<User, 'role' | 'role_from'>> {
  const inAdminGroup = inAny(groups, policy.adminGroups);
  if (inAdminGroup && user.role !== 'admin') return { role: 'admin', role_from: 'groups' };
  if (!inAdminGroup && user.role === 'admin' && user.role_from === 'groups')
    return { role: 'member', role_from: null };
  return {};
}

/** The re-check's decision, once the provider said who the person is now (`view`): an
 * account the policy let in and no longer admits loses every token and is refused (401);
 * otherwise its role follows the admin groups, and the check is stamped (with the
 * provider's new re-check data, e.g. a rotated refresh token). Answers the account as it is
 * now, for the request to go on with (a demoted admin is a member from this request on). */
export async function recheckAdmission(
  db: Store,
  user: User,
  view: ProviderView,
  policy: SignInPolicy,
  recheckSealed?: string,
  ip?: string,
): Promise<User> {
  const why = notAdmitted(user, { ...view, email: view.email || (user.email ?? '') }, policy);
  if (why) {
    await providerSaysGone(db, user, user.provider, why, ip);
    throw new UserError('unauthorized', why);
  }
  return db.transaction().execute((tx) =>
    update(tx, user, {
      ...roleFromGroups(user, view.groups, policy),
      checked_at: now(),
      ...(recheckSealed === undefined ? {} : { recheck_sealed: recheckSealed }),
    }),
  );
}

/** What re-checking the person needs from now on (sealed), kept on the account at each
 * sign-in: the newest sign-in's is the one every token of theirs is re-checked with. */
export async function saveRecheck(db: Store, userId: number, recheckSealed: string | null): Promise<void> {
  await db
    .updateTable('users')
    .set({ recheck_sealed: recheckSealed, checked_at: now() })
    .where('id', '=', userId)
    .execute();
}

/** The account as the store has it now. */
export async function currentUser(db: Store, userId: number): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
}

/** A new account (named after its e-mail, with its personal team), and the invitation it
 * came with consumed: its role and team. */
async function createAccount(
  tx: Store,
  claims: Omit<SignInClaims, 'groups'> & { passwordHash?: string },
  role: PlatformRole,
  invitation: Invitation | undefined,
): Promise<User> {
  const user = await createUser(tx, claims.email, role, {
    email: claims.email,
    provider: claims.provider,
    subject: claims.provider === 'local' ? null : claims.subject,
    password_hash: claims.passwordHash ?? null,
  });
  if (invitation) await consumeInvitation(tx, invitation, user.id);
  await recordAudit(tx, { name: claims.email }, 'auth.signup', claims.email, {
    provider: claims.provider,
    invitation: invitation?.id ?? null,
  });
  return tx.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
}

/** The local account an invitation link makes, with its password (already hashed); the
 * invitation is consumed in the same transaction, so a second use is refused. */
export async function acceptInvitation(
  db: Store,
  invitation: Invitation,
  passwordHash: string,
  ip?: string,
): Promise<User> {
  try {
    return await db.transaction().execute(async (tx) => {
      // As it is now: another accept of the same link may have just finished.
      const fresh = await tx
        .selectFrom('invitations')
        .selectAll()
        .where('id', '=', invitation.id)
        .executeTakeFirst();
      if (fresh?.used_at) {
        throw new UserError(
          'forbidden',
          `this invitation was used on ${fresh.used_at.slice(0, 10)}; an invitation works once: sign in with 'petri login --email ${invitation.email}'`,
        );
      }
      const existing = await tx
        .selectFrom('users')
        .select('provider')
        .where('email', '=', invitation.email)
        .executeTakeFirst();
      if (existing) {
        throw new UserError(
          'conflict',
          `${invitation.email} has an account already; sign in with ${signInCommand(existing.provider, invitation.email)}`,
        );
      }
      return createAccount(
        tx,
        { provider: 'local', subject: invitation.email, email: invitation.email, passwordHash },
        'member',
        invitation,
      );
    });
  } catch (err) {
    if (err instanceof UserError) await auditRefusal(db, invitation.email, 'invitation', err.message, ip);
    throw err;
  }
}

/** What an invitation page says: the team it grants and who invited. */
export async function invitationDetails(
  db: Store,
  invitation: Invitation,
): Promise<{ team: string | null; invitedBy: string }> {
  const team =
    invitation.team_id === null
      ? undefined
      : await db.selectFrom('teams').select('name').where('id', '=', invitation.team_id).executeTakeFirst();
  const by = await db
    .selectFrom('users')
    .select(['name', 'email'])
    .where('id', '=', invitation.created_by)
    .executeTakeFirst();
  return { team: team?.name ?? null, invitedBy: by ? (by.email ?? by.name) : 'an admin' };
}

/** The local account with this e-mail that has a password; undefined for anything else
 * (the caller answers all of them alike, so nobody learns which e-mails have accounts). */
export async function passwordAccount(db: Store, email: string): Promise<User | undefined> {
  const user = await db
    .selectFrom('users')
    .selectAll()
    .where('email', '=', email.trim().toLowerCase())
    .where('provider', '=', 'local')
    .where('kind', '=', 'person')
    .executeTakeFirst();
  return user?.password_hash ? user : undefined;
}

/** Refuses a disabled account or a bot, for any way of signing in. */
export function refuseUnusable(user: User): void {
  if (user.kind === 'bot') {
    throw new AccountRefused(
      `${user.name} is a bot: bots never sign in, they use the token made for them`,
      user.id,
    );
  }
  if (user.disabled_at !== null) {
    throw new AccountRefused(
      `the account ${user.email ?? user.name} was disabled by an admin on ${user.disabled_at.slice(0, 10)}; ask an admin to enable it`,
      user.id,
    );
  }
}

/** A local account's first password; false when it has one already (set meanwhile). */
export async function setFirstPasswordHash(
  db: Store,
  userId: number,
  passwordHash: string,
): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({ password_hash: passwordHash })
    .where('id', '=', userId)
    .where('password_hash', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function setPasswordHash(db: Store, userId: number, passwordHash: string): Promise<void> {
  await db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', userId).execute();
}

/** Ends the account's sign-in sessions but `keep` (a changed password ends the others, as
 * someone who knew the old one may hold one); API tokens made on purpose stay. */
export async function revokeOtherSessions(db: Store, userId: number, keep?: number): Promise<number> {
  let query = db
    .updateTable('tokens')
    .set({ revoked_at: now() })
    .where('user_id', '=', userId)
    .where('kind', '=', 'session')
    .where('revoked_at', 'is', null);
  if (keep !== undefined) query = query.where('id', '!=', keep);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** The provider says the person is gone (deleted, disabled, out of the filter or group):
 * every token of theirs stops working now; the account stays for an admin to look at. */
export async function providerSaysGone(
  db: Store,
  user: User,
  provider: string,
  reason: string,
  ip?: string,
): Promise<void> {
  const revoked = await revokeAllTokens(db, user.id);
  await auditRefusal(
    db,
    user.email ?? user.name,
    provider,
    reason,
    ip,
    { tokensRevoked: revoked, recheck: true },
    user.id,
  );
}

/** A refused sign-in on the record: who was attempted, through what, why. */
export async function auditRefusal(
  db: Store,
  attempted: string,
  provider: string,
  reason: string,
  ip?: string,
  more: Record<string, unknown> = {},
  userId?: number,
): Promise<void> {
  await recordAudit(
    db,
    { name: attempted || '(none)', ip: ip ?? null, ...(userId === undefined ? {} : { userId }) },
    'auth.refused',
    provider,
    { reason, ...more },
    { outcome: 'denied' },
  );
}

/** The e-mail an account is kept under; refuses claims without a usable one. */
function accountEmail(claims: SignInClaims): string {
  if (!claims.email) {
    throw new UserError(
      'forbidden',
      `the ${providerName(claims.provider)} gave no e-mail for this account; Petri names people by e-mail: ask its operator to add one`,
    );
  }
  return normalizeEmail(claims.email);
}

async function emailTaken(tx: Store, email: string): Promise<boolean> {
  return (
    (await tx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst()) !== undefined
  );
}

async function update(
  tx: Store,
  user: User,
  changes: Partial<
    Pick<
      User,
      | 'email'
      | 'role'
      | 'role_from'
      | 'provider'
      | 'subject'
      | 'password_hash'
      | 'checked_at'
      | 'recheck_sealed'
    >
  >,
): Promise<User> {
  if (Object.keys(changes).length === 0) return user;
  const who = { name: user.email ?? user.name };
  if (changes.provider !== undefined) {
    await recordAudit(tx, who, 'auth.link', who.name, { from: user.provider, to: changes.provider });
  }
  if (changes.role !== undefined) {
    await recordAudit(tx, { ...who, userId: user.id }, 'user.role', who.name, {
      from: user.role,
      to: changes.role,
      by: 'admin group',
      provider: changes.provider ?? user.provider,
    });
  }
  return tx
    .updateTable('users')
    .set(changes)
    .where('id', '=', user.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Whether any of the person's groups is in the list (case does not matter: directories differ). */
function inAny(groups: string[], list: string[] | undefined): boolean {
  if (!list || list.length === 0) return false;
  const wanted = new Set(list.map((g) => g.toLowerCase()));
  return groups.some((g) => wanted.has(g.toLowerCase()));
}

function providerName(provider: string): string {
  return provider === 'oidc'
    ? 'single sign-on'
    : provider === 'ldap'
      ? 'LDAP directory'
      : `${provider} sign-in`;
}

function signInCommand(provider: IdentityProvider, email: string): string {
  if (provider === 'ldap') return "'petri login --ldap USER'";
  if (provider === 'oidc') return "'petri login'";
  return `'petri login --email ${email}'`;
}

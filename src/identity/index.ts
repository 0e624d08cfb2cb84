// The sign-in side of the control plane, as the API sees it: which providers this Petri
// offers, LDAP and local-password sign-ins (rate limited), invitations accepted with a new
// password, and the re-check of a person with the provider that signed them in (LDAP here,
// OIDC in oidc.ts), which ends every token of someone the provider dropped.
//
// The re-check is per person, not per token: any token of someone who signs in with OIDC or
// LDAP (a session, or an API token made with 'petri tokens create') is refused once the
// provider no longer has them. What it needs (an LDAP DN and name, an OIDC refresh token) is
// kept on the account, from their newest sign-in, so it outlives every session.
import type { Logger } from 'pino';
import { recordAudit } from '../domain/audit.js';
import { mintToken } from '../domain/auth.js';
import { invitationBySecret } from '../domain/invitations.js';
import {
  acceptInvitation,
  auditRefusal,
  auditSignIn,
  currentUser,
  invitationDetails,
  passwordAccount,
  providerSaysGone,
  recheckAdmission,
  refuseUnusable,
  revokeOtherSessions,
  saveRecheck,
  setFirstPasswordHash,
  setPasswordHash,
  signIn,
} from '../domain/sign-in.js';
import { revokeAllTokens } from '../domain/users.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage, UserError } from '../lib/errors.js';
import type { SecretBox } from '../lib/secrets.js';
import type { Store } from '../store/db.js';
import type { Invitation, Token, User } from '../store/schema.js';
import { LdapDirectory, type LdapRecheck } from './ldap.js';
import { OidcProvider, type OidcRecheck } from './oidc.js';
import { checkNewPassword, hashPassword, verifyNothing, verifyPassword } from './passwords.js';
import { FailedAttempt, SignInAttempts } from './rate-limit.js';

export interface IdentityDeps {
  db: Store;
  config: Pick<PetriConfig, 'identity'>;
  secrets: SecretBox;
  log: Logger;
}

/** What a sign-in answers: the session token (shown once) and who it is for. */
export interface SignedIn {
  token: string;
  user: { name: string; role: User['role']; email: string | null };
}

/** The sign-ins this server offers. */
export interface Providers {
  oidc: boolean;
  ldap: boolean;
  /** Local accounts with a password (always: invitations make them). */
  password: boolean;
}

export class Identity {
  readonly ldap?: LdapDirectory;
  readonly oidc?: OidcProvider;
  /** Failed sign-ins by address and by name, shared by every way of signing in. */
  readonly attempts: SignInAttempts;
  /** Re-checks in flight by user id: concurrent requests of one person (any of their tokens)
   * share one, so an OIDC refresh token is never used twice at once. */
  private readonly rechecks = new Map<number, Promise<User>>();

  constructor(private readonly deps: IdentityDeps) {
    const { identity } = deps.config;
    if (identity.ldap) this.ldap = new LdapDirectory(identity.ldap, deps.log);
    if (identity.oidc) this.oidc = new OidcProvider(deps, identity.oidc);
    this.attempts = new SignInAttempts(identity.signInAttempts);
  }

  providers(): Providers {
    return { oidc: this.oidc !== undefined, ldap: this.ldap !== undefined, password: true };
  }

  /** Signs in with an LDAP name and password: the entry found and bound, then signIn()'s
   * decision (invitation, allowed group or domain), then a session token. */
  async signInWithLdap(username: string, password: string, ip?: string): Promise<SignedIn> {
    const user = await this.ldapUser(username, password, ip);
    return this.startSession(user, `ldap sign-in from ${ip ?? 'unknown address'}`);
  }

  /** The account an LDAP name and password sign in as (the web sign-in makes a web session
   * of it; the API a token). */
  async ldapUser(username: string, password: string, ip?: string): Promise<User> {
    const ldap = this.ldap;
    if (!ldap) {
      throw new UserError(
        'not_found',
        "this Petri has no LDAP directory configured (identity.ldap); see 'GET /v1/auth/providers' for the sign-ins it offers",
      );
    }
    const person = await this.attempt('ldap', username, ip, () => ldap.authenticate(username, password));
    const { allowedDomains, allowedGroups, adminGroups } = ldap.config;
    const user = await signIn(
      this.deps.db,
      {
        provider: 'ldap',
        subject: person.subject,
        email: person.email,
        ...(person.name ? { name: person.name } : {}),
        groups: person.groups,
      },
      { allowedDomains, allowedGroups, adminGroups },
      ip,
    );
    const recheck: LdapRecheck = { provider: 'ldap', dn: person.dn, username: person.username };
    await saveRecheck(this.deps.db, user.id, this.deps.secrets.seal(JSON.stringify(recheck)));
    return user;
  }

  /** Signs in to a local account with its e-mail and password. */
  async signInWithPassword(email: string, password: string, ip?: string): Promise<SignedIn> {
    const user = await this.passwordUser(email, password, ip);
    return this.startSession(user, `password sign-in from ${ip ?? 'unknown address'}`);
  }

  /** The local account an e-mail and password sign in as (refused: wrong, unusable). */
  async passwordUser(email: string, password: string, ip?: string): Promise<User> {
    const user = await this.attempt('local', email, ip, async () => {
      if (password.length === 0)
        throw new FailedAttempt('the password is empty; type your password', 'empty password');
      const account = await passwordAccount(this.deps.db, email);
      if (!account?.password_hash) {
        // As slow as a wrong password: the time taken does not tell which e-mails have accounts.
        await verifyNothing(password);
        throw new FailedAttempt(INVALID_EMAIL_OR_PASSWORD, 'unknown account');
      }
      if (!(await verifyPassword(password, account.password_hash))) {
        throw new FailedAttempt(INVALID_EMAIL_OR_PASSWORD, 'wrong password');
      }
      return account;
    });
    try {
      refuseUnusable(user);
    } catch (err) {
      await auditRefusal(this.deps.db, email, 'local', errorMessage(err), ip, {}, user.id);
      throw err;
    }
    await auditSignIn(this.deps.db, user, 'local', ip);
    return user;
  }

  /** Makes the local account an invitation link is for, with this password, and signs it in.
   * A link works once: a second use, an expired or unknown link are refused (and audited). */
  async acceptInvitation(secret: string, password: string, ip?: string): Promise<SignedIn> {
    const user = await this.createFromInvitation(secret, password, ip);
    return this.startSession(user, `invitation accepted from ${ip ?? 'unknown address'}`);
  }

  /** The invitation page's form: the account, without a session (a browser has no use for
   * a token; the person signs in with 'petri login --email'). */
  async createFromInvitation(secret: string, password: string, ip?: string): Promise<User> {
    const invitation = await this.openInvitation(secret, ip);
    checkNewPassword(password);
    const user = await acceptInvitation(this.deps.db, invitation, await hashPassword(password), ip);
    await auditSignIn(this.deps.db, user, 'invitation', ip);
    return user;
  }

  private async openInvitation(link: string, ip?: string): Promise<Invitation> {
    const secret = invitationSecret(link);
    return this.attempt('invitation', `invitation:${secret.slice(0, 8)}`, ip, async () => {
      try {
        return await invitationBySecret(this.deps.db, secret);
      } catch (err) {
        // An unknown link counts against the address (guessing links); a used or expired one
        // is someone's real link: refused, but not counted.
        if (err instanceof UserError && err.code === 'not_found') {
          throw new FailedAttempt(err.message, 'unknown invitation', 'not_found');
        }
        if (err instanceof UserError)
          await auditRefusal(this.deps.db, '(invitation)', 'invitation', err.message, ip);
        throw err;
      }
    });
  }

  /** The open invitation a link names, with its team and inviter (for its page); refuses an
   * unknown, used or expired link (audited, and counted against the address if unknown). */
  async invitation(secret: string, ip?: string) {
    const invitation = await this.openInvitation(secret, ip);
    return { invitation, ...(await invitationDetails(this.deps.db, invitation)) };
  }

  /** A local account's new password; the other sessions of the account end. */
  async changePassword(
    user: User,
    token: Token | null,
    current: string,
    next: string,
    ip?: string,
  ): Promise<{ sessionsEnded: number }> {
    if (user.provider !== 'local' || user.kind !== 'person') {
      throw new UserError(
        'bad_request',
        user.kind === 'bot'
          ? 'a bot has no password: it uses the token made for it'
          : `your account signs in with ${user.provider === 'ldap' ? 'LDAP' : 'single sign-on'}: change your password there`,
      );
    }
    const who = user.email ?? user.name;
    if (user.password_hash === null) {
      // A local account without a password yet (the first admin's, made with a token): its
      // first one is set by the token's holder, once (later changes need it).
      if (!user.email) {
        throw new UserError(
          'bad_request',
          "your account has no e-mail to sign in with: the operator sets identity.adminEmail in the server's config for the first admin",
        );
      }
      if (current !== '') {
        throw new UserError(
          'bad_request',
          'your account has no password yet: give an empty current password',
        );
      }
      checkNewPassword(next);
      if (!(await setFirstPasswordHash(this.deps.db, user.id, await hashPassword(next)))) {
        throw new UserError(
          'conflict',
          'your account got a password meanwhile; change it with the current one',
        );
      }
    } else {
      const hash = user.password_hash;
      await this.attempt('local', who, ip, async () => {
        if (!(await verifyPassword(current, hash))) {
          throw new FailedAttempt('the current password is wrong', 'wrong current password');
        }
      });
      checkNewPassword(next);
      await setPasswordHash(this.deps.db, user.id, await hashPassword(next));
    }
    const ended = await revokeOtherSessions(this.deps.db, user.id, token?.id);
    await recordAudit(this.deps.db, { name: who, userId: user.id, ip: ip ?? null }, 'auth.password', who, {
      sessionsEnded: ended,
      first: user.password_hash === null,
    });
    return { sessionsEnded: ended };
  }

  /** Whether the user is due a re-check with their provider: someone who signs in with
   * OIDC or LDAP whose last check is older than identity.recheckSeconds. */
  recheckDue(user: User): boolean {
    if (user.provider !== 'oidc' && user.provider !== 'ldap') return false;
    const checked = user.checked_at === null ? 0 : Date.parse(user.checked_at);
    return Date.now() - checked >= this.deps.config.identity.recheckSeconds * 1000;
  }

  /** Re-checks the user behind a request (any token of theirs) with the provider that signed
   * them in, when due: answers the account as it is now (its role may have followed the
   * admin groups), or throws 401 and ends every token of someone the provider no longer has
   * or the sign-in policy no longer admits; 503 (nothing revoked) when the provider cannot
   * be asked. One at a time per user. */
  async recheck(user: User, _token?: Token | null): Promise<User> {
    const running = this.rechecks.get(user.id);
    if (running) return running;
    const run = this.recheckUser(user).finally(() => this.rechecks.delete(user.id));
    this.rechecks.set(user.id, run);
    return run;
  }

  private async recheckUser(stale: User): Promise<User> {
    // As the store has it now: a check that just ended (another request's) is not repeated.
    const user = (await currentUser(this.deps.db, stale.id)) ?? stale;
    if (!this.recheckDue(user)) return user;
    if (user.provider === 'ldap') return this.recheckLdap(user);
    return this.recheckOidc(user);
  }

  private async recheckLdap(user: User): Promise<User> {
    const ldap = this.ldap;
    if (!ldap) return unconfigured('ldap');
    const data = this.recheckData(user);
    // 'unavailable' (the directory cannot be asked) goes to the caller as is: nothing is revoked.
    const entry =
      data?.provider === 'ldap' && typeof data.dn === 'string' && typeof data.username === 'string'
        ? await ldap.lookup({ provider: 'ldap', dn: data.dn, username: data.username })
        : // No sign-in's data (an account from before Petri kept it, or the server's key
          // changed): the entry is found by the account's own id, entryUUID or DN.
          user.subject
          ? await ldap.lookupBySubject(user.subject)
          : undefined;
    if (!entry) {
      return this.gone(user, 'ldap', 'the LDAP entry is gone or no longer matches identity.ldap.userFilter');
    }
    return recheckAdmission(this.deps.db, user, entry, ldap.config);
  }

  private async recheckOidc(user: User): Promise<User> {
    const oidc = this.oidc;
    if (!oidc) return unconfigured('oidc');
    const data = this.recheckData(user);
    if (data?.provider !== 'oidc' || typeof data.refreshToken !== 'string') {
      // Nothing to ask the provider with (an account from before Petri kept a refresh token
      // on it, or the server's key changed). The person is neither known gone nor known
      // there: their tokens (sessions and API tokens) are refused, not revoked, until they
      // sign in again, which proves they are still there and gives Petri a refresh token;
      // then their tokens work again. Waiting for LDAP-style proof is not possible: OIDC
      // has no way to ask about a person without a grant of theirs.
      throw new UserError(
        'unauthorized',
        "Petri cannot re-check your single sign-on account with the sign-in provider (it holds no refresh token of yours); run 'petri login' again, and your tokens work again",
      );
    }
    let answer: Awaited<ReturnType<OidcProvider['recheck']>>;
    try {
      answer = await oidc.recheck(user, data as unknown as OidcRecheck);
    } catch (err) {
      // oidc.ts has audited why (refresh refused, another subject); every token ends here.
      if (err instanceof UserError && err.code === 'unauthorized')
        await revokeAllTokens(this.deps.db, user.id);
      throw err;
    }
    return recheckAdmission(this.deps.db, user, answer.view, oidc.settings, answer.recheckSealed);
  }

  /** The provider dropped the user: every token of theirs ends, on the record, and 401. */
  private async gone(user: User, provider: string, reason: string): Promise<never> {
    await providerSaysGone(this.deps.db, user, provider, reason);
    throw new UserError(
      'unauthorized',
      `your ${provider === 'ldap' ? 'LDAP account' : 'single sign-on account'} no longer signs in to Petri (${reason}); every token of yours was revoked: ask an admin if this is a mistake`,
    );
  }

  /** The account's sealed re-check data; undefined when it has none or it cannot be read. */
  private recheckData(user: User): ({ provider?: string } & Record<string, unknown>) | undefined {
    if (!user.recheck_sealed) return undefined;
    try {
      return JSON.parse(this.deps.secrets.open(user.recheck_sealed)) as { provider?: string };
    } catch {
      return undefined;
    }
  }

  /** A session token for the user, valid identity.sessionDays (re-checked as its user is). */
  async startSession(user: User, description: string): Promise<SignedIn> {
    const days = this.deps.config.identity.sessionDays;
    const { secret } = await mintToken(this.deps.db, user.id, description, {
      kind: 'session',
      expiresAt: new Date(Date.now() + days * 86_400_000).toISOString(),
    });
    return { token: secret, user: { name: user.name, role: user.role, email: user.email } };
  }

  /** Runs a password check under the rate limit: refused at once (429) past the limit; a
   * failed check is counted, audited and answered 401; a success clears the name's count. */
  private async attempt<T>(
    provider: string,
    name: string,
    ip: string | undefined,
    check: () => Promise<T>,
  ): Promise<T> {
    try {
      this.attempts.check(ip, name);
    } catch (err) {
      await auditRefusal(this.deps.db, name, provider, errorMessage(err), ip, { rateLimited: true });
      throw err;
    }
    try {
      const result = await check();
      this.attempts.succeed(name);
      return result;
    } catch (err) {
      if (err instanceof FailedAttempt) {
        this.attempts.fail(ip, name);
        await auditRefusal(this.deps.db, name, provider, err.reason, ip);
      }
      throw err;
    }
  }
}

const INVALID_EMAIL_OR_PASSWORD = 'invalid e-mail or password';

/** The person signs in with a provider this server does not (any more) have configured:
 * nothing can say whether they are still there, so their tokens are refused, not revoked,
 * until the operator configures it again (an admin may disable them meanwhile); none is
 * used unchecked. */
function unconfigured(provider: 'oidc' | 'ldap'): never {
  throw new UserError(
    'unauthorized',
    `your account signs in with ${provider === 'ldap' ? 'LDAP (identity.ldap)' : 'single sign-on (identity.oidc)'}, which this Petri no longer offers, so it cannot be re-checked; ask an admin`,
  );
}

/** The secret of an invitation, given alone or as the whole link (…/invite/SECRET). */
export function invitationSecret(link: string): string {
  const trimmed = link.trim();
  const at = trimmed.lastIndexOf('/invite/');
  return (at === -1 ? trimmed : trimmed.slice(at + '/invite/'.length)).replace(/[/?#].*$/, '');
}

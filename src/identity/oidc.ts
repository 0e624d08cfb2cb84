// Signing in with the organisation's OIDC provider, Petri's server being the confidential
// client: the browser flow (authorization code + PKCE, redirected to the CLI's loopback
// listener, RFC 8252), the web flow (the same, redirected to the API host's own
// /login/oidc/callback, for a web session), the device flow, and the re-check of a person with the provider (a
// refresh, with the refresh token of their newest sign-in, kept sealed on their account)
// that ends the tokens of someone removed there. Every flow's state is in the store
// (domain/login-flows.ts), sealed and single use.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type * as OidcTypes from 'openid-client';
import type { Logger } from 'pino';
import { recordAudit } from '../domain/audit.js';
import { issueToken } from '../domain/auth.js';
import {
  consumeLoginFlow,
  countOpenLoginFlows,
  createLoginFlow,
  findLoginFlow,
  LOGIN_FLOW_TTL_MS,
  updateLoginFlow,
} from '../domain/login-flows.js';
import { type ProviderView, saveRecheck, signIn } from '../domain/sign-in.js';
import type { IdentityConfig, OidcConfig } from '../lib/config.js';
import { errorMessage, UserError } from '../lib/errors.js';
import type { SecretBox } from '../lib/secrets.js';
import type { Store } from '../store/db.js';
import type { User } from '../store/schema.js';

// openid-client (some 8 MiB resident) loads with the first discovery of the provider, not
// with the server: every other call of it comes after a discovery.
let oidc = undefined as unknown as typeof OidcTypes;

export interface OidcDeps {
  db: Store;
  config: { identity: Pick<IdentityConfig, 'sessionDays'> & { oidc?: OidcConfig } };
  secrets: SecretBox;
  log: Logger;
}

/** What a sign-in answers: the session token (shown once) and who it is for. */
export interface SignedIn {
  token: string;
  user: { name: string; role: User['role']; email: string | null };
}

export type DevicePollResult = ({ status: 'done' } & SignedIn) | { status: 'pending'; interval: number };

/** What an account that signs in with OIDC keeps, sealed, for its re-checks (the newest
 * sign-in's): the refresh token, rotated at each re-check. */
export interface OidcRecheck {
  provider: 'oidc';
  subject: string;
  refreshToken: string;
}

interface BrowserFlow {
  state: string;
  nonce: string;
  verifier: string;
  redirectUri: string;
  secretHash: string;
}

/** A web sign-in in progress: the callback is the API host's own, and `next` where the
 * person was going (a path on the API host, already checked). */
interface WebFlow {
  state: string;
  nonce: string;
  verifier: string;
  redirectUri: string;
  next: string;
}

interface DeviceFlow {
  deviceCode: string;
  interval: number;
  secretHash: string;
  /** ms epoch of the last poll that reached the provider. */
  polledAt: number;
}

/** Sign-ins in progress at once: past this, starts are refused (429) until some end or expire,
 * so anonymous callers cannot grow the table without bound. */
const MAX_OPEN_FLOWS = 10_000;
/** Sign-ins one address may start within a flow's lifetime (10 minutes): a person needs a
 * few; a script opening flows to fill the table is cut off long before MAX_OPEN_FLOWS. */
const STARTS_PER_ADDRESS = 30;
/** How long discovered metadata is used before it is read again (keys rotate by kid anyway). */
const DISCOVERY_TTL_MS = 60 * 60_000;
/** Waits between tries of an unreachable issuer, within one request. */
const DISCOVERY_RETRIES_MS = [250, 1000];
/** Seconds any one request to the provider may take. */
const PROVIDER_TIMEOUT_S = 10;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export class OidcProvider {
  private discovered: { at: number; config: Promise<OidcTypes.Configuration> } | undefined;
  /** Sign-ins started by address, in memory: a restart forgets them, which lets no one in. */
  private readonly starts = new StartsByAddress(STARTS_PER_ADDRESS, LOGIN_FLOW_TTL_MS);

  constructor(
    private readonly deps: OidcDeps,
    readonly settings: OidcConfig,
  ) {}

  /** The provider's metadata and keys, discovered once (again after an hour, or after a failure). */
  configuration(): Promise<OidcTypes.Configuration> {
    const at = Date.now();
    if (!this.discovered || at - this.discovered.at > DISCOVERY_TTL_MS) {
      const config = this.discover();
      this.discovered = { at, config };
      config.catch(() => {
        if (this.discovered?.config === config) this.discovered = undefined;
      });
    }
    return this.discovered.config;
  }

  private async discover(): Promise<OidcTypes.Configuration> {
    oidc ??= await import('openid-client');
    const { issuer, clientId, clientSecret } = this.settings;
    const url = new URL(issuer);
    const loopback = isLoopbackHost(url.hostname);
    if (url.protocol !== 'https:' && !loopback) {
      throw new UserError(
        'unavailable',
        `identity.oidc.issuer must be an https:// URL (plain http only on 127.0.0.1, for tests), got ${issuer}`,
      );
    }
    let lastError: unknown;
    for (let attempt = 0; attempt <= DISCOVERY_RETRIES_MS.length; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, DISCOVERY_RETRIES_MS[attempt - 1]));
      try {
        const config = await oidc.discovery(url, clientId, undefined, oidc.ClientSecretBasic(clientSecret), {
          timeout: PROVIDER_TIMEOUT_S,
          ...(loopback ? { execute: [oidc.allowInsecureRequests] } : {}),
        });
        // Signatures too, not only the claims: Petri never trusts an ID token it cannot verify
        // with the provider's published keys (an unsigned or HMAC-signed one is refused).
        oidc.enableNonRepudiationChecks(config);
        return config;
      } catch (err) {
        lastError = err;
        // A provider that answered, wrongly: trying again will not change its mind.
        if (!isNetworkError(err)) break;
      }
    }
    this.deps.log.warn({ issuer, err: describe(lastError) }, 'OIDC discovery failed');
    throw new UserError(
      'unavailable',
      `cannot reach the sign-in provider at ${issuer} (${describe(lastError)}); ` +
        'try again in a moment, and if it persists ask an admin to check identity.oidc.issuer',
    );
  }

  /** The browser flow's first half: where to send the browser, and the flow to finish. */
  async startBrowser(
    input: { redirectUri: string; secretHash?: string },
    ip?: string,
  ): Promise<{ flow: string; authorizeUrl: string; secret?: string }> {
    const redirectUri = await this.loopbackRedirect(input.redirectUri, ip);
    const config = await this.configuration();
    await this.limitOpenFlows(ip);
    const { secretHash, secret } = flowSecret(input.secretHash);
    const data: BrowserFlow = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      redirectUri,
      secretHash,
    };
    const flow = await createLoginFlow(this.deps.db, this.deps.secrets, 'oidc', data);
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.scopes(config),
      state: data.state,
      nonce: data.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(data.verifier),
      code_challenge_method: 'S256',
    });
    return { flow: flow.id, authorizeUrl: url.href, ...(secret ? { secret } : {}) };
  }

  /** The browser flow's second half: the code the provider redirected with, for a session. */
  async finishBrowser(
    input: { flow: string; state: string; code: string; iss?: string; secret: string },
    ip?: string,
  ): Promise<SignedIn> {
    const flow = await findLoginFlow<BrowserFlow>(this.deps.db, this.deps.secrets, input.flow, 'oidc');
    if (!flow)
      return this.refuse(
        ip,
        'unknown, used or expired flow',
        "this sign-in is unknown, already finished or older than 10 minutes; run 'petri login' again",
      );
    if (!secretMatches(input.secret, flow.data.secretHash))
      return this.refuse(
        ip,
        'wrong flow secret',
        "this sign-in was started by another client (its secret does not match); run 'petri login' again",
      );
    // Used up before anything else is looked at: a second finish of the same flow, even one
    // racing this one, finds nothing.
    if (!(await consumeLoginFlow(this.deps.db, flow.id)))
      return this.refuse(
        ip,
        'flow already used',
        "this sign-in was already finished; run 'petri login' again",
      );
    if (!constantEquals(input.state, flow.data.state))
      return this.refuse(
        ip,
        'state mismatch',
        "the sign-in answer does not belong to this sign-in (its state differs): it may be forged; run 'petri login' again",
      );
    const config = await this.configuration();
    const callback = new URL(flow.data.redirectUri);
    callback.searchParams.set('code', input.code);
    callback.searchParams.set('state', input.state);
    if (input.iss !== undefined) callback.searchParams.set('iss', input.iss);
    let tokens: OidcTypes.TokenEndpointResponse & OidcTypes.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: flow.data.verifier,
        expectedState: flow.data.state,
        expectedNonce: flow.data.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      return this.refuseProviderAnswer(ip, err);
    }
    return this.signInWith(config, tokens, ip);
  }

  /** The device flow's start: the code for the user to type at the provider. */
  async startDevice(
    input: { secretHash?: string },
    ip?: string,
  ): Promise<{
    flow: string;
    userCode: string;
    verificationUri: string;
    verificationUriComplete: string | null;
    interval: number;
    expiresIn: number;
    secret?: string;
  }> {
    const config = await this.configuration();
    if (!config.serverMetadata().device_authorization_endpoint) {
      throw new UserError(
        'bad_request',
        "the sign-in provider offers no device sign-in; run 'petri login' where a browser can open, " +
          "or ask an admin to enable the device grant for Petri's client",
      );
    }
    await this.limitOpenFlows(ip);
    let answer: OidcTypes.DeviceAuthorizationResponse;
    try {
      answer = await oidc.initiateDeviceAuthorization(config, { scope: this.scopes(config) });
    } catch (err) {
      return this.refuseProviderAnswer(ip, err);
    }
    const { secretHash, secret } = flowSecret(input.secretHash);
    const interval = Math.max(1, Math.ceil(answer.interval ?? 5));
    const ttl = Math.min(LOGIN_FLOW_TTL_MS, answer.expires_in * 1000);
    const data: DeviceFlow = { deviceCode: answer.device_code, interval, secretHash, polledAt: 0 };
    const flow = await createLoginFlow(this.deps.db, this.deps.secrets, 'device', data, ttl);
    return {
      flow: flow.id,
      userCode: answer.user_code,
      verificationUri: answer.verification_uri,
      verificationUriComplete: answer.verification_uri_complete ?? null,
      interval,
      expiresIn: Math.floor(ttl / 1000),
      ...(secret ? { secret } : {}),
    };
  }

  /** One poll of a device flow: still pending (poll again after `interval` s), or signed in. */
  async pollDevice(input: { flow: string; secret: string }, ip?: string): Promise<DevicePollResult> {
    const { db, secrets } = this.deps;
    const flow = await findLoginFlow<DeviceFlow>(db, secrets, input.flow, 'device');
    if (!flow)
      return this.refuse(
        ip,
        'unknown, used or expired device flow',
        "this device sign-in is unknown, already finished or expired; run 'petri login --device' again",
      );
    if (!secretMatches(input.secret, flow.data.secretHash))
      return this.refuse(
        ip,
        'wrong flow secret',
        "this device sign-in was started by another client (its secret does not match); run 'petri login --device' again",
      );
    // A client polling faster than asked is answered here, without bothering the provider
    // (which would slow every poll of this flow down).
    const at = Date.now();
    if (at - flow.data.polledAt < flow.data.interval * 1000)
      return { status: 'pending', interval: flow.data.interval };
    await updateLoginFlow(db, secrets, flow.id, { ...flow.data, polledAt: at });
    const config = await this.configuration();
    let tokens: OidcTypes.TokenEndpointResponse & OidcTypes.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: flow.data.deviceCode });
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError) {
        if (err.error === 'authorization_pending') return { status: 'pending', interval: flow.data.interval };
        if (err.error === 'slow_down') {
          const interval = flow.data.interval + 5;
          await updateLoginFlow(db, secrets, flow.id, { ...flow.data, interval, polledAt: at });
          return { status: 'pending', interval };
        }
        await consumeLoginFlow(db, flow.id);
        if (err.error === 'access_denied')
          return this.refuse(
            ip,
            'denied at the provider',
            'the sign-in was denied at the provider; nothing was changed',
          );
        if (err.error === 'expired_token')
          return this.refuse(
            ip,
            'device code expired',
            "the code expired before it was entered; run 'petri login --device' again",
          );
      }
      return this.refuseProviderAnswer(ip, err);
    }
    if (!(await consumeLoginFlow(db, flow.id)))
      return this.refuse(
        ip,
        'flow already used',
        "this device sign-in was already finished; run 'petri login --device' again",
      );
    return { status: 'done', ...(await this.signInWith(config, tokens, ip)) };
  }

  /**
   * Asks the provider whether the person is still there (a refresh with the refresh token of
   * their newest sign-in): throws UserError('unauthorized') when they are gone (the refresh
   * refused, another subject), audited; 'unavailable' when the provider cannot be asked.
   * Otherwise answers what the provider says of them now (e-mail, groups: the sign-in policy
   * and the admin groups are applied by domain/sign-in.ts) and the re-check data to keep,
   * with the rotated refresh token. The Identity facade runs one at a time per user (a
   * refresh token used twice would make the provider revoke the whole grant), stores the
   * answer, and revokes every token on 'unauthorized'.
   */
  async recheck(user: User, data: OidcRecheck): Promise<{ view: ProviderView; recheckSealed: string }> {
    const who = user.email ?? user.name;
    const config = await this.configuration();
    let tokens: OidcTypes.TokenEndpointResponse & OidcTypes.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.refreshTokenGrant(config, data.refreshToken);
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError && err.error === 'invalid_grant') {
        throw await this.gone(
          who,
          `refresh refused: ${err.error_description ?? err.error}`,
          "your sign-in at the sign-in provider ended (the account was removed, disabled or signed out there); run 'petri login' again",
        );
      }
      if (err instanceof UserError) throw err;
      throw new UserError(
        'unavailable',
        `cannot re-check your sign-in with the sign-in provider (${describe(err)}); try again in a moment`,
      );
    }
    // The groups may be only in the userinfo answer; then it must be had: a failure to ask
    // must not read as "in no group" and end the person's access.
    const idClaims: Record<string, unknown> | undefined = tokens.claims();
    const claims =
      idClaims && idClaims[this.settings.groupsClaim] !== undefined
        ? idClaims
        : { ...(await this.userInfo(config, tokens, data.subject, true)), ...(idClaims ?? {}) };
    if (claims.sub !== data.subject)
      throw await this.gone(
        who,
        'subject changed',
        "the sign-in provider answers for another person now; run 'petri login' again",
      );
    const email = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : (user.email ?? '');
    const next: OidcRecheck = { ...data, refreshToken: tokens.refresh_token ?? data.refreshToken };
    return {
      view: { email, groups: groupsOf(claims, this.settings.groupsClaim) },
      recheckSealed: this.deps.secrets.seal(JSON.stringify(next)),
    };
  }

  /** The user is gone at the provider: an audited refusal (the caller revokes their sessions). */
  private async gone(who: string, reason: string, message: string): Promise<UserError> {
    await recordAudit(
      this.deps.db,
      { name: who },
      'auth.refused',
      'oidc',
      { reason, recheck: true },
      { outcome: 'denied' },
    );
    return new UserError('unauthorized', message);
  }

  /** After the provider's answer was verified (issuer, audience, signature, expiry, nonce):
   * the person's claims, the sign-in policy, and a session token. */
  private async signInWith(
    config: OidcTypes.Configuration,
    tokens: OidcTypes.TokenEndpointResponse & OidcTypes.TokenEndpointResponseHelpers,
    ip?: string,
  ): Promise<SignedIn> {
    const user = await this.admit(config, tokens, ip);
    const days = this.deps.config.identity.sessionDays;
    const token = await issueToken(this.deps.db, user.id, `oidc sign-in from ${ip ?? 'unknown address'}`, {
      kind: 'session',
      expiresAt: new Date(Date.now() + days * 86_400_000).toISOString(),
    });
    return { token, user: { name: user.name, role: user.role, email: user.email } };
  }

  /**
   * The web sign-in's first half (GET /login/oidc on the API host): the provider's page to
   * send the browser to, with the API host's own callback, and the flow's id, which the
   * browser keeps in a cookie so that only the browser that started a sign-in can finish it.
   * State, nonce and PKCE verifier stay in the store, sealed, single use, 10 minutes.
   */
  async startWeb(
    input: { redirectUri: string; next: string },
    ip?: string,
  ): Promise<{ flow: string; authorizeUrl: string }> {
    const config = await this.configuration();
    await this.limitOpenFlows(ip);
    const data: WebFlow = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      redirectUri: input.redirectUri,
      next: input.next,
    };
    const flow = await createLoginFlow(this.deps.db, this.deps.secrets, 'web', data);
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: input.redirectUri,
      scope: this.scopes(config),
      state: data.state,
      nonce: data.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(data.verifier),
      code_challenge_method: 'S256',
    });
    return { flow: flow.id, authorizeUrl: url.href };
  }

  /**
   * The web sign-in's second half (GET /login/oidc/callback): the flow the browser's cookie
   * names, used up before anything else, the state compared, the code exchanged with the
   * verifier: the account it signs in as, and where the person was going.
   */
  async finishWeb(
    input: { flows: string[]; query: URLSearchParams },
    ip?: string,
  ): Promise<{ user: User; next: string }> {
    const state = input.query.get('state') ?? '';
    let flow: Awaited<ReturnType<typeof findLoginFlow<WebFlow>>>;
    for (const id of input.flows.slice(0, 5)) {
      const found = await findLoginFlow<WebFlow>(this.deps.db, this.deps.secrets, id, 'web');
      if (found && constantEquals(state, found.data.state)) {
        flow = found;
        break;
      }
      flow ??= found;
    }
    if (!flow)
      return this.refuse(
        ip,
        'unknown, used or expired web flow',
        'this sign-in was not started in this browser, was already finished or is older than 10 minutes; sign in again',
      );
    if (!(await consumeLoginFlow(this.deps.db, flow.id)))
      return this.refuse(ip, 'flow already used', 'this sign-in was already finished; sign in again');
    if (!constantEquals(state, flow.data.state))
      return this.refuse(
        ip,
        'state mismatch',
        'the sign-in answer does not belong to the sign-in this browser started (its state differs): it may be forged; sign in again',
      );
    const providerError = input.query.get('error');
    if (providerError)
      return this.refuse(
        ip,
        `provider answered ${providerError}`,
        `the sign-in provider did not sign you in (${providerError}${input.query.get('error_description') ? `: ${input.query.get('error_description')?.slice(0, 200)}` : ''}); sign in again`,
      );
    const config = await this.configuration();
    const callback = new URL(flow.data.redirectUri);
    for (const key of ['code', 'state', 'iss']) {
      const value = input.query.get(key);
      if (value !== null) callback.searchParams.set(key, value);
    }
    let tokens: OidcTypes.TokenEndpointResponse & OidcTypes.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: flow.data.verifier,
        expectedState: flow.data.state,
        expectedNonce: flow.data.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      return this.refuseProviderAnswer(ip, err);
    }
    return { user: await this.admit(config, tokens, ip), next: flow.data.next };
  }

  /** The account the provider's verified answer signs in as: its claims checked, the
   * sign-in policy applied, the refresh token kept for the re-checks. */
  private async admit(
    config: OidcTypes.Configuration,
    tokens: OidcTypes.TokenEndpointResponse & OidcTypes.TokenEndpointResponseHelpers,
    ip?: string,
  ): Promise<User> {
    const idClaims = tokens.claims();
    if (!idClaims || !tokens.id_token)
      return this.refuse(
        ip,
        'no ID token',
        'the sign-in provider answered without an ID token; ask an admin to check the openid scope for Petri',
      );
    const alg = jwtAlg(tokens.id_token);
    if (alg === undefined || alg === 'none' || alg.startsWith('HS'))
      return this.refuse(
        ip,
        `ID token alg ${alg ?? 'missing'}`,
        `the sign-in provider's ID token is not signed with a published key (alg ${alg ?? 'missing'}); Petri refuses it`,
      );
    // The ID token is authoritative; the userinfo endpoint fills in what it left out (the
    // e-mail, the groups: many providers put the scopes' claims only there).
    const claims = { ...(await this.userInfo(config, tokens, idClaims.sub)), ...idClaims };
    const email = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : '';
    if (!email)
      return this.refuse(
        ip,
        'no e-mail',
        "the sign-in provider did not say your e-mail address (claim 'email'); ask an admin to release it to Petri",
        idClaims.sub,
      );
    if (claims.email_verified === false)
      return this.refuse(
        ip,
        'e-mail not verified',
        `the sign-in provider says ${email} is not verified; verify it there, then run 'petri login' again`,
        email,
      );
    // Without a refresh token Petri could never ask again whether the person is still there
    // (the re-check every identity.recheckSeconds): an admin must allow it for Petri's client.
    if (!tokens.refresh_token)
      return this.refuse(
        ip,
        'no refresh token',
        "the sign-in provider gave Petri no refresh token, so it could not re-check your account later; ask an admin to allow refresh tokens (offline_access) for Petri's client",
        email,
      );
    const groups = groupsOf(claims, this.settings.groupsClaim);
    const { allowedDomains, allowedGroups, adminGroups } = this.settings;
    const user = await signIn(
      this.deps.db,
      {
        provider: 'oidc',
        subject: idClaims.sub,
        email,
        ...(typeof claims.name === 'string' ? { name: claims.name } : {}),
        groups,
      },
      { allowedDomains, allowedGroups, adminGroups },
      ip,
    );
    // The newest sign-in's refresh token is the one every token of the person is re-checked with.
    const recheck: OidcRecheck = {
      provider: 'oidc',
      subject: idClaims.sub,
      refreshToken: tokens.refresh_token,
    };
    await saveRecheck(this.deps.db, user.id, this.deps.secrets.seal(JSON.stringify(recheck)));
    return user;
  }

  private async userInfo(
    config: OidcTypes.Configuration,
    tokens: OidcTypes.TokenEndpointResponse,
    subject: string,
    required = false,
  ): Promise<OidcTypes.UserInfoResponse | Record<string, never>> {
    if (!config.serverMetadata().userinfo_endpoint) return {};
    try {
      return await oidc.fetchUserInfo(config, tokens.access_token, subject);
    } catch (err) {
      if (required)
        throw new UserError(
          'unavailable',
          `cannot re-check your sign-in with the sign-in provider (userinfo: ${describe(err)}); try again in a moment`,
        );
      // The ID token alone may be enough (its claims are checked next); say why it was not.
      this.deps.log.warn({ err: describe(err) }, 'OIDC userinfo failed');
      return {};
    }
  }

  /** openid, the e-mail and profile; offline_access (a refresh token, for the re-checks) and
   * the groups claim's scope where the provider names them. */
  private scopes(config: OidcTypes.Configuration): string {
    const supported = config.serverMetadata().scopes_supported ?? [];
    const scopes = ['openid', 'email', 'profile'];
    if (supported.includes('offline_access')) scopes.push('offline_access');
    if (supported.includes(this.settings.groupsClaim)) scopes.push(this.settings.groupsClaim);
    return scopes.join(' ');
  }

  /** RFC 8252: a native client's redirect is http on the loopback interface, any port. */
  private async loopbackRedirect(raw: string, ip?: string): Promise<string> {
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
    const ok =
      url !== undefined &&
      url.protocol === 'http:' &&
      (url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]') &&
      url.port !== '' &&
      url.username === '' &&
      url.password === '' &&
      url.search === '' &&
      url.hash === '';
    if (!ok)
      return this.refuse(
        ip,
        'redirect URI not loopback',
        `redirectUri must be a loopback address like http://127.0.0.1:PORT/callback (no query), got '${raw.slice(0, 200)}'`,
        undefined,
        'bad_request',
      );
    return url!.href;
  }

  /** Bounds what anonymous callers may open: per address (the provider is asked for each
   * device code, and a table of flows must not grow without bound), and in all. */
  private async limitOpenFlows(ip?: string): Promise<void> {
    const wait = this.starts.take(ip ?? 'unknown', Date.now());
    if (wait > 0)
      await this.refuse(
        ip,
        'too many sign-ins started from one address',
        `too many sign-ins were started from your address; try again in ${Math.ceil(wait / 1000)} seconds`,
        undefined,
        'too_many_requests',
      );
    if ((await countOpenLoginFlows(this.deps.db)) >= MAX_OPEN_FLOWS)
      await this.refuse(
        ip,
        'too many sign-ins in progress',
        'too many sign-ins are in progress; try again in a few minutes',
        undefined,
        'too_many_requests',
      );
  }

  /** The provider's answer did not pass: why, for the user and the audit trail. */
  private refuseProviderAnswer(ip: string | undefined, err: unknown): never | Promise<never> {
    if (err instanceof UserError) throw err;
    if (isNetworkError(err)) {
      throw new UserError(
        'unavailable',
        `cannot reach the sign-in provider at ${this.settings.issuer} (${describe(err)}); try again in a moment`,
      );
    }
    const reason = describe(err);
    return this.refuse(
      ip,
      reason,
      `the sign-in provider's answer was refused: ${reason}; run 'petri login' again`,
    );
  }

  /** Every refusal: on the audit trail (who tried, from where, why), then the UserError. */
  private async refuse(
    ip: string | undefined,
    reason: string,
    message: string,
    who = 'anonymous',
    code: 'unauthorized' | 'bad_request' | 'too_many_requests' = 'unauthorized',
  ): Promise<never> {
    await recordAudit(
      this.deps.db,
      { name: who, ip: ip ?? null },
      'auth.refused',
      'oidc',
      { reason },
      { outcome: 'denied' },
    );
    throw new UserError(code, message);
  }
}

/** Starts per address in a sliding window; at most `MAX_ADDRESSES` addresses remembered. */
class StartsByAddress {
  private static readonly MAX_ADDRESSES = 10_000;
  private readonly times = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  /** Counts a start; answers 0, or how many ms until the address may start again. */
  take(address: string, at: number): number {
    const recent = (this.times.get(address) ?? []).filter((t) => t > at - this.windowMs);
    if (recent.length >= this.limit) return (recent[0] ?? at) + this.windowMs - at;
    recent.push(at);
    this.times.delete(address); // re-inserted last: the oldest address is dropped first
    this.times.set(address, recent);
    if (this.times.size > StartsByAddress.MAX_ADDRESSES) {
      const oldest = this.times.keys().next().value;
      if (oldest !== undefined) this.times.delete(oldest);
    }
    return 0;
  }
}

function isLoopbackHost(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]' || host === '::1';
}

/** The flow's secret hash: the client's, or a fresh secret's the start answers once. */
function flowSecret(given: string | undefined): { secretHash: string; secret?: string } {
  if (given) return { secretHash: given };
  const secret = randomBytes(32).toString('base64url');
  return { secretHash: sha256(secret), secret };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function secretMatches(secret: string, hash: string): boolean {
  return constantEquals(sha256(secret), hash);
}

/** Compared in constant time (over hashes, so the lengths always match). */
function constantEquals(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

function jwtAlg(jwt: string): string | undefined {
  try {
    const header = JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString('utf8')) as {
      alg?: unknown;
    };
    return typeof header.alg === 'string' ? header.alg : undefined;
  } catch {
    return undefined;
  }
}

/** The groups claim: a list of names (or one name); anything else is no groups. */
function groupsOf(claims: Record<string, unknown>, claim: string): string[] {
  const value = claims[claim];
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((g): g is string => typeof g === 'string') : [];
}

/** A failure to reach the provider at all (as opposed to an answer that did not pass). */
function isNetworkError(err: unknown): boolean {
  if (oidc !== undefined && err instanceof oidc.ResponseBodyError) return false;
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (
      (typeof code === 'string' && /^(E[A-Z]+|UND_ERR_.*)$/.test(code) && code !== 'ERR_INVALID_ARG_TYPE') ||
      e.name === 'AbortError' ||
      e.name === 'TimeoutError' ||
      (e instanceof TypeError && e.message === 'fetch failed')
    )
      return true;
    e = e.cause;
  }
  return false;
}

/** A one-line reason from openid-client's errors: the OAuth error the provider answered, or
 * the innermost error's message (openid-client wraps the specific one in a generic one). */
function describe(err: unknown): string {
  if (oidc !== undefined && err instanceof oidc.ResponseBodyError) {
    return `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`;
  }
  let innermost: unknown = err;
  for (let depth = 0; depth < 5 && innermost instanceof Error && innermost.cause instanceof Error; depth++) {
    innermost = innermost.cause;
  }
  return errorMessage(innermost).slice(0, 300);
}

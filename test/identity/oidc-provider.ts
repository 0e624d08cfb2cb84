// A real OIDC provider for the tests (the certified `oidc-provider` package) on 127.0.0.1 on a
// free port, with a confidential client allowed loopback redirects on any port (RFC 8252),
// the device flow and refresh tokens; accounts with e-mail, email_verified and groups that a
// test may change or remove. A small browser (cookies, redirects, forms) drives its pages
// without a human. And a hostile issuer that signs whatever ID token a test asks for, for the
// tokens a real provider will not make (wrong issuer, audience, nonce, expired, alg none).
import { createHmac, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface TestAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  groups?: string[];
}

export const CLIENT_ID = 'petri';
export const CLIENT_SECRET = 'petri-test-client-secret-0123456789';

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return server;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export class TestOidcProvider {
  private constructor(
    private readonly server: Server,
    readonly issuer: string,
    /** By sub; tests change an account's groups or delete it (removed at the provider). */
    readonly accounts: Map<string, TestAccount>,
    /** Redirect URIs allowed besides the loopback ones: a server's own callback, which a
     * test knows only once the server has its port (allowRedirect). */
    private readonly extraRedirects: Set<string> = new Set(),
  ) {}

  /** Lets the client be redirected to `uri` too (Petri's web sign-in callback on its API
   * host), as an operator registers it at their provider. */
  allowRedirect(uri: string): void {
    this.extraRedirects.add(uri);
  }

  static async start(accounts: TestAccount[]): Promise<TestOidcProvider> {
    let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
    const server = await listen((req, res) => handler(req, res));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const byId = new Map(accounts.map((a) => [a.sub, a]));
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          client_name: 'Petri',
          // native: loopback redirects are allowed on any port (RFC 8252 7.3).
          application_type: 'native',
          redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback'],
          grant_types: [
            'authorization_code',
            'refresh_token',
            'urn:ietf:params:oauth:grant-type:device_code',
          ],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      async findAccount(_ctx: unknown, id: string) {
        const account = byId.get(id);
        if (!account) return undefined;
        return {
          accountId: id,
          // Read at each use: a test's change of groups shows in the next refresh.
          async claims() {
            const now = byId.get(id) ?? account;
            return { ...now, sub: id };
          },
        };
      },
      claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['name'],
        groups: ['groups'],
      },
      scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
      features: {
        devInteractions: { enabled: true },
        deviceFlow: { enabled: true },
        revocation: { enabled: true },
      },
      pkce: { required: () => true },
      // A refresh token for every sign-in of the client (not only with prompt=consent).
      issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
        client.grantTypeAllowed('refresh_token'),
      jwks: {
        keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' }],
      },
      cookies: { keys: [randomBytes(16).toString('hex')] },
      ttl: {
        DeviceCode: 600,
        RefreshToken: 3600,
        AccessToken: 600,
        IdToken: 600,
        Interaction: 600,
        Session: 3600,
        Grant: 3600,
      },
    });
    // The provider's own complaints (a bad request the test made on purpose) stay quiet.
    provider.on('server_error', (_ctx: unknown, err: unknown) => console.error('oidc-provider:', err));
    // Poll every second (RFC 8628 lets the provider say; this one says nothing, meaning 5 s):
    // the device tests wait for the polls.
    provider.use(async (ctx: { path: string; body: unknown }, next: () => Promise<void>) => {
      await next();
      if (ctx.path === '/device/auth' && ctx.body && typeof ctx.body === 'object') {
        (ctx.body as { interval?: number }).interval = 1;
      }
    });
    // The client's registered redirect URIs are fixed at start; the web sign-in's callback is
    // on a port the test learns later, so the check also accepts what allowRedirect added.
    const extra = new Set<string>();
    const clientClass = (provider as unknown as { Client: { prototype: Record<string, unknown> } }).Client;
    const allowed = clientClass.prototype.redirectUriAllowed as (this: unknown, v: string) => boolean;
    clientClass.prototype.redirectUriAllowed = function (this: unknown, value: string): boolean {
      return extra.has(value) || allowed.call(this, value);
    };
    handler = provider.callback();
    return new TestOidcProvider(server, issuer, byId, extra);
  }

  setGroups(sub: string, groups: string[]): void {
    const account = this.accounts.get(sub);
    if (!account) throw new Error(`no account ${sub}`);
    this.accounts.set(sub, { ...account, groups });
  }

  /** The person is removed at the provider: their refresh tokens stop working. */
  remove(sub: string): void {
    this.accounts.delete(sub);
  }

  async stop(): Promise<void> {
    await close(this.server);
  }
}

interface Form {
  id: string | undefined;
  action: string;
  method: string;
  fields: Map<string, string>;
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}="([^"]*)"`, 'i').exec(tag);
  return m?.[1]?.replaceAll('&amp;', '&').replaceAll('&#x3D;', '=').replaceAll('&quot;', '"');
}

function forms(html: string): Form[] {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map((m) => {
    const tag = m[1] ?? '';
    const fields = new Map<string, string>();
    for (const input of (m[2] ?? '').matchAll(/<input\b[^>]*>/gi)) {
      const name = attr(input[0], 'name');
      if (name) fields.set(name, attr(input[0], 'value') ?? '');
    }
    return {
      id: attr(tag, 'id'),
      action: attr(tag, 'action') ?? '',
      method: (attr(tag, 'method') ?? 'get').toLowerCase(),
      fields,
    };
  });
}

/** A browser without a human: cookies, redirects, and the provider's forms filled in (the
 * login as `login`, consent given, the device code confirmed). */
export class TestBrowser {
  private readonly cookies = new Map<string, string>();
  /** Pages seen, for a failing test's message. */
  readonly visited: string[] = [];

  constructor(private readonly login: string) {}

  private async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    this.visited.push(`${init.method ?? 'GET'} ${url}`);
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0)
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair?.indexOf('=') ?? -1;
      if (pair && at > 0) this.cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
    return res;
  }

  /**
   * Opens `url` and goes on (redirects, login, consent, device confirmation) until a redirect
   * leaves for a URL `isEnd` accepts (answered, not followed) or a page has no form left
   * (answered as its text).
   */
  async run(url: string, isEnd: (url: URL) => boolean = () => false): Promise<{ url?: URL; page?: string }> {
    let next: { url: string; init?: RequestInit } = { url };
    for (let step = 0; step < 30; step++) {
      const res = await this.fetch(next.url, next.init);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        const target = new URL(location, next.url);
        if (isEnd(target)) return { url: target };
        next = { url: target.href };
        continue;
      }
      const page = await res.text();
      if (res.status >= 400) throw new Error(`${next.url} answered ${res.status}: ${page.slice(0, 500)}`);
      const form = this.pick(forms(page));
      if (!form) return { page };
      const action = new URL(form.action || next.url, next.url).href;
      const body = new URLSearchParams([...form.fields]);
      next =
        form.method === 'post'
          ? {
              url: action,
              init: {
                method: 'POST',
                headers: { 'content-type': 'application/x-www-form-urlencoded' },
                body: body.toString(),
              },
            }
          : { url: `${action}?${body}` };
    }
    throw new Error(`too many steps: ${this.visited.join(' -> ')}`);
  }

  private pick(found: Form[]): Form | undefined {
    for (const form of found) {
      if (form.fields.has('login')) {
        form.fields.set('login', this.login);
        form.fields.set('password', 'any password');
        return form;
      }
      if (form.fields.get('prompt') === 'consent') return form;
      // The device pages: the code (filled in from the link), its auto-submitted form, the
      // confirmation.
      if (form.fields.has('xsrf') && form.fields.get('user_code')) return form;
    }
    return undefined;
  }
}

/** Fills the device page's code in (as a user who read it off the terminal would). */
export function devicePage(verificationUri: string, userCode: string): string {
  const url = new URL(verificationUri);
  url.searchParams.set('user_code', userCode);
  return url.href;
}

export type HostileMode =
  | 'good'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'expired'
  | 'alg-none'
  | 'hs256'
  | 'foreign-key'
  | 'wrong-nonce'
  | 'no-email'
  | 'unverified-email';

/**
 * An issuer that answers the token endpoint with the ID token a test asks for, signed with
 * its published key (so only the claim checks can refuse it), with a key it never published,
 * with HMAC, or not at all. Its discovery document even lists 'none' among its algorithms.
 */
export class HostileIssuer {
  mode: HostileMode = 'good';
  /** The nonce the sign-in asked for (the test reads it off the authorize URL). */
  nonce = '';
  email = 'mallory@example.org';

  private constructor(
    private readonly server: Server,
    readonly issuer: string,
    private readonly key: KeyObject,
  ) {}

  static async start(): Promise<HostileIssuer> {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let self: HostileIssuer | undefined;
    const server = await listen((req, res) => self?.answer(req, res, publicKey));
    self = new HostileIssuer(
      server,
      `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      privateKey,
    );
    return self;
  }

  private answer(req: IncomingMessage, res: ServerResponse, publicKey: KeyObject): void {
    const json = (body: unknown): void => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '').split('?')[0];
    if (path === '/.well-known/openid-configuration') {
      json({
        issuer: this.issuer,
        authorization_endpoint: `${this.issuer}/auth`,
        token_endpoint: `${this.issuer}/token`,
        jwks_uri: `${this.issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256', 'HS256', 'none'],
        code_challenge_methods_supported: ['S256'],
        scopes_supported: ['openid', 'email', 'profile'],
      });
      return;
    }
    if (path === '/jwks') {
      json({
        keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'hostile', alg: 'RS256', use: 'sig' }],
      });
      return;
    }
    if (path === '/token' && req.method === 'POST') {
      req.resume();
      req.on('end', () =>
        json({
          access_token: 'hostile-access',
          refresh_token: 'hostile-refresh',
          token_type: 'Bearer',
          expires_in: 300,
          id_token: this.idToken(),
        }),
      );
      return;
    }
    res.statusCode = 404;
    res.end();
  }

  private idToken(): string {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: this.issuer,
      aud: CLIENT_ID,
      sub: 'mallory',
      email: this.email,
      email_verified: true,
      iat: now,
      exp: now + 300,
      nonce: this.nonce,
    };
    let alg = 'RS256';
    let key: KeyObject | Buffer = this.key;
    switch (this.mode) {
      case 'wrong-issuer':
        claims.iss = 'https://sso.evil.example';
        break;
      case 'wrong-audience':
        claims.aud = 'another-client';
        break;
      case 'expired':
        claims.iat = now - 7200;
        claims.exp = now - 3600;
        break;
      case 'wrong-nonce':
        claims.nonce = 'not-the-nonce';
        break;
      case 'no-email':
        delete claims.email;
        break;
      case 'unverified-email':
        claims.email_verified = false;
        break;
      case 'alg-none':
        alg = 'none';
        break;
      case 'hs256':
        alg = 'HS256';
        key = Buffer.from(CLIENT_SECRET);
        break;
      case 'foreign-key':
        key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
        break;
      case 'good':
        break;
    }
    return signJwt({ alg, kid: 'hostile', typ: 'JWT' }, claims, key);
  }

  async stop(): Promise<void> {
    await close(this.server);
  }
}

function signJwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key: KeyObject | Buffer,
): string {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${b64(header)}.${b64(claims)}`;
  if (header.alg === 'none') return `${input}.`;
  if (Buffer.isBuffer(key)) {
    return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
  }
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

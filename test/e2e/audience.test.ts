// Audiences end to end (issue 15), through the real HAProxy in front of a real app: an
// anonymous visitor of a staff app is sent to the gate; signing in with single sign-on (the
// test OIDC provider, through the API host's /login) and consenting lets them reach the app,
// which is told who they are in X-Petri-User; an invite link works once per person and not
// after it is revoked; an invitee taken off the list is locked out at their next request.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { CLIENT_ID, CLIENT_SECRET, TestBrowser, TestOidcProvider } from '../identity/oidc-provider.js';
import { TestPetri, writeApp } from './petri.js';

/** The app: answers who the router says its visitor is. */
const WHO = {
  'package.json': JSON.stringify({ name: 'who', private: true, scripts: { start: 'node server.js' } }),
  'server.js': `require('node:http').createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ user: req.headers['x-petri-user'] ?? null, name: req.headers['x-petri-user-name'] ?? null, path: req.url }));
}).listen(Number(process.env.PORT));
`,
};

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  url: URL;
}

/**
 * A browser for *.petri.localhost through the router: its own cookies per host, redirects
 * followed (a page is where it stops), the provider's pages filled in by TestBrowser.
 */
class Visitor {
  private readonly jar = new Map<string, Map<string, string>>();

  constructor(
    private readonly petri: TestPetri,
    private readonly issuer: string,
    private readonly login?: string,
  ) {}

  request(url: URL, method = 'GET', body?: string, headers: Record<string, string> = {}): Promise<Answer> {
    const cookies = this.jar.get(url.host);
    const cookie = cookies ? [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') : '';
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.petri.httpPort,
          path: `${url.pathname}${url.search}`,
          method,
          headers: {
            host: url.host,
            connection: 'close',
            ...(cookie ? { cookie } : {}),
            ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
            ...headers,
          },
          agent: false,
        },
        (res) => {
          for (const line of res.headers['set-cookie'] ?? []) {
            const [pair = '', ...attrs] = line.split(';');
            const at = pair.indexOf('=');
            const jar = this.jar.get(url.host) ?? new Map<string, string>();
            this.jar.set(url.host, jar);
            const gone = attrs.some((a) => a.trim().toLowerCase() === 'max-age=0');
            if (gone) jar.delete(pair.slice(0, at).trim());
            else jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
          }
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, url }),
          );
          res.on('error', reject);
        },
      );
      req.setTimeout(15_000, () => req.destroy(new Error(`request to ${url.href} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Opens `url` and follows redirects (into and out of the provider) until a page answers. */
  async open(href: string, method = 'GET', body?: string): Promise<Answer> {
    let url = new URL(href);
    let res = await this.request(url, method, body);
    for (let step = 0; step < 20; step++) {
      const location = res.headers.location;
      if (res.status < 300 || res.status >= 400 || !location) return res;
      url = new URL(location, url);
      if (url.origin === this.issuer) {
        if (!this.login) throw new Error('this visitor has no account at the provider');
        const end = await new TestBrowser(this.login).run(
          url.href,
          (u) => u.pathname === '/login/oidc/callback',
        );
        if (!end.url)
          throw new Error(`the provider did not send the browser back: ${end.page?.slice(0, 300)}`);
        url = end.url;
      }
      res = await this.request(url);
    }
    throw new Error(`too many redirects from ${href}`);
  }

  /** Answers the notice page `notice` (Continue), as a click on its button. */
  consent(notice: Answer): Promise<Answer> {
    const csrf = /name="csrf" value="([^"]+)"/.exec(notice.body)?.[1];
    const next = /name="next" value="([^"]*)"/.exec(notice.body)?.[1] ?? '/';
    assert.ok(csrf, `not a notice: ${notice.body.slice(0, 300)}`);
    const form = new URLSearchParams({ csrf, next: next.replaceAll('&#38;', '&'), choice: 'continue' });
    return this.open(new URL('/.petri/consent', notice.url).href, 'POST', form.toString());
  }
}

describe('audiences through the router', () => {
  let petri: TestPetri;
  let provider: TestOidcProvider;
  let app: (path?: string) => string;

  const cli = async (...argv: string[]) => {
    const res = await petri.cli(argv);
    assert.equal(res.code, 0, `${argv.join(' ')}: ${res.stderr}`);
    return res.stdout;
  };
  const visitor = (login?: string) => new Visitor(petri, provider.issuer, login);
  const whoIs = (res: Answer) => {
    assert.equal(res.status, 200, `${res.url.href}: ${res.status} ${res.body.slice(0, 300)}`);
    return JSON.parse(res.body) as { user: string | null; name: string | null; path: string };
  };

  before(async () => {
    provider = await TestOidcProvider.start([
      { sub: 'sam', email: 'sam@example.org', email_verified: true, name: 'Sam Staff', groups: ['staff'] },
      { sub: 'ivy', email: 'ivy@example.org', email_verified: true, name: 'Ivy', groups: ['staff'] },
    ]);
    petri = await TestPetri.start({
      identity: {
        oidc: {
          issuer: provider.issuer,
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          allowedGroups: ['staff'],
        },
      },
    });
    provider.allowRedirect(`http://petri.localhost:${petri.httpPort}/login/oidc/callback`);
    app = (path = '/') => `http://who.petri.localhost:${petri.httpPort}${path}`;
    await cli('apps', 'create', 'who');
    await cli('deploy', writeApp(WHO), '--app', 'who');
    await cli('audience', 'set', 'staff', '--app', 'who');
  });
  after(async () => {
    await petri?.destroy();
    await provider?.stop();
  });

  test('an anonymous visitor of a staff app is sent to the gate, never to the app', async () => {
    const res = await until(
      async () => {
        const r = await petri.request('who.petri.localhost', '/orders?id=7');
        return r.status === 302 ? r : undefined;
      },
      { timeout: 15_000, message: 'the router to gate who' },
    );
    assert.equal(res.headers.location, '/.petri/gate?next=%2Forders%3Fid%3D7');
    assert.doesNotMatch(res.body, /"user"/);
  });

  test('signing in with single sign-on and consenting: the app answers, told who the visitor is', async () => {
    const sam = visitor('sam');
    const login = await sam.open(app('/orders?id=7'));
    assert.equal(login.status, 200);
    assert.equal(login.url.host, `petri.localhost:${petri.httpPort}`);
    assert.equal(login.url.pathname, '/login');
    assert.match(login.body, /continue to the experiment <strong>who<\/strong>/);
    const sso = /href="(\/login\/oidc[^"]*)"/.exec(login.body)?.[1]?.replaceAll('&#38;', '&');
    assert.ok(sso);
    const notice = await sam.open(new URL(sso, login.url).href);
    assert.equal(notice.status, 200, notice.body);
    assert.equal(notice.url.host, `who.petri.localhost:${petri.httpPort}`);
    assert.match(notice.body, /<strong>sam@example.org<\/strong> agreed/);
    const through = whoIs(await sam.consent(notice));
    // The account's name: a person who signs in with single sign-on is named by their e-mail.
    assert.deepEqual(through, { user: 'sam@example.org', name: 'sam@example.org', path: '/orders?id=7' });
    // A header the client sends never reaches the app as the router's.
    const forged = await sam.request(new URL(app('/')), 'GET', undefined, {
      'x-petri-user': 'root@example.org',
    });
    assert.equal(whoIs(forged).user, 'sam@example.org');
  });

  test('an invite link works once per person, and not after it is revoked', async () => {
    await cli('audience', 'set', 'invite', '--app', 'who');
    const once = (await cli('audience', 'links', 'create', '--uses', '1', '--app', 'who')).trim();
    assert.match(once, /^http:\/\/who\.petri\.localhost:\d+\/\.petri\/join\/[A-Za-z0-9_-]+$/);
    const ann = visitor();
    const notice = await ann.open(once);
    assert.equal(notice.status, 200, notice.body);
    const through = whoIs(await ann.consent(notice));
    assert.match(through.user ?? '', /^invite:\d+$/);
    const ben = visitor();
    const used = await ben.open(once);
    assert.equal(used.status, 403);
    assert.match(used.body, /used as many times as it may/);

    const shared = (await cli('audience', 'links', 'create', '--uses', '5', '--app', 'who')).trim();
    const cat = visitor();
    whoIs(await cat.consent(await cat.open(shared)));
    const list = JSON.parse(await cli('audience', 'links', '--json', '--app', 'who')) as Array<{
      id: number;
      state: string;
      usesLeft: number;
    }>;
    const live = list.find((l) => l.usesLeft === 4);
    assert.ok(live);
    await cli('audience', 'links', 'revoke', String(live.id), '--app', 'who');
    await until(async () => (await cat.request(new URL(app('/')))).status === 302, {
      timeout: 15_000,
      message: "the revoked link's visitor to be sent to the gate",
    });
    const dan = visitor();
    const revoked = await dan.open(shared);
    assert.equal(revoked.status, 403);
    assert.match(revoked.body, /revoked/);
  });

  test('an invitee taken off the list is locked out at their next request', async () => {
    await cli('audience', 'invite', 'ivy@example.org', '--app', 'who');
    const ivy = visitor('ivy');
    const login = await ivy.open(app('/'));
    const sso = /href="(\/login\/oidc[^"]*)"/.exec(login.body)?.[1]?.replaceAll('&#38;', '&');
    assert.ok(sso, login.body);
    const notice = await ivy.open(new URL(sso, login.url).href);
    assert.equal(whoIs(await ivy.consent(notice)).user, 'ivy@example.org');
    assert.equal(whoIs(await ivy.request(new URL(app('/again')))).path, '/again');
    await cli('audience', 'remove', 'ivy@example.org', '--app', 'who');
    await until(async () => (await ivy.request(new URL(app('/again')))).status === 302, {
      timeout: 15_000,
      message: 'the removed invitee to be sent to the gate',
    });
    // Signed in still, but no longer let in: the API host says why.
    const refused = await ivy.open(app('/'));
    assert.equal(refused.status, 403);
    assert.match(refused.body, /is for invited people/);
  });
});

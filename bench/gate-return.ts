// Issue 15: a returning visitor of a gated app whose 12-hour gate cookie ran out but whose web
// session on the API host lives: the time from their first request to the app's answer,
// through the router (the app's 302 to its gate, the gate's 303 to the API host's
// /gate/sso, its ticket back to the app host's /.petri/sso, the gate cookie set there and
// the redirect to the page asked for, and the app's answer): five requests, no page shown.
// Target p50 < 150 ms. A real `petri server` (as the e2e tests start it), a real app, a
// browser-like client with keep-alive connections to the router. Figures only, never asserts.
// `node --import tsx bench/gate-return.ts`, or `BENCH=gate-return npm run bench`.
import http from 'node:http';
import { until } from '../src/lib/until.js';
import { TestPetri, writeApp } from '../test/e2e/petri.js';
import { percentile } from './common.js';

const ROUNDS = Number(process.env.GATE_RETURN_ROUNDS ?? 100);
const PASSWORD = 'bench password 0123456789';

interface Answer {
  status: number;
  location?: string;
  cookies: string[];
  body: string;
}

export async function gateReturn(): Promise<void> {
  const petri = await TestPetri.start({ logLevel: 'error', identity: { adminEmail: 'admin@example.org' } });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const jar = new Map<string, Map<string, string>>();
  const send = (url: URL, method = 'GET', body?: string, headers: Record<string, string> = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const cookies = jar.get(url.host);
      const req = http.request(
        {
          host: '127.0.0.1',
          port: petri.httpPort,
          path: `${url.pathname}${url.search}`,
          method,
          agent,
          headers: {
            host: url.host,
            ...(cookies?.size ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}),
            ...headers,
          },
        },
        (res) => {
          const set = res.headers['set-cookie'] ?? [];
          for (const line of set) {
            const [pair = ''] = line.split(';');
            const at = pair.indexOf('=');
            const forHost = jar.get(url.host) ?? new Map<string, string>();
            jar.set(url.host, forHost);
            if (/max-age=0/i.test(line)) forHost.delete(pair.slice(0, at));
            else forHost.set(pair.slice(0, at), pair.slice(at + 1));
          }
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              ...(res.headers.location ? { location: res.headers.location } : {}),
              cookies: set,
              body: text,
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  /** Follows redirects from `href`; answers the last answer and how many requests it took. */
  const open = async (href: string): Promise<{ answer: Answer; requests: number }> => {
    let url = new URL(href);
    let answer = await send(url);
    let requests = 1;
    while (answer.status >= 300 && answer.status < 400 && answer.location) {
      url = new URL(answer.location, url);
      answer = await send(url);
      requests++;
    }
    return { answer: { ...answer, body: answer.body }, requests };
  };
  try {
    const cli = async (...argv: string[]) => {
      const res = await petri.cli(argv);
      if (res.code !== 0) throw new Error(`${argv.join(' ')}: ${res.stderr}`);
    };
    await cli('apps', 'create', 'lab');
    await cli(
      'deploy',
      writeApp({
        'package.json': JSON.stringify({ name: 'lab', scripts: { start: 'node server.js' } }),
        'server.js': `require('node:http').createServer((q, s) => s.end('hello ' + q.headers['x-petri-user'])).listen(Number(process.env.PORT));`,
      }),
      '--app',
      'lab',
    );
    await cli('audience', 'set', 'staff', '--app', 'lab');
    await until(async () => (await petri.request('lab.petri.localhost', '/')).status === 302, {
      timeout: 15_000,
      message: 'the router to gate lab',
    });
    // The admin's first password, then a web session through the router's API host.
    const changed = await fetch(`${petri.apiUrl}/v1/auth/password/change`, {
      method: 'POST',
      headers: { authorization: `Bearer ${petri.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ current: '', new: PASSWORD }),
    });
    if (!changed.ok) throw new Error(`password: ${changed.status} ${await changed.text()}`);
    const apiHost = `http://petri.localhost:${petri.httpPort}`;
    const signedIn = await send(
      new URL('/login/password', apiHost),
      'POST',
      new URLSearchParams({ login: 'admin@example.org', password: PASSWORD }).toString(),
      { 'content-type': 'application/x-www-form-urlencoded' },
    );
    if (signedIn.status !== 303)
      throw new Error(`sign-in: ${signedIn.status} ${signedIn.body.slice(0, 200)}`);
    // The first visit: the notice, answered once.
    const appUrl = `http://lab.petri.localhost:${petri.httpPort}`;
    const first = await open(`${appUrl}/`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(first.answer.body)?.[1];
    if (!csrf) throw new Error(`no notice: ${first.answer.status} ${first.answer.body.slice(0, 200)}`);
    const consented = await send(
      new URL('/.petri/consent', appUrl),
      'POST',
      new URLSearchParams({ csrf, next: '/', choice: 'continue' }).toString(),
      { 'content-type': 'application/x-www-form-urlencoded' },
    );
    if (consented.status !== 303) throw new Error(`consent: ${consented.status}`);

    const times: number[] = [];
    let hops = 0;
    for (let i = 0; i < ROUNDS + 5; i++) {
      // The gate cookie ran out: the browser no longer sends it; the web session lives.
      jar.get(`lab.petri.localhost:${petri.httpPort}`)?.delete('petri_gate');
      const started = performance.now();
      const { answer, requests } = await open(`${appUrl}/page?n=${i}`);
      const ms = performance.now() - started;
      if (answer.status !== 200 || !answer.body.startsWith('hello admin@example.org')) {
        throw new Error(`round ${i}: ${answer.status} ${answer.body.slice(0, 200)}`);
      }
      if (i >= 5) times.push(ms); // the first few warm the connections and the JIT
      hops = requests;
    }
    console.log(
      `gate-return: returning visitor, expired gate cookie, live web session, through the router (${hops} requests, no page): ` +
        `p50 ${percentile(times, 50).toFixed(1)} ms, p95 ${percentile(times, 95).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms over ${ROUNDS} (target p50 < 150 ms)`,
    );
  } finally {
    agent.destroy();
    await petri.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await gateReturn();

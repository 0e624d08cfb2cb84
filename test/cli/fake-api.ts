// A fake Petri API on loopback for the CLI's unit tests: the routes and error bodies of
// the API contract with canned apps, and a record of every request so a test can check
// what the CLI asked for (and what it did not).
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App, Deploy } from '../../src/client/index.js';

export const TOKEN = 'secret-token';

export interface Recorded {
  method: string;
  url: string;
  authorization: string | undefined;
  contentType: string | undefined;
  body: Buffer;
}

export interface FakeApi {
  url: string;
  apps: Map<string, App>;
  deploys: Map<string, Deploy>;
  requests: Recorded[];
  /** When set, the next deploys fail with this error. */
  deployError: string | undefined;
  /** Awaited after the first build line of a deploy stream: lets a test see it arrive live. */
  holdStream: (() => Promise<unknown>) | undefined;
  /** Cut the deploy stream after its first line, with the deploy finished or still building. */
  dropStream: 'finished' | 'building' | undefined;
  logLines: { time: string; source: string; text: string }[];
  close(): Promise<void>;
}

export function cannedApps(): App[] {
  return [
    {
      name: 'alpha',
      url: 'http://alpha.petri.localhost:8080',
      owner: 'admin',
      createdAt: '2025-01-02T03:04:05.678Z',
      status: 'running',
      release: 'v3',
      limits: { memoryMiB: 256, cpus: 0.5, pids: 128 },
      processes: [
        { name: 'web.1', state: 'up', port: 40001, startedAt: '2025-01-02T03:05:00.000Z', restarts: 0 },
        { name: 'web.2', state: 'crashed', port: null, startedAt: null, restarts: 12 },
      ],
    },
    {
      name: 'beta-experiment',
      url: 'http://beta-experiment.petri.localhost:8080',
      owner: 'admin',
      createdAt: '2025-01-03T00:00:00.000Z',
      status: 'new',
      release: null,
      limits: { memoryMiB: 512, cpus: 1, pids: 256 },
      processes: [],
    },
  ];
}

export async function startFakeApi(): Promise<FakeApi> {
  const fake: FakeApi = {
    url: '',
    apps: new Map(cannedApps().map((app) => [app.name, app])),
    deploys: new Map(),
    requests: [],
    deployError: undefined,
    holdStream: undefined,
    dropStream: undefined,
    logLines: [
      { time: '2025-01-02T03:05:01.123Z', source: 'web.1', text: 'listening on 40001' },
      { time: '2025-01-02T03:05:02.456Z', source: 'router', text: 'GET / 200 3ms' },
    ],
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      fake.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
      });
      handle(fake, req, res, body).catch((err: Error) => {
        if (!res.headersSent) send(res, 500, { error: { code: 'internal', message: err.message } });
        else res.destroy();
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return fake;
}

function send(res: http.ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function fail(res: http.ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { error: { code, message } });
}

async function handle(fake: FakeApi, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
  const url = new URL(req.url ?? '/', 'http://fake');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const method = req.method;
  if (parts[0] !== 'v1') return fail(res, 404, 'not_found', `no route ${url.pathname}`);
  if (req.headers.authorization !== `Bearer ${TOKEN}`) {
    return fail(res, 401, 'unauthorized', "invalid token: log in again with 'petri login'");
  }
  const [, resource, name, sub, id, tail] = parts;

  if (resource === 'whoami' && method === 'GET')
    return send(res, 200, { user: { name: 'admin', role: 'admin' } });
  if (resource !== 'apps') return fail(res, 404, 'not_found', `no route ${url.pathname}`);

  if (name === undefined) {
    if (method === 'GET') return send(res, 200, { apps: [...fake.apps.values()] });
    if (method === 'POST') {
      const { name: newName } = JSON.parse(body.toString()) as { name: string };
      if (!/^[a-z][a-z0-9-]{1,29}$/.test(newName)) {
        return fail(res, 400, 'bad_request', `app name must match ^[a-z][a-z0-9-]{1,29}$, got '${newName}'`);
      }
      if (fake.apps.has(newName)) return fail(res, 409, 'conflict', `app '${newName}' already exists`);
      const app: App = {
        ...cannedApps()[1]!,
        name: newName,
        url: `http://${newName}.petri.localhost:8080`,
        createdAt: '2025-02-01T00:00:00.000Z',
      };
      fake.apps.set(newName, app);
      return send(res, 201, app);
    }
  }

  const app = name === undefined ? undefined : fake.apps.get(name);
  if (!app) return fail(res, 404, 'not_found', `app '${name}' not found; list your apps with 'petri apps'`);

  if (sub === undefined) {
    if (method === 'GET') return send(res, 200, app);
    if (method === 'PATCH') {
      const update = JSON.parse(body.toString()) as { limits?: Partial<App['limits']> };
      app.limits = { ...app.limits, ...update.limits };
      return send(res, 200, app);
    }
    if (method === 'DELETE') {
      if (url.searchParams.get('confirm') !== app.name) {
        return fail(res, 400, 'bad_request', `pass confirm=${app.name} to delete '${app.name}'`);
      }
      fake.apps.delete(app.name);
      return send(res, 204);
    }
  }

  if (sub === 'deploys' && id === undefined && method === 'POST') {
    // A gzip stream starts with 1f 8b: enough to tell an archive from anything else here.
    if (body[0] !== 0x1f || body[1] !== 0x8b)
      return fail(res, 400, 'invalid_archive', 'the upload is not a gzip tar');
    const deploy: Deploy = {
      id: `d${fake.deploys.size + 1}`,
      app: app.name,
      status: 'building',
      release: null,
      error: null,
      createdAt: '2025-01-02T03:04:05.000Z',
      finishedAt: null,
      durationMs: null,
      url: app.url,
    };
    fake.deploys.set(deploy.id, deploy);
    return send(res, 202, { deploy });
  }

  if (sub === 'deploys' && id !== undefined && method === 'GET') {
    const deploy = fake.deploys.get(id);
    if (!deploy) return fail(res, 404, 'not_found', `deploy '${id}' not found`);
    if (tail === undefined) return send(res, 200, { deploy });
    if (tail === 'stream') return streamDeploy(fake, res, deploy);
  }

  if (sub === 'logs' && method === 'GET') {
    const lines = Number(url.searchParams.get('lines') ?? '100');
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const line of fake.logLines.slice(-lines)) res.write(`${JSON.stringify(line)}\n`);
    if (url.searchParams.get('follow') === 'true') {
      // Following: one more line a moment later, then the server goes away (as on a restart).
      await new Promise((resolve) => setTimeout(resolve, 50));
      res.write(
        `${JSON.stringify({ time: '2025-01-02T03:06:00.000Z', source: 'web.1', text: 'later line' })}\n`,
      );
    }
    res.end();
    return;
  }

  return fail(res, 404, 'not_found', `no route ${method} ${url.pathname}`);
}

async function streamDeploy(fake: FakeApi, res: http.ServerResponse, deploy: Deploy): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  const log = (source: string, text: string) =>
    res.write(`${JSON.stringify({ type: 'log', time: '2025-01-02T03:04:06.000Z', source, text })}\n`);
  log('build', 'Detected a Node.js app (package.json)');
  await fake.holdStream?.();
  if (fake.dropStream) {
    if (fake.dropStream === 'finished')
      Object.assign(deploy, { status: 'succeeded', release: 'v5', durationMs: 2000 });
    res.destroy(); // as a server restart or a proxy timeout would
    return;
  }
  log('build', 'npm ci: added 12 packages in 1s');
  if (fake.deployError) {
    log('build', 'npm run build exited with code 1');
    Object.assign(deploy, { status: 'failed', error: fake.deployError });
  } else {
    log('release', 'starting web.1; waiting for it to answer on its port');
    Object.assign(deploy, { status: 'succeeded', release: 'v4' });
  }
  Object.assign(deploy, { finishedAt: '2025-01-02T03:04:06.400Z', durationMs: 1400 });
  // Split the last event across two writes: the CLI must not assume a line per chunk.
  const end = JSON.stringify({ type: 'end', deploy });
  res.write(end.slice(0, 10));
  await new Promise((resolve) => setTimeout(resolve, 10));
  res.end(`${end.slice(10)}\n`);
}

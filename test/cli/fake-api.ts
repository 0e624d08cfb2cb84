// A fake Petri API on loopback for the CLI's unit tests: the routes and error bodies of
// the API contract with canned apps, and a record of every request so a test can check
// what the CLI asked for (and what it did not). New releases (config changes, rollbacks)
// stay pending for POLLS_TO_SETTLE polls of the release, as the server's would while it starts;
// a woken app stays asleep for `wakePolls` polls of the app, then runs (or crashes: `wakeTo`).
// Every answer and every JSON request body is checked against the real OpenAPI document
// (contract.ts): a breach is answered 500 (or 400, as the server would refuse the request),
// recorded in `violations`, and makes close() throw, so the test fails.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import type {
  Addon,
  AddonBackup,
  App,
  AppProcess,
  ConfigChange,
  ConfigVars,
  Deploy,
  Formation,
  Process,
  ProcessList,
  Release,
} from '../../src/client/index.js';
import { ContractChecker } from './contract.js';
import { handleAudit } from './fake-audit.js';
import { describeFake, handleExperiment, handlePlatform } from './fake-experiments.js';
import { handleMetrics } from './fake-metrics.js';
import { handleTeams, teamForNewApp, transferApp } from './fake-teams.js';

export const TOKEN = 'secret-token';
export const POLLS_TO_SETTLE = 2;
/** When the fake's apps go to sleep (a fixed time, for golden files). */
export const SLEPT_AT = '2025-01-05T06:07:08.000Z';

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
  config: Map<string, ConfigVars>;
  /** Per app, newest first. */
  releases: Map<string, Release[]>;
  processes: Map<string, ProcessList>;
  /** When set, the next new releases fail with this error once they settle. */
  releaseError: string | undefined;
  /** Per app, its add-ons by name. */
  addons: Map<string, Addon[]>;
  /** The add-on types the server offers. */
  addonTypes: string[];
  /** Every add-on backup, newest first, destroyed apps' and add-ons' included. */
  backups: AddonBackup[];
  /** The dump of each backup, by id (b1 ...). */
  dumps: Map<string, Buffer>;
  /** The first message of each `petri run` session (the WebSocket route), with its app. */
  runs: { app: string; request: { command: string[] | string; tty: boolean } }[];
  /** The exit code those sessions end with, after writing RUN_OUTPUT. */
  runExitCode: number;
  /** How many polls of a woken app still find it asleep before it wakes. */
  wakePolls: number;
  /** What a woken app reads as until it wakes: still sleeping, or down (awake, nothing up yet). */
  wakingAs: 'sleeping' | 'down';
  /** What a woken app ends as: running with every process of its formation up, or crashed. */
  wakeTo: 'running' | 'crashed';
  /** Apps woken and not yet awake, with how many times they were polled since. */
  waking: Map<string, number>;
  /** Where the fake's answers (or the CLI's requests) broke the API contract. */
  violations: string[];
  /** Throws when any answer or request broke the contract. */
  close(): Promise<void>;
}

export const RUN_OUTPUT = 'psql (16.4)\n';

export function cannedApps(): App[] {
  return [
    {
      name: 'alpha',
      url: 'http://alpha.petri.localhost:8080',
      owner: 'admin',
      team: 'admin',
      createdAt: '2025-01-02T03:04:05.678Z',
      status: 'running',
      release: 'v3',
      sleepingSince: null,
      limits: { memoryMiB: 256, cpus: 0.5, pids: 128, diskMiB: 2048 },
      settings: { bootTimeoutSeconds: 60, idleTimeoutSeconds: 1800 },
      processes: [
        {
          name: 'web.1',
          release: 'v3',
          state: 'up',
          port: 40001,
          startedAt: '2025-01-02T03:05:00.000Z',
          restarts: 0,
          lastExit: null,
        },
        {
          name: 'web.2',
          release: 'v3',
          state: 'crashed',
          port: null,
          startedAt: null,
          restarts: 12,
          lastExit: 'exited with code 1 at 2025-01-02T05:06:10Z',
        },
      ],
      experiment: cannedExperiment({
        description: 'A/B test of the checkout page',
        dataClass: 'personal',
        privacyNote: 'e-mail addresses of testers, to ask them about it',
        retentionDays: 30,
        approvedClass: 'personal',
        expiresAt: '2025-04-02T03:04:05.678Z',
      }),
    },
    {
      name: 'beta-experiment',
      url: 'http://beta-experiment.petri.localhost:8080',
      owner: 'admin',
      team: 'admin',
      createdAt: '2025-01-03T00:00:00.000Z',
      status: 'new',
      release: null,
      sleepingSince: null,
      limits: { memoryMiB: 512, cpus: 1, pids: 256, diskMiB: 1024 },
      settings: { bootTimeoutSeconds: 60, idleTimeoutSeconds: null },
      processes: [],
      experiment: cannedExperiment({ expiresAt: '2025-04-03T00:00:00.000Z' }),
    },
  ];
}

/** The experiment side of a canned app: no data, an experiment, what `over` changes. */
export function cannedExperiment(over: Partial<App['experiment']> = {}): App['experiment'] {
  return {
    description: '',
    dataClass: 'none',
    privacyNote: null,
    retentionDays: null,
    approvedClass: null,
    awaitsReview: false,
    stage: 'experiment',
    expiresAt: null,
    expiredAt: null,
    archivedAt: null,
    redirectUrl: null,
    ...over,
  };
}

/** blog has slept since SLEPT_AT: no processes, its formation kept. Not among the canned apps;
 * a test adds it with addApp. */
export function cannedSleepingApp(): { app: App; processes: ProcessList } {
  return {
    app: {
      name: 'blog',
      url: 'http://blog.petri.localhost:8080',
      owner: 'ana',
      team: 'ana',
      createdAt: '2025-01-04T09:00:00.000Z',
      status: 'sleeping',
      release: 'v7',
      sleepingSince: SLEPT_AT,
      limits: { memoryMiB: 256, cpus: 0.5, pids: 128, diskMiB: 1024 },
      settings: { bootTimeoutSeconds: 60, idleTimeoutSeconds: 900 },
      processes: [],
      experiment: cannedExperiment({ description: 'notes', expiresAt: '2025-04-04T09:00:00.000Z' }),
    },
    processes: { formation: { web: 1 }, processes: [], sleepingSince: SLEPT_AT },
  };
}

/** Adds an app with its processes, and no config, releases or add-ons. */
export function addApp(fake: FakeApi, app: App, processes: ProcessList): void {
  fake.apps.set(app.name, app);
  fake.processes.set(app.name, processes);
  fake.config.set(app.name, {});
  fake.releases.set(app.name, []);
  fake.addons.set(app.name, []);
}

/** Times are relative to now, so `petri releases` reads "3 minutes ago" in its golden file. */
export function cannedReleases(now: number): Release[] {
  const ago = (ms: number) => new Date(now - ms).toISOString();
  const release = (r: Partial<Release> & Pick<Release, 'version' | 'kind' | 'description'>): Release => ({
    status: 'succeeded',
    current: false,
    error: null,
    createdBy: 'admin',
    createdAt: ago(0),
    ...r,
  });
  return [
    release({
      version: 'v4',
      kind: 'config',
      description: 'Set NODE_OPTIONS',
      status: 'failed',
      error: 'release failed: web.1 exited with code 9 before listening on its port; v3 keeps serving',
      createdAt: ago(65_000),
    }),
    release({
      version: 'v3',
      kind: 'deploy',
      description: 'Deploy d3a9f',
      current: true,
      createdAt: ago(200_000),
    }),
    release({
      version: 'v2',
      kind: 'config',
      description: 'Set DATABASE_URL, SECRET_KEY',
      createdBy: 'ana',
      createdAt: ago(2 * 3600_000 + 60_000),
    }),
    release({ version: 'v1', kind: 'deploy', description: 'Deploy d1b2c', createdAt: ago(2 * 86400_000) }),
  ];
}

export function cannedProcesses(): ProcessList {
  const base = {
    release: 'v3',
    startedAt: null,
    uptimeSeconds: null,
    restarts: 0,
    memoryBytes: null,
    cpuSeconds: null,
    port: null,
    address: null,
    lastExit: null,
    lastLines: [],
  };
  return {
    formation: { web: 2, worker: 1 },
    sleepingSince: null,
    processes: [
      {
        ...base,
        name: 'web.1',
        type: 'web',
        state: 'up',
        startedAt: '2025-01-02T03:05:00.000Z',
        uptimeSeconds: 7384,
        memoryBytes: 134_742_016,
        cpuSeconds: 63.2,
        port: 40001,
        address: '10.213.0.2:40001',
      },
      {
        ...base,
        name: 'web.2',
        type: 'web',
        state: 'crashed',
        restarts: 12,
        lastExit: 'exited with code 1 at 2025-01-02T05:06:10Z',
        lastLines: [
          "Error: Cannot find module 'express'",
          '    at Module._resolveFilename (node:internal/modules/cjs/loader:1145:15)',
        ],
      },
      {
        ...base,
        name: 'worker.1',
        type: 'worker',
        state: 'starting',
        startedAt: '2025-01-02T05:08:00.000Z',
        uptimeSeconds: 4,
        restarts: 1,
        memoryBytes: 20_971_520,
        cpuSeconds: 0.45,
      },
    ],
  };
}

/** alpha has a ready postgres and a redis whose size the engine could not tell. */
export function cannedAddons(): Addon[] {
  return [
    {
      name: 'cache',
      app: 'alpha',
      type: 'redis',
      envVar: 'CACHE_URL',
      mode: 'managed',
      status: 'ready',
      rotating: false,
      createdAt: '2025-01-04T11:00:00.000Z',
      usage: { bytes: null, connections: null, error: 'redis did not answer within 3s' },
    },
    {
      name: 'postgres',
      app: 'alpha',
      type: 'postgres',
      envVar: 'DATABASE_URL',
      mode: 'managed',
      status: 'ready',
      rotating: false,
      createdAt: '2025-01-04T10:00:00.123Z',
      usage: { bytes: 12_897_485, connections: 3 },
    },
  ];
}

/** Newest first: a failed manual backup, a manual and a scheduled one of alpha's postgres,
 * and the final backup of an app that is gone (only admins' routes show it). */
export function cannedBackups(): AddonBackup[] {
  const base = {
    app: 'alpha',
    addon: 'postgres',
    type: 'postgres',
    error: null,
    expiresAt: null,
  };
  return [
    {
      ...base,
      id: 'b4',
      kind: 'manual',
      status: 'failed',
      sizeBytes: null,
      createdBy: 'ana',
      createdAt: '2025-01-06T09:00:00.000Z',
      finishedAt: '2025-01-06T09:00:02.000Z',
      error: 'pg_dump: error: connection to server lost',
    },
    {
      ...base,
      id: 'b3',
      app: 'gone',
      kind: 'final',
      status: 'succeeded',
      sizeBytes: 2048,
      createdBy: 'admin',
      createdAt: '2025-01-05T20:00:00.000Z',
      finishedAt: '2025-01-05T20:00:01.000Z',
      expiresAt: '2025-02-04T20:00:01.000Z',
    },
    {
      ...base,
      id: 'b2',
      kind: 'manual',
      status: 'succeeded',
      sizeBytes: DUMP_BYTES,
      createdBy: 'admin',
      createdAt: '2025-01-05T12:00:00.000Z',
      finishedAt: '2025-01-05T12:00:03.250Z',
    },
    {
      ...base,
      id: 'b1',
      kind: 'scheduled',
      status: 'succeeded',
      sizeBytes: 1000,
      createdBy: 'petri',
      createdAt: '2025-01-05T03:00:00.000Z',
      finishedAt: '2025-01-05T03:00:00.400Z',
      expiresAt: '2025-01-12T03:00:00.400Z',
    },
  ];
}

/** b2's dump: every byte value, over several chunks, so a download must keep them all. */
export const DUMP_BYTES = 300_000;

export function cannedDump(size: number, seed: number): Buffer {
  const dump = Buffer.alloc(size);
  for (let i = 0; i < size; i += 1) dump[i] = (i * 7 + seed) % 256;
  return dump;
}

export async function startFakeApi(): Promise<FakeApi> {
  const checker = await ContractChecker.load();
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
    config: new Map<string, ConfigVars>([
      [
        'alpha',
        {
          NODE_ENV: 'production',
          DATABASE_URL: 'postgres://alpha@db.internal:5432/alpha',
          GREETING: "it's $HOME; `rm -rf /`",
        },
      ],
      ['beta-experiment', {}],
    ]),
    releases: new Map<string, Release[]>([
      ['alpha', cannedReleases(Date.now())],
      ['beta-experiment', []],
    ]),
    processes: new Map<string, ProcessList>([
      ['alpha', cannedProcesses()],
      ['beta-experiment', { formation: {}, processes: [], sleepingSince: null }],
    ]),
    releaseError: undefined,
    addons: new Map([
      ['alpha', cannedAddons()],
      ['beta-experiment', []],
    ]),
    addonTypes: ['postgres', 'mysql', 'redis'],
    backups: cannedBackups(),
    dumps: new Map([
      ['b1', cannedDump(1000, 1)],
      ['b2', cannedDump(DUMP_BYTES, 2)],
      ['b3', cannedDump(2048, 3)],
    ]),
    runs: [],
    runExitCode: 0,
    wakePolls: 1,
    wakingAs: 'sleeping',
    wakeTo: 'running',
    waking: new Map(),
    violations: [],
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      contracts.set(res, {
        checker,
        violations: fake.violations,
        method: req.method ?? '',
        url: req.url ?? '',
      });
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
  fake.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (fake.violations.length > 0) {
      throw new Error(`the fake API broke the API contract:\n${fake.violations.join('\n')}`);
    }
  };
  acceptRuns(fake, server);
  return fake;
}

/** What each answer is checked against, by response. */
const contracts = new WeakMap<
  http.ServerResponse,
  { checker: ContractChecker; violations: string[]; method: string; url: string }
>();

/** Why this answer breaks the contract (recorded), or undefined. */
function breach(res: http.ServerResponse, status: number, type: string | undefined, body?: unknown) {
  const contract = contracts.get(res);
  const why = contract?.checker.checkAnswer(contract.method, contract.url, status, type, body);
  if (why) contract?.violations.push(why);
  return why;
}

function send(res: http.ServerResponse, status: number, body?: unknown): void {
  const why = breach(res, status, body === undefined ? undefined : 'application/json', body);
  if (why) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ error: { code: 'internal', message: `the fake API broke the contract: ${why}` } }),
    );
    return;
  }
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function fail(res: http.ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { error: { code, message } });
}

/** One line of an NDJSON answer, checked against the route's line schema. */
function ndjsonLine(res: http.ServerResponse, value: unknown): string {
  breach(res, 200, 'application/x-ndjson', value);
  return `${JSON.stringify(value)}\n`;
}

async function handle(fake: FakeApi, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
  const url = new URL(req.url ?? '/', 'http://fake');
  if (req.headers['content-type']?.startsWith('application/json') && body.length > 0) {
    const contract = contracts.get(res);
    const why = contract?.checker.checkRequest(req.method ?? '', req.url ?? '', JSON.parse(body.toString()));
    if (why) {
      // The server's validation would refuse it: so does the fake, and the test fails.
      fake.violations.push(why);
      return fail(res, 400, 'bad_request', `the server would refuse this: ${why}`);
    }
  }
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const method = req.method;
  if (parts[0] !== 'v1') return fail(res, 404, 'not_found', `no route ${url.pathname}`);
  if (req.headers.authorization !== `Bearer ${TOKEN}`) {
    return fail(res, 401, 'unauthorized', "invalid token: log in again with 'petri login'");
  }
  const [, resource, name, sub, id, tail] = parts;

  if (resource === 'whoami' && method === 'GET')
    return send(res, 200, {
      user: {
        name: 'admin',
        role: 'admin',
        email: null,
        kind: 'person',
        provider: 'local',
        teams: [{ name: 'admin', role: 'admin', personal: true }],
      },
      token: { id: 1, name: 'created at first start', kind: 'api', expiresAt: null },
    });
  if (resource === 'addon-backups') return handleAllBackups(fake, method, parts.slice(2), res);
  if (resource === 'addon-servers' && method === 'GET' && name === undefined)
    return send(res, 200, {
      servers: [
        {
          type: 'postgres',
          mode: 'managed',
          address: '127.0.0.1:40123',
          state: 'up',
          error: null,
          addons: 3,
        },
        {
          type: 'mysql',
          mode: 'external',
          address: '10.0.0.5:3306',
          state: 'down',
          error: 'it does not answer on 10.0.0.5:3306',
          addons: 1,
        },
        { type: 'redis', mode: 'managed', address: '127.0.0.1:40124', state: 'idle', error: null, addons: 0 },
      ],
    });
  if (resource === 'teams') return handleTeams(fake, method, parts.slice(2), body, res, { send, fail });
  if (resource === 'audit')
    return handleAudit(fake, method, parts.slice(2), url.searchParams, res, { send, fail });
  if ((resource === 'inventory' || resource === 'report') && method === 'GET' && name === undefined)
    return handlePlatform([...fake.apps.values()], resource, url.searchParams, res, { send, fail });
  if (resource !== 'apps') return fail(res, 404, 'not_found', `no route ${url.pathname}`);

  if (name === undefined) {
    if (method === 'GET') return send(res, 200, { apps: [...fake.apps.values()] });
    if (method === 'POST') {
      const {
        name: newName,
        team: wanted,
        ...describe
      } = JSON.parse(body.toString()) as { name: string; team?: string; data?: string };
      if (!/^[a-z][a-z0-9-]{1,29}$/.test(newName)) {
        return fail(res, 400, 'bad_request', `app name must match ^[a-z][a-z0-9-]{1,29}$, got '${newName}'`);
      }
      if (fake.apps.has(newName)) return fail(res, 409, 'conflict', `app '${newName}' already exists`);
      const team = teamForNewApp(fake, wanted, res, { send, fail });
      if (team === undefined) return;
      const app: App = {
        ...cannedApps()[1]!,
        team,
        name: newName,
        url: `http://${newName}.petri.localhost:8080`,
        createdAt: '2025-02-01T00:00:00.000Z',
      };
      const refused = describeFake(app, describe);
      if (refused) return fail(res, 400, 'bad_request', refused);
      fake.apps.set(newName, app);
      return send(res, 201, app);
    }
  }

  const app = name === undefined ? undefined : fake.apps.get(name);
  if (!app) return fail(res, 404, 'not_found', `app '${name}' not found; list your apps with 'petri apps'`);

  if (sub === 'experiment' || sub === 'approve')
    return handleExperiment(app, method, sub, body, res, { send, fail });

  if (sub === undefined) {
    if (method === 'GET') {
      pollWake(fake, app);
      return send(res, 200, app);
    }
    if (method === 'PATCH') {
      const update = JSON.parse(body.toString()) as {
        limits?: Partial<App['limits']>;
        settings?: Partial<App['settings']>;
      };
      app.limits = { ...app.limits, ...update.limits };
      app.settings = { ...app.settings, ...update.settings };
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
    for (const line of fake.logLines.slice(-lines)) res.write(ndjsonLine(res, line));
    if (url.searchParams.get('follow') === 'true') {
      // Following: one more line a moment later, then the server goes away (as on a restart).
      await new Promise((resolve) => setTimeout(resolve, 50));
      res.write(ndjsonLine(res, { time: '2025-01-02T03:06:00.000Z', source: 'web.1', text: 'later line' }));
    }
    res.end();
    return;
  }

  if (sub === 'config' || sub === 'releases' || sub === 'rollback') {
    const handled = handleReleases(fake, app, method, sub, id, body, res);
    if (handled) return;
  }

  if (sub === 'ps' && method === 'GET') return send(res, 200, fake.processes.get(app.name));

  if (sub === 'metrics') return handleMetrics(app, method, res, { send, fail });

  if (sub === 'transfer' && id === undefined && method === 'POST')
    return transferApp(fake, app, body, res, { send, fail });

  if (sub === 'addons') return handleAddons(fake, app, method, parts.slice(4), url, body, res);

  if (sub === 'formation' && method === 'PATCH') {
    const list = fake.processes.get(app.name)!;
    const wanted = JSON.parse(body.toString()) as Formation;
    for (const [type, count] of Object.entries(wanted)) {
      if (!(type in list.formation)) return unknownType(res, type, list.formation);
      if (!Number.isInteger(count) || count < 0 || count > 100) {
        return fail(res, 400, 'bad_request', `${type} must be a count from 0 to 100, got ${count}`);
      }
    }
    Object.assign(list.formation, wanted);
    return send(res, 200, { formation: list.formation });
  }

  if (sub === 'sleep' && id === undefined && method === 'POST') {
    const list = fake.processes.get(app.name)!;
    fake.waking.delete(app.name);
    Object.assign(app, { status: 'sleeping', sleepingSince: SLEPT_AT, processes: [] });
    Object.assign(list, { sleepingSince: SLEPT_AT, processes: [] });
    return send(res, 200, { app });
  }

  if (sub === 'wake' && id === undefined && method === 'POST') {
    // Answered at once: the processes start after the answer, as on the server.
    if (app.status === 'sleeping') {
      fake.waking.set(app.name, 0);
      if (fake.wakingAs === 'down') {
        Object.assign(app, { status: 'down', sleepingSince: null });
        fake.processes.get(app.name)!.sleepingSince = null;
      }
    }
    return send(res, 200, { app });
  }

  if (sub === 'restart' && method === 'POST') {
    const list = fake.processes.get(app.name)!;
    const { type } = JSON.parse(body.toString()) as { type?: string };
    if (type !== undefined && !(type in list.formation)) return unknownType(res, type, list.formation);
    const names = list.processes.filter((p) => type === undefined || p.type === type).map((p) => p.name);
    return send(res, 202, { restarting: names });
  }

  return fail(res, 404, 'not_found', `no route ${method} ${url.pathname}`);
}

/** A poll of a woken app: after `wakePolls` of them it wakes, as `wakeTo` says. */
function pollWake(fake: FakeApi, app: App): void {
  const polls = fake.waking.get(app.name);
  if (polls === undefined) return;
  if (polls < fake.wakePolls) {
    fake.waking.set(app.name, polls + 1);
    return;
  }
  fake.waking.delete(app.name);
  const list = fake.processes.get(app.name)!;
  const up = fake.wakeTo === 'running';
  const names = Object.entries(list.formation).flatMap(([type, count]) =>
    Array.from({ length: count }, (_, i) => ({ type, name: `${type}.${i + 1}` })),
  );
  app.processes = names.map(
    ({ name }, i): AppProcess => ({
      name,
      release: app.release ?? 'v1',
      state: up ? 'up' : 'crashed',
      port: up ? 40100 + i : null,
      startedAt: up ? '2025-01-05T07:00:00.000Z' : null,
      restarts: up ? 0 : 1,
      lastExit: up ? null : 'exited with code 1 at 2025-01-05T07:00:01Z',
    }),
  );
  list.processes = names.map(
    ({ type, name }, i): Process => ({
      name,
      type,
      release: app.release ?? 'v1',
      state: up ? 'up' : 'crashed',
      startedAt: up ? '2025-01-05T07:00:00.000Z' : null,
      uptimeSeconds: up ? 1 : null,
      restarts: up ? 0 : 1,
      memoryBytes: up ? 20_971_520 : null,
      cpuSeconds: up ? 0.2 : null,
      port: up ? 40100 + i : null,
      address: up ? `10.213.0.${2 + i}:${40100 + i}` : null,
      lastExit: up ? null : 'exited with code 1 at 2025-01-05T07:00:01Z',
      lastLines: up
        ? []
        : ['Error: connect ECONNREFUSED 127.0.0.1:5432', '    at TCPConnectWrap.afterConnect'],
    }),
  );
  app.status = up ? 'running' : 'crashed';
  app.sleepingSince = null;
  list.sleepingSince = null;
}

function unknownType(res: http.ServerResponse, type: string, formation: Formation): void {
  const types = Object.keys(formation).join(', ');
  fail(res, 400, 'bad_request', `unknown process type '${type}': the release has ${types}`);
}

// What each pending release does when it settles, by app and version.
const settles = new WeakMap<Release, { polls: number; apply: () => void }>();

/** Config, releases and rollback; false when the route is not one of them. */
function handleReleases(
  fake: FakeApi,
  app: App,
  method: string | undefined,
  sub: string,
  id: string | undefined,
  body: Buffer,
  res: http.ServerResponse,
): boolean {
  const releases = fake.releases.get(app.name)!;
  const config = fake.config.get(app.name)!;

  const newRelease = (kind: Release['kind'], description: string, apply: () => void): void => {
    const pending = releases.find((r) => r.status === 'pending');
    if (pending) {
      fail(
        res,
        409,
        'conflict',
        `release ${pending.version} of ${app.name} is still in progress; wait for it`,
      );
      return;
    }
    const last = releases[0] ? Number(releases[0].version.slice(1)) : 0;
    const release: Release = {
      version: `v${last + 1}`,
      status: 'pending',
      kind,
      description,
      current: false,
      error: null,
      createdBy: 'admin',
      createdAt: new Date().toISOString(),
    };
    releases.unshift(release);
    settles.set(release, { polls: 0, apply });
    send(res, 201, { release });
  };

  if (sub === 'config' && id === undefined && method === 'GET') {
    send(res, 200, { config });
    return true;
  }
  if (sub === 'config' && id === undefined && method === 'PATCH') {
    const change = JSON.parse(body.toString()) as ConfigChange;
    const set = change.set ?? {};
    const unset = change.unset ?? [];
    for (const key of [...Object.keys(set), ...unset]) {
      if (key.startsWith('PETRI_')) {
        fail(res, 400, 'bad_request', `PETRI_ names are Petri's own; choose another name than '${key}'`);
        return true;
      }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
        fail(res, 400, 'bad_request', `config var names must match ^[A-Za-z_][A-Za-z0-9_]*$, got '${key}'`);
        return true;
      }
    }
    const words = [
      Object.keys(set).length > 0 ? `Set ${Object.keys(set).join(', ')}` : '',
      unset.length > 0 ? `Unset ${unset.join(', ')}` : '',
    ];
    newRelease('config', words.filter(Boolean).join('; '), () => {
      Object.assign(config, set);
      for (const key of unset) delete config[key];
    });
    return true;
  }

  if (sub === 'releases' && method === 'GET') {
    if (id === undefined) {
      send(res, 200, { releases });
      return true;
    }
    const release = releases.find((r) => r.version === id);
    if (!release) {
      fail(res, 404, 'not_found', `release ${id} of ${app.name} not found; list them with 'petri releases'`);
      return true;
    }
    settle(fake, app, releases, release);
    send(res, 200, { release });
    return true;
  }

  if (sub === 'rollback' && id === undefined && method === 'POST') {
    const { version } = JSON.parse(body.toString()) as { version?: string };
    const currentIndex = releases.findIndex((r) => r.current);
    const target =
      version === undefined
        ? releases.slice(currentIndex + 1).find((r) => r.status === 'succeeded')
        : releases.find((r) => r.version === version);
    if (!target) {
      const what =
        version === undefined ? 'no release before the current one' : `release ${version} not found`;
      fail(res, 404, 'not_found', `${what}; list them with 'petri releases'`);
      return true;
    }
    newRelease('rollback', `Rollback to ${target.version}`, () => {});
    return true;
  }
  return false;
}

/** Polling a pending release moves it on: after POLLS_TO_SETTLE polls it succeeds, or fails. */
function settle(fake: FakeApi, app: App, releases: Release[], release: Release): void {
  const pending = settles.get(release);
  if (!pending || release.status !== 'pending') return;
  pending.polls += 1;
  if (pending.polls < POLLS_TO_SETTLE) return;
  if (fake.releaseError) {
    Object.assign(release, { status: 'failed', error: fake.releaseError });
    return;
  }
  for (const r of releases) r.current = false;
  Object.assign(release, { status: 'succeeded', current: true });
  app.release = release.version;
  pending.apply();
}

async function streamDeploy(fake: FakeApi, res: http.ServerResponse, deploy: Deploy): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  const log = (source: string, text: string) =>
    res.write(ndjsonLine(res, { type: 'log', time: '2025-01-02T03:04:06.000Z', source, text }));
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
  const end = ndjsonLine(res, { type: 'end', deploy });
  res.write(end.slice(0, 10));
  await new Promise((resolve) => setTimeout(resolve, 10));
  res.end(end.slice(10));
}

/** /v1/addon-backups and /v1/addon-backups/:id/download (the fake's user is an admin). */
function handleAllBackups(
  fake: FakeApi,
  method: string | undefined,
  rest: string[],
  res: http.ServerResponse,
) {
  if (method !== 'GET') return fail(res, 404, 'not_found', `no route ${method} /v1/addon-backups`);
  if (rest.length === 0) return send(res, 200, { backups: fake.backups });
  const [id, tail] = rest;
  if (tail !== 'download' || rest.length !== 2)
    return fail(res, 404, 'not_found', `no route /v1/addon-backups/${rest.join('/')}`);
  const backup = fake.backups.find((b) => b.id === id);
  if (!backup) return fail(res, 404, 'not_found', `backup ${id} not found`);
  return sendDump(fake, res, backup);
}

/** /v1/apps/:name/addons...: rest is what follows `addons`. */
function handleAddons(
  fake: FakeApi,
  app: App,
  method: string | undefined,
  rest: string[],
  url: URL,
  body: Buffer,
  res: http.ServerResponse,
) {
  const list = fake.addons.get(app.name)!;
  const [name, action, id, tail] = rest;
  if (name === undefined) {
    if (method === 'GET') return send(res, 200, { addons: list, available: fake.addonTypes });
    if (method === 'POST') return createAddon(fake, app, list, JSON.parse(body.toString()), res);
  }
  const addon = list.find((a) => a.name === name);
  if (!addon) {
    const names = list.map((a) => a.name).join(', ') || 'none';
    return fail(res, 404, 'not_found', `add-on '${name}' of ${app.name} not found; it has: ${names}`);
  }
  const own = fake.backups.filter((b) => b.app === app.name && b.addon === addon.name);

  if (action === undefined && method === 'GET') {
    return send(res, 200, {
      addon,
      backups: own.length,
      lastBackup: own.find((b) => b.status === 'succeeded') ?? null,
      shell: addon.status === 'ready' ? ['/bin/sh', '-c', `exec psql "$${addon.envVar}"`] : [],
    });
  }
  if (action === undefined && method === 'DELETE') {
    if (url.searchParams.get('confirm') !== addon.name) {
      return fail(
        res,
        400,
        'bad_request',
        `destroying add-on '${name}' needs confirm=${name} (petri addons destroy ${name} --confirm ${name})`,
      );
    }
    const conflict = pendingRelease(fake, app);
    if (conflict) return fail(res, 409, 'conflict', conflict);
    const backup = addBackup(fake, addon, {
      kind: 'final',
      sizeBytes: 4321,
      createdAt: '2025-01-09T08:00:00.000Z',
      finishedAt: '2025-01-09T08:00:00.800Z',
      expiresAt: '2025-02-08T08:00:00.800Z',
    });
    list.splice(list.indexOf(addon), 1);
    const release = addonRelease(fake, app, `Detach ${addon.name} (${addon.type})`, () => {
      delete fake.config.get(app.name)![addon.envVar];
    });
    return send(res, 200, { backup, release });
  }
  if (action === 'rotate' && method === 'POST') {
    const conflict = pendingRelease(fake, app);
    if (conflict) return fail(res, 409, 'conflict', conflict);
    addon.rotating = true;
    const release = addonRelease(fake, app, `Rotate credentials of ${addon.name}`, () => {});
    return send(res, 200, { addon, release });
  }
  if (action === 'backups' && id === undefined && method === 'POST') {
    const backup = addBackup(fake, addon, {
      kind: 'manual',
      sizeBytes: 1_258_291,
      createdAt: '2025-01-07T12:00:00.000Z',
      finishedAt: '2025-01-07T12:00:01.500Z',
    });
    return send(res, 201, { backup });
  }
  if (action === 'backups' && id === undefined && method === 'GET') return send(res, 200, { backups: own });
  if (action === 'backups' && tail === 'download' && method === 'GET') {
    const backup = own.find((b) => b.id === id);
    if (!backup) {
      return fail(
        res,
        404,
        'not_found',
        `backup ${id} not found for add-on '${addon.name}'; list them with 'petri addons backups ${addon.name}'`,
      );
    }
    return sendDump(fake, res, backup);
  }
  if (action === 'restore' && method === 'POST') {
    const { backup: wanted } = JSON.parse(body.toString()) as { backup: string };
    const backup = fake.backups.find((b) => b.id === wanted && b.type === addon.type);
    if (!backup) return fail(res, 404, 'not_found', `backup ${wanted} not found for add-on '${addon.name}'`);
    if (backup.status !== 'succeeded') {
      return fail(
        res,
        409,
        'conflict',
        `backup ${wanted} ${backup.status === 'running' ? 'is still running' : 'failed'}; pick another`,
      );
    }
    const safetyBackup = addBackup(fake, addon, {
      kind: 'manual',
      sizeBytes: 5_000,
      createdBy: `admin (before restoring ${wanted})`,
      createdAt: '2025-01-08T12:00:00.000Z',
      finishedAt: '2025-01-08T12:00:00.300Z',
    });
    return send(res, 200, { restored: backup.id, safetyBackup });
  }
  return fail(res, 404, 'not_found', `no route ${method} ${url.pathname}`);
}

function createAddon(
  fake: FakeApi,
  app: App,
  list: Addon[],
  input: { type: string; as?: string },
  res: http.ServerResponse,
) {
  if (!fake.addonTypes.includes(input.type)) {
    return fail(
      res,
      400,
      'bad_request',
      `unknown add-on type '${input.type}'; this server offers ${fake.addonTypes.join(', ')}`,
    );
  }
  const upper = input.as?.toUpperCase().replace(/-/g, '_');
  const name = upper === undefined ? input.type : upper.toLowerCase().replace(/_/g, '-');
  const envVar =
    upper === undefined ? (input.type === 'redis' ? 'REDIS_URL' : 'DATABASE_URL') : `${upper}_URL`;
  if (list.some((a) => a.name === name)) {
    return fail(res, 409, 'conflict', `${app.name} already has an add-on named '${name}'; pass --as NAME`);
  }
  const conflict = pendingRelease(fake, app);
  if (conflict) return fail(res, 409, 'conflict', conflict);
  const addon: Addon = {
    name,
    app: app.name,
    type: input.type,
    envVar,
    mode: 'managed',
    status: 'ready',
    rotating: false,
    createdAt: '2025-01-10T00:00:00.000Z',
    usage: { bytes: 7_340_032, connections: 0 },
  };
  list.push(addon);
  list.sort((a, b) => a.name.localeCompare(b.name));
  const release = addonRelease(fake, app, `Attach ${name} (${input.type}) as ${envVar}`, () => {
    fake.config.get(app.name)![envVar] = `${input.type}://${app.name}@addons.internal/${name}`;
  });
  return send(res, 201, { addon, release });
}

/** Why a new release cannot start now, or undefined when it can. */
function pendingRelease(fake: FakeApi, app: App): string | undefined {
  const pending = fake.releases.get(app.name)!.find((r) => r.status === 'pending');
  return pending ? `release ${pending.version} of ${app.name} is still in progress; wait for it` : undefined;
}

/** An add-on's release, pending until polled as the others are; null for an app never deployed. */
function addonRelease(fake: FakeApi, app: App, description: string, apply: () => void): Release | null {
  const releases = fake.releases.get(app.name)!;
  if (releases.length === 0) {
    apply();
    return null;
  }
  const release: Release = {
    version: `v${Number(releases[0]!.version.slice(1)) + 1}`,
    status: 'pending',
    kind: 'addon',
    description,
    current: false,
    error: null,
    createdBy: 'admin',
    createdAt: new Date().toISOString(),
  };
  releases.unshift(release);
  settles.set(release, { polls: 0, apply });
  return release;
}

function addBackup(
  fake: FakeApi,
  addon: Addon,
  fields: Pick<AddonBackup, 'kind' | 'sizeBytes' | 'createdAt' | 'finishedAt'> & Partial<AddonBackup>,
): AddonBackup {
  const last = Math.max(0, ...fake.backups.map((b) => Number(b.id.slice(1))));
  const backup: AddonBackup = {
    id: `b${last + 1}`,
    app: addon.app,
    addon: addon.name,
    type: addon.type,
    status: 'succeeded',
    createdBy: 'admin',
    expiresAt: null,
    error: null,
    ...fields,
  };
  fake.backups.unshift(backup);
  fake.dumps.set(backup.id, cannedDump(backup.sizeBytes ?? 0, last + 1));
  return backup;
}

function sendDump(fake: FakeApi, res: http.ServerResponse, backup: AddonBackup) {
  const dump = fake.dumps.get(backup.id);
  if (backup.status !== 'succeeded' || !dump) {
    return fail(res, 409, 'conflict', `backup ${backup.id} ${backup.status}; pick another`);
  }
  breach(res, 200, 'application/octet-stream');
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-disposition': `attachment; filename="${backup.app}-${backup.addon}-${backup.id}.dump"`,
    'content-length': String(dump.length),
  });
  // In pieces, as a file streams: the CLI must not assume one chunk.
  for (let at = 0; at < dump.length; at += 64 * 1024) res.write(dump.subarray(at, at + 64 * 1024));
  res.end();
}

/** `petri run`'s WebSocket route: records what it was asked to run, answers RUN_OUTPUT on
 * stdout, then exits with runExitCode. */
function acceptRuns(fake: FakeApi, server: http.Server): void {
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const match = /^\/v1\/apps\/([^/]+)\/run$/.exec(req.url ?? '');
    if (!match || req.headers.authorization !== `Bearer ${TOKEN}`) {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n');
      return;
    }
    const app = decodeURIComponent(match[1]!);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.once('message', (data) => {
        fake.runs.push({ app, request: JSON.parse(String(data)) });
        ws.send(Buffer.concat([Buffer.from([1]), Buffer.from(RUN_OUTPUT)]), { binary: true });
        ws.send(JSON.stringify({ type: 'exit', code: fake.runExitCode, signal: null }));
        ws.close(1000);
      });
    });
  });
  const close = fake.close;
  fake.close = async () => {
    for (const client of wss.clients) if (client.readyState === WebSocket.OPEN) client.terminate();
    wss.close();
    await close();
  };
}

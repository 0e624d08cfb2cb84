// Attack: a member opens the `petri run` WebSocket (authorized at the upgrade), then is
// disabled by an admin, or taken out of the app's team, or has the token revoked. The socket
// stays open, and only its FIRST message says what to run: the command was started whenever
// that message arrived, with the app's release and config (its secrets), without asking again
// whether the caller may; and a command already running kept running. "petri users disable
// EMAIL revokes their tokens and sessions at once" (issue 13) did not hold for a socket
// opened before.
//
// Now: the session is ended (error message, close 1008, the command hung up on) as soon as
// the route that ends access answers; access is decided again right before the command
// starts (a change no route told about); and a socket that sends nothing is closed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { runTimeouts } from '../../../src/api/routes/run.js';
import { createUser, issueToken } from '../../../src/domain/auth.js';
import { DataPaths } from '../../../src/lib/paths.js';
import { until } from '../../../src/lib/until.js';
import { now, openStore, type Store } from '../../../src/store/db.js';
import type { User } from '../../../src/store/schema.js';
import { buildTestApi } from '../test-api.js';

/** How long an ended session may take to close: the routes tell the registry before they answer. */
const DEADLINE_MS = 3000;

describe('a petri run socket opened before the caller lost access', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let port: number;
  let teamId: number;
  const users = new Map<string, User>();
  const tokens = new Map<string, string>();
  /** Commands started, and the signals each was sent. */
  const started: { command: string; signals: string[] }[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-attack-run-'));
    db = await openStore(new DataPaths(dir).store);
    for (const [who, role] of [
      ['admin', 'admin'],
      ['mal', 'member'],
      ['rex', 'member'],
      ['tim', 'member'],
      ['ana', 'member'],
      ['sam', 'member'],
      ['ivy', 'member'],
    ] as const) {
      const user = await createUser(db, who, role, { email: `${who}@example.org` });
      users.set(who, user);
      tokens.set(who, await issueToken(db, user.id, 'test'));
    }
    const { id } = await db
      .insertInto('teams')
      .values({ name: 'lab', personal_of: null, created_at: now() })
      .returning('id')
      .executeTakeFirstOrThrow();
    teamId = id;
    for (const who of ['mal', 'rex', 'tim', 'ana', 'sam', 'ivy']) {
      await db
        .insertInto('team_members')
        .values({ team_id: id, user_id: users.get(who)!.id, role: 'member', created_at: now() })
        .execute();
    }
    await db
      .insertInto('apps')
      .values({
        name: 'blog',
        owner_id: users.get('admin')!.id,
        team_id: id,
        created_at: now(),
        memory_mib: 256,
        cpus: 0.5,
        pids: 128,
      })
      .execute();
    // A one-off that runs until it is signalled (as a shell waiting for input would).
    const runOneOff = async (_app: unknown, request: { command: string[] }) => {
      const run = { command: request.command.join(' '), signals: [] as string[] };
      started.push(run);
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let exit!: (r: { exitCode: number | null; signal: string | null }) => void;
      const exited = new Promise<{ exitCode: number | null; signal: string | null }>((r) => {
        exit = r;
      });
      return {
        stdin: new PassThrough(),
        stdout,
        stderr,
        resize: () => {},
        signal: (signal: string) => {
          run.signals.push(signal);
          stdout.end();
          stderr.end();
          exit({ exitCode: null, signal });
        },
        wait: () => exited,
      };
    };
    api = await buildTestApi(dir, db, {}, { runOneOff: runOneOff as never });
    await api.listen({ port: 0, host: '127.0.0.1' });
    port = (api.server.address() as AddressInfo).port;
  });
  after(async () => {
    runTimeouts.firstMessageMs = 30_000;
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const admin = (method: 'POST' | 'DELETE', url: string) =>
    api.inject({ method, url, headers: { authorization: `Bearer ${tokens.get('admin')}` } });

  /** An open session, with what the server sent so far and its close code once closed. */
  async function open(who: string) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/apps/blog/run`, {
      headers: { authorization: `Bearer ${tokens.get(who)}` },
    });
    const session = { ws, texts: [] as string[], code: undefined as number | undefined };
    ws.on('message', (data, isBinary) => {
      if (!isBinary) session.texts.push(data.toString());
    });
    ws.on('close', (code) => {
      session.code = code;
    });
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => resolve());
      ws.on('unexpected-response', (_req, res) => reject(new Error(`answered ${res.statusCode}`)));
      ws.on('error', reject);
    });
    return session;
  }

  type Session = Awaited<ReturnType<typeof open>>;

  /** Sends the command, if the socket is still open (an ended one may be closed already). */
  function send(session: Session, command: string[]): void {
    if (session.ws.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify({ command, tty: false }));
  }

  async function closedWithError(session: Session, pattern: RegExp): Promise<void> {
    await until(() => session.code !== undefined, { timeout: DEADLINE_MS, message: 'the session closed' });
    assert.equal(session.code, 1008, `closed ${session.code}: ${session.texts.join(' ')}`);
    const error = session.texts.map((t) => JSON.parse(t)).find((m) => m.type === 'error');
    assert.match(error?.error?.message ?? '', pattern, session.texts.join(' '));
  }

  const wasStarted = (command: string) => started.some((s) => s.command === command);

  test('a disabled member: the session ends at once, and nothing is started', async () => {
    const session = await open('mal');
    const off = await admin('POST', '/v1/users/mal@example.org/disable');
    assert.equal(off.statusCode, 200, off.body);
    send(session, ['sh', '-c', 'env | grep SECRET']);
    await closedWithError(session, /disabled/);
    assert.ok(!wasStarted('sh -c env | grep SECRET'), `started: ${JSON.stringify(started)}`);
  });

  test('a member taken out of the team: the session ends at once, and nothing is started', async () => {
    const session = await open('rex');
    const out = await admin('DELETE', '/v1/teams/lab/members/rex@example.org');
    assert.equal(out.statusCode, 204, out.body);
    send(session, ['cat', '/app/.env-rex']);
    await closedWithError(session, /not found/);
    assert.ok(!wasStarted('cat /app/.env-rex'), `started: ${JSON.stringify(started)}`);
  });

  test('a revoked token: the session ends at once, and nothing is started', async () => {
    const session = await open('tim');
    const tok = await db
      .selectFrom('tokens')
      .select('id')
      .where('user_id', '=', users.get('tim')!.id)
      .executeTakeFirstOrThrow();
    const revoked = await admin('DELETE', `/v1/tokens/${tok.id}`);
    assert.equal(revoked.statusCode, 200, revoked.body);
    send(session, ['echo', 'tim-after-revoke']);
    await closedWithError(session, /revoked/);
    assert.ok(!wasStarted('echo tim-after-revoke'), `started: ${JSON.stringify(started)}`);
  });

  test('access is decided again right before the command starts, also for a change no route told about', async () => {
    const session = await open('ana');
    // Made a viewer behind the API's back (another process over the same store).
    await db
      .updateTable('team_members')
      .set({ role: 'viewer' })
      .where('team_id', '=', teamId)
      .where('user_id', '=', users.get('ana')!.id)
      .execute();
    send(session, ['echo', 'ana-as-viewer']);
    await closedWithError(session, /needs the member role/);
    assert.ok(!wasStarted('echo ana-as-viewer'), `started: ${JSON.stringify(started)}`);
  });

  test('a running command is hung up on when its caller is taken out of the team', async () => {
    const session = await open('sam');
    send(session, ['sleep', 'forever']);
    await until(() => wasStarted('sleep forever'), { timeout: DEADLINE_MS, message: 'the command started' });
    const out = await admin('DELETE', '/v1/teams/lab/members/sam@example.org');
    assert.equal(out.statusCode, 204, out.body);
    await closedWithError(session, /not found/);
    const run = started.find((s) => s.command === 'sleep forever')!;
    assert.equal(run.signals[0], 'SIGHUP', 'the command was hung up on');
  });

  test('a socket that sends no command is closed after the first-message timeout', async () => {
    runTimeouts.firstMessageMs = 300;
    try {
      const session = await open('ivy');
      await closedWithError(session, /no command arrived/);
    } finally {
      runTimeouts.firstMessageMs = 30_000;
    }
  });
});

// `petri run` end to end, in-process: the real API (WebSocket route, auth) over TCP, the
// one-off runner on a real store, and the local driver's sandbox (bwrap, cgroups) running a
// temp slug; the CLI command with a fake terminal. Needs root, like test/runtime.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Command, CommanderError } from 'commander';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../src/api/context.js';
import { buildApi } from '../../src/api/server.js';
import { createContext } from '../../src/cli/context.js';
import { registerRun, type Terminal } from '../../src/cli/run.js';
import { ApiError } from '../../src/client/errors.js';
import { openRun, type RunExit, type RunRequest } from '../../src/client/run.js';
import { createApp } from '../../src/domain/apps.js';
import { bootstrapAdmin } from '../../src/domain/auth.js';
import { loadConfig } from '../../src/lib/config.js';
import { errorMessage } from '../../src/lib/errors.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { until } from '../../src/lib/until.js';
import { DeployLogs } from '../../src/logs/deploy-log.js';
import { LogStore } from '../../src/logs/log-store.js';
import { createOneOffRunner } from '../../src/services/one-off.js';
import { openStore, type Store } from '../../src/store/db.js';
import { APP_UID, makeWorld, type World } from '../runtime/world.js';
import { Capture } from './harness.js';

let world: World;
let db: Store;
let api: FastifyInstance;
let url: string;
let token: string;

before(async () => {
  world = await makeWorld('cli-run');
  const dataDir = path.join(world.root, 'data');
  await mkdir(dataDir, { mode: 0o755 });
  const paths = new DataPaths(dataDir);
  db = await openStore(paths.store);
  token = (await bootstrapAdmin(db))!;
  const admin = await db.selectFrom('users').selectAll().executeTakeFirstOrThrow();
  const limits = { memoryMiB: 128, cpus: 1, pids: 32 };
  const app = await createApp(db, admin, 'hello', limits);
  await createApp(db, admin, 'fresh', limits); // never deployed
  await writeFile(path.join(world.slugDir, 'greeting.txt'), 'from the slug\n');
  const secrets = SecretBox.withKey(randomBytes(32));
  const release = await db
    .insertInto('releases')
    .values({
      app_id: app.id,
      version: 1,
      deploy_id: null,
      slug_dir: world.slugDir,
      process_types: JSON.stringify({ web: 'node server.mjs' }),
      runtime_env: '{}',
      config_sealed: secrets.seal(JSON.stringify({ GREETING: 'hi from config' })),
      description: 'test release',
      created_by: admin.id,
      created_at: new Date().toISOString(),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  await db
    .updateTable('apps')
    .set({ serving_release_id: release.id, desired_release_id: release.id })
    .where('id', '=', app.id)
    .execute();
  // The app runs as uidBase + id: the world's APP_UID, which may traverse the temp dirs.
  const config = loadConfig({ dataDir, uidBase: APP_UID - app.id, cgroupParent: world.options.cgroupParent });
  const runOneOff = createOneOffRunner({
    db,
    driver: world.driver,
    paths,
    config,
    secrets,
  });
  // Only what these routes touch; the context grows with other features, which bring their own tests.
  const ctx: Partial<ApiContext> = {
    db,
    config,
    secrets,
    paths,
    logs: new LogStore({ dir: paths.logs }),
    deployLogs: new DeployLogs((a, d) => paths.deployLog(a, d)),
    nudge: () => {},
    runOneOff,
  };
  api = await buildApi(ctx as ApiContext, createLogger('silent'));
  url = await api.listen({ port: 0, host: '127.0.0.1' });
});

after(async () => {
  await api?.close(); // hangs up on any one-off still attached
  await db?.destroy();
  await world?.cleanup();
});

interface FakeTerminal extends Terminal {
  input: PassThrough;
  out: Capture;
  err: Capture;
  emit(signal: 'SIGINT' | 'SIGWINCH'): void;
}

function fakeTerminal(): FakeTerminal {
  const input = new PassThrough();
  const out = new Capture();
  const err = new Capture();
  const listeners = new Map<string, Set<() => void>>();
  return {
    input,
    out,
    err,
    stdin: input,
    stdout: { write: (chunk) => out.write(Buffer.from(chunk).toString('utf8')) },
    stderr: { write: (chunk) => err.write(Buffer.from(chunk).toString('utf8')) },
    onSignal(signal, listener) {
      const set = listeners.get(signal) ?? new Set();
      listeners.set(signal, set);
      set.add(listener);
      return () => set.delete(listener);
    },
    emit(signal) {
      for (const listener of listeners.get(signal) ?? []) listener();
    },
  };
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** What the CLI itself said (errors), as main.ts would print it. */
  error: string;
}

/** `petri ARGV` with registerRun as main.ts will wire it, and the exit code it would return. */
async function petri(
  argv: string[],
  terminal: FakeTerminal = fakeTerminal(),
  env: Record<string, string> = { PETRI_URL: url, PETRI_TOKEN: token },
): Promise<Result> {
  const io = { stdout: new Capture(), stderr: new Capture(), env, cwd: world.root };
  const program = new Command('petri').exitOverride().configureOutput({
    writeOut: (text) => io.stdout.write(text),
    writeErr: (text) => io.stderr.write(text),
  });
  registerRun(program, createContext(io, new AbortController().signal), terminal);
  let code = 0;
  let error = io.stderr.text;
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError)
      code = err.code === 'commander.executeSubCommandAsync' ? err.exitCode : 2;
    else {
      code = 1;
      error = errorMessage(err);
    }
  }
  return { code, stdout: terminal.out.text, stderr: terminal.err.text, error: error || io.stderr.text };
}

/** The client alone: output, and the exit or the error. */
function runDirect(request: RunRequest, opts: { token?: string; stdin?: string } = {}) {
  let stdout = '';
  let stderr = '';
  return new Promise<{ stdout: string; stderr: string; exit?: RunExit; error?: Error }>((resolve) => {
    const session = openRun({ url, token: opts.token ?? token }, request, {
      stdout: (c) => {
        stdout += c.toString('utf8');
      },
      stderr: (c) => {
        stderr += c.toString('utf8');
      },
      exit: (exit) => resolve({ stdout, stderr, exit }),
      error: (error) => resolve({ stdout, stderr, error }),
    });
    if (opts.stdin !== undefined) {
      session.writeStdin(opts.stdin);
      session.eof();
    }
  });
}

describe('petri run', () => {
  test('prints the output of echo hello and exits 0', async () => {
    const terminal = fakeTerminal();
    terminal.input.end();
    const result = await petri(['run', '-a', 'hello', '--', 'echo', 'hello'], terminal);
    assert.deepEqual(result, { code: 0, stdout: 'hello\n', stderr: '', error: '' });
  });

  test("the command's exit code is the CLI's", async () => {
    const terminal = fakeTerminal();
    terminal.input.end();
    const result = await petri(['run', '-a', 'hello', '--', 'sh', '-c', 'exit 7'], terminal);
    assert.equal(result.code, 7);
  });

  test('stdin is piped to the command (cat), and ends with ours', async () => {
    const terminal = fakeTerminal();
    terminal.input.write('line one\n');
    terminal.input.end('line two\n');
    const result = await petri(['run', '-a', 'hello', '--', 'cat'], terminal);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'line one\nline two\n');
  });

  test('stderr stays separate without a terminal; one argument is a shell line', async () => {
    const terminal = fakeTerminal();
    terminal.input.end();
    const result = await petri(['run', '-a', 'hello', 'echo out; echo err >&2; cat greeting.txt'], terminal);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'out\nfrom the slug\n');
    assert.equal(result.stderr, 'err\n');
  });

  test('large output and input arrive whole and in order (backpressure, not loss)', async () => {
    const terminal = fakeTerminal();
    const lines = Array.from({ length: 200_000 }, (_, i) => `line ${i}`).join('\n');
    terminal.input.end(`${lines}\n`);
    const result = await petri(['run', '-a', 'hello', '--', 'sh', '-c', 'cat; seq 1 300000'], terminal);
    assert.equal(result.code, 0);
    const seq = Array.from({ length: 300_000 }, (_, i) => String(i + 1)).join('\n');
    assert.ok(result.stdout === `${lines}\n${seq}\n`, `got ${result.stdout.length} bytes`);
  });

  test('the release, its config and the app user are inside', async () => {
    const terminal = fakeTerminal();
    terminal.input.end();
    const result = await petri(
      ['run', '-a', 'hello', '--', 'sh', '-c', 'echo "$GREETING|$PETRI_APP|$PETRI_RELEASE|$(id -u)|$PWD"'],
      terminal,
    );
    assert.equal(result.stdout, `hi from config|hello|v1|${APP_UID}|/app\n`);
  });

  test('Ctrl-C (SIGINT) reaches the command: 128+2', async () => {
    const terminal = fakeTerminal();
    const running = petri(['run', '-a', 'hello', '--', 'sh', '-c', 'echo ready; exec sleep 100'], terminal);
    await until(() => terminal.out.text.includes('ready'), {
      timeout: 15_000,
      message: 'the command to start',
    });
    terminal.emit('SIGINT');
    const result = await running;
    assert.equal(result.code, 130);
  });

  test('a terminal when asked: tty -s succeeds, output uses CRLF', async () => {
    const result = await runDirect({
      app: 'hello',
      command: 'tty -s && echo yes; stty size',
      tty: true,
      cols: 90,
      rows: 20,
    });
    assert.deepEqual(result.exit, { code: 0, signal: null });
    assert.equal(result.stdout, 'yes\r\n20 90\r\n');
  });

  test('401 without a valid token, before the upgrade', async () => {
    const result = await runDirect({ app: 'hello', command: ['true'], tty: false }, { token: 'wrong' });
    assert.ok(result.error instanceof ApiError, String(result.error));
    assert.equal(result.error.status, 401);
    assert.equal(result.error.code, 'unauthorized');
    const cli = await petri(['run', '-a', 'hello', '--', 'true'], fakeTerminal(), {
      PETRI_URL: url,
      PETRI_TOKEN: 'nope',
    });
    assert.equal(cli.code, 1);
    assert.match(cli.error, /token/i);
    const plain = await fetch(`${url}/v1/apps/hello/run`);
    assert.equal(plain.status, 401);
  });

  test('404 for an unknown app; 409 for one that was never deployed', async () => {
    const missing = await runDirect({ app: 'nope', command: ['true'], tty: false });
    assert.ok(missing.error instanceof ApiError);
    assert.equal(missing.error.status, 404);
    const fresh = await runDirect({ app: 'fresh', command: ['true'], tty: false });
    assert.ok(fresh.error instanceof ApiError);
    assert.equal(fresh.error.code, 'conflict');
    assert.match(fresh.error.message, /petri deploy/);
  });

  test('an empty or malformed command is refused', async () => {
    for (const command of [[], '', ['a\0b'], [1 as unknown as string], ['x'.repeat(70_000)]]) {
      const result = await runDirect({ app: 'hello', command, tty: false });
      assert.ok(result.error instanceof ApiError, `${JSON.stringify(command).slice(0, 40)}: ${result.error}`);
      assert.equal(result.error.code, 'bad_request');
    }
    const cli = await petri(['run', '-a', 'hello', '--']);
    assert.equal(cli.code, 2, 'commander: missing argument');
  });

  test('a plain GET is told to upgrade; the route is documented', async () => {
    const plain = await fetch(`${url}/v1/apps/hello/run`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(plain.status, 400);
    assert.match(((await plain.json()) as { error: { message: string } }).error.message, /WebSocket/);
    const doc = (await (await fetch(`${url}/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/v1/apps/{name}/run'], 'in the OpenAPI document');
  });

  test('a client that goes away hangs up on the command', async () => {
    let stdout = '';
    const session = openRun(
      { url, token },
      { app: 'hello', command: 'echo ready; exec sleep 100', tty: false },
      {
        stdout: (c) => {
          stdout += c.toString();
        },
        stderr: () => {},
        exit: () => {},
        error: () => {},
      },
    );
    await until(() => stdout.includes('ready'), { timeout: 15_000, message: 'the command to start' });
    session.close();
    await session.closed;
    // Its cgroup goes with it: nothing under the one-off prefix remains.
    const { readdir } = await import('node:fs/promises');
    const dir = path.join('/sys/fs/cgroup/pids', world.options.cgroupParent);
    await until(
      async () => (await readdir(dir).catch(() => [])).filter((n) => n.startsWith('run_')).length === 0,
      {
        timeout: 10_000,
        message: 'the one-off to end',
      },
    );
  });
});

// One-offs (`petri run`) with the real bwrap and cgroups: stdio attached, exit codes, a
// terminal under `script`, signals, a timeout, and nothing left behind. Needs root.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { until } from '../../src/lib/until.js';
import type { InteractiveProcess, InteractiveSpec, TaskResult } from '../../src/runtime/driver.js';
import {
  interactiveCommand,
  resizeArgv,
  shellQuote,
  terminalSize,
} from '../../src/runtime/local/interactive-args.js';
import { APP_GID, APP_UID, makeWorld, type World } from './world.js';

let world: World;
const running: InteractiveProcess[] = [];
before(async () => {
  world = await makeWorld('run');
});
after(async () => {
  // Whatever a failed test left running: SIGKILL, then let the driver clean up.
  for (const p of running) p.signal('SIGKILL');
  await Promise.allSettled(running.map((p) => p.wait()));
  await world?.cleanup();
});

function spec(id: string, command: string[], extra: Partial<InteractiveSpec> = {}): InteractiveSpec {
  return {
    id,
    app: 'probe',
    uid: APP_UID,
    gid: APP_GID,
    slugDir: world.slugDir,
    workDir: path.join(world.root, 'runs', id),
    command,
    env: {},
    labels: { app: 'probe', kind: 'run', process: 'run' },
    limits: { memoryMiB: 128, cpus: 1, pids: 32 },
    tty: false,
    ...extra,
  };
}

interface Ran {
  proc: InteractiveProcess;
  out: () => string;
  err: () => string;
}

async function start(s: InteractiveSpec): Promise<Ran> {
  const proc = await world.driver.runInteractive(s);
  running.push(proc);
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  proc.stderr.setEncoding('utf8').on('data', (c: string) => {
    err += c;
  });
  return { proc, out: () => out, err: () => err };
}

async function finish(ran: Ran): Promise<TaskResult> {
  const result = await ran.proc.wait();
  // 'exit' may come before the last bytes of the pipes are read.
  await until(() => ran.proc.stdout.readableEnded && ran.proc.stderr.readableEnded, { timeout: 5000 });
  return result;
}

function golden(name: string, actual: string): void {
  const file = fileURLToPath(new URL(`./golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `golden file ${name} differs (UPDATE_GOLDEN=1 to accept)`);
}

test('shellQuote: sh reads back exactly the argv', async () => {
  assert.equal(shellQuote(['ls', '-la', '/app']), 'ls -la /app');
  assert.equal(shellQuote(['echo', "it's", '$HOME', '']), `echo 'it'\\''s' '$HOME' ''`);
  assert.throws(() => shellQuote(['a\0b']), /NUL/);
  assert.throws(() => shellQuote([]), /empty/);
  const { execFileSync } = await import('node:child_process');
  const nasty = ['a b', "'", '"', '$(id)', '`id`', '\\', '\n', '*', ';', '&&', '|', '~', '#', '-', 'é ü'];
  const printed = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${shellQuote(nasty)}`]).toString();
  assert.deepEqual(printed.split('\0').slice(0, -1), nasty);
});

test('interactive command and resize argv match the golden file', () => {
  golden(
    'interactive-argv.txt',
    [
      '# tty: false',
      ...interactiveCommand({ command: ['sh', '-c', 'echo $HOME'], tty: false }).map((a) => `  ${a}`),
      '# tty: true, 120x40',
      ...interactiveCommand({
        command: ['python3', '-c', "print('hi')"],
        tty: true,
        cols: 120,
        rows: 40,
      }).map((a) => `  ${a}`),
      '# tty: true, no size',
      ...interactiveCommand({ command: ['bash'], tty: true }).map((a) => `  ${a}`),
      '# resize',
      ...resizeArgv(20001, 20001, '/proc/42/fd/0', 100, 30).map((a) => `  ${a}`),
      '',
    ].join('\n'),
  );
  assert.throws(() => terminalSize(80, undefined), /rows/);
  assert.throws(() => terminalSize(0, 24), /cols/);
  assert.throws(() => terminalSize(80.5, 24), /cols/);
  assert.throws(() => interactiveCommand({ command: [], tty: true }), /empty/);
});

test('stdin reaches the command and its output comes back (cat)', async () => {
  const ran = await start(spec('cat-1', ['cat']));
  ran.proc.stdin.write('hello\n');
  await until(() => ran.out() === 'hello\n', { timeout: 10_000, message: 'the echo' });
  ran.proc.stdin.end('bye\n');
  const result = await finish(ran);
  assert.deepEqual(result, { exitCode: 0, signal: null, timedOut: false, oomKilled: false });
  assert.equal(ran.out(), 'hello\nbye\n');
});

test('the exit code is passed on; stderr is separate without a terminal', async () => {
  const ran = await start(spec('exit-1', ['sh', '-c', 'echo out; echo err >&2; exit 7']));
  ran.proc.stdin.end();
  const result = await finish(ran);
  assert.equal(result.exitCode, 7);
  assert.equal(ran.out(), 'out\n');
  assert.equal(ran.err(), 'err\n');
});

test('env, uid and a writable /app copy of the release inside', async () => {
  const ran = await start(
    spec('env-1', ['sh', '-c', 'echo "$GREETING $HOME $(id -u):$(id -g)"; touch /app/new && ls /app'], {
      env: { GREETING: 'hi there' },
    }),
  );
  ran.proc.stdin.end();
  const result = await finish(ran);
  assert.equal(result.exitCode, 0, ran.err());
  const [first, ...files] = ran.out().trim().split('\n');
  assert.equal(first, `hi there /app ${APP_UID}:${APP_GID}`);
  assert.ok(files.includes('new') && files.includes('server.mjs'), files.join(' '));
  assert.ok(!existsSync(path.join(world.slugDir, 'new')), 'the slug itself is untouched');
});

test('a terminal with tty: true (tty -s, size, exit code), none without', async () => {
  const withTty = await start(
    spec('tty-1', ['sh', '-c', 'tty -s && echo is-a-tty; stty size; echo e >&2; exit 3'], {
      tty: true,
      cols: 100,
      rows: 30,
    }),
  );
  const result = await finish(withTty);
  assert.equal(result.exitCode, 3);
  assert.match(withTty.out(), /is-a-tty\r\n30 100\r\ne\r\n/);
  assert.equal(withTty.err(), '', 'a terminal merges stderr into stdout');

  const without = await start(spec('tty-2', ['tty', '-s']));
  without.proc.stdin.end();
  assert.notEqual((await finish(without)).exitCode, 0);
});

test('Ctrl-C on a terminal interrupts the command; resize reaches it', async () => {
  const ran = await start(
    spec(
      'tty-3',
      [
        'sh',
        '-c',
        'trap "stty size; exit 5" INT; trap "stty size" WINCH; echo ready; while :; do sleep 0.05; done',
      ],
      {
        tty: true,
        cols: 80,
        rows: 24,
      },
    ),
  );
  await until(() => ran.out().includes('ready'), { timeout: 10_000, message: 'the command to start' });
  ran.proc.resize(132, 50);
  await until(() => ran.out().includes('50 132'), { timeout: 10_000, message: 'the new size' });
  ran.proc.stdin.write('\x03');
  const result = await finish(ran);
  assert.equal(result.exitCode, 5, ran.out());
});

test('signal(SIGINT) ends a sleep 100', async () => {
  const ran = await start(spec('sig-1', ['sleep', '100']));
  await until(async () => (await readProcs('sig-1')).some((cmd) => cmd.startsWith('sleep')), {
    timeout: 10_000,
    message: 'sleep to run',
  });
  const t0 = Date.now();
  ran.proc.signal('SIGINT');
  const result = await finish(ran);
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(result.exitCode, 130, 'bwrap reports a signal death as 128+N');
  assert.equal(result.timedOut, false);
});

test('a one-off past its timeout is killed with everything it started', async () => {
  const ran = await start(spec('slow-1', ['sh', '-c', 'sleep 60 & sleep 60'], { timeoutMs: 300 }));
  const t0 = Date.now();
  const result = await finish(ran);
  assert.equal(result.timedOut, true);
  assert.ok(Date.now() - t0 < 10_000);
});

test('nothing is left behind: no cgroup, no workDir, and it is not an instance', async () => {
  const s = spec('clean-1', ['sh', '-c', 'echo x > /app/f; sleep 30 & echo started']);
  const ran = await start(s);
  ran.proc.stdin.end();
  assert.equal((await ran.proc.wait()).exitCode, 0);
  assert.ok(!existsSync(s.workDir), 'the work dir is removed');
  // cgroup v1 hierarchies and the v2 tree alike.
  for (const controller of ['memory', 'pids', 'cpu', '']) {
    const dir = path.join('/sys/fs/cgroup', controller, world.options.cgroupParent, 'run_clean-1');
    assert.ok(!existsSync(dir), `${dir} is removed`);
  }
  assert.deepEqual(await world.driver.list(), []);
});

test('refuses bad specs before starting anything', async () => {
  await assert.rejects(world.driver.runInteractive(spec('../x', ['true'])), /id/);
  await assert.rejects(
    world.driver.runInteractive(spec('rel-1', ['true'], { workDir: 'runs/x' })),
    /absolute/,
  );
  await assert.rejects(world.driver.runInteractive(spec('empty-1', [])), /empty/);
});

/** Command lines of the processes in a one-off's pids cgroup. */
async function readProcs(id: string): Promise<string[]> {
  const file = path.join('/sys/fs/cgroup/pids', world.options.cgroupParent, `run_${id}`, 'cgroup.procs');
  const pids = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
  return pids.map((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      return '';
    }
  });
}

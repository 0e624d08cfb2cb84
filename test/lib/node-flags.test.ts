// `petri server` re-executes itself under config.nodeFlags: the flags it lacks are added, an
// operator's own choice of a flag is kept, the pid stays, and only V8's memory and compiler
// settings are taken (a config file must not become a way to run code or open a port).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { DEFAULTS, loadConfig } from '../../src/lib/config.js';
import { missingNodeFlags } from '../../src/lib/node-flags.js';

const execFileAsync = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'petri-node-flags-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('missingNodeFlags', () => {
  it('lists the flags whose name the process was not started with', () => {
    const wanted = ['--max-semi-space-size=1', '--v8-pool-size=1', '--max-opt=2'];
    assert.deepEqual(missingNodeFlags(wanted, []), wanted);
    assert.deepEqual(missingNodeFlags(wanted, ['--import', 'tsx', '--max-opt=3']), [
      '--max-semi-space-size=1',
      '--v8-pool-size=1',
    ]);
    // V8 reads underscores as dashes; NODE_OPTIONS counts as given too; --no-X sets X.
    assert.deepEqual(missingNodeFlags(wanted, ['--max_semi_space_size=8'], ' --v8-pool-size=2  '), [
      '--max-opt=2',
    ]);
    assert.deepEqual(missingNodeFlags(['--no-maglev', '--turbofan'], ['--maglev', '--no-turbofan']), []);
    assert.deepEqual(missingNodeFlags([], ['--max-opt=3']), []);
  });
});

describe('re-executing under the flags', () => {
  // A stand-in for main.ts: re-executes itself, then says what it runs with.
  const script = path.join(dir, 'reexec.mts');
  writeFileSync(
    script,
    `import { reexecWithNodeFlags } from ${JSON.stringify(path.resolve('src/lib/node-flags.ts'))};
if (process.env.NO_EXECVE) process.execve = undefined; // Node.js before 22.15
reexecWithNodeFlags(JSON.parse(process.env.WANTED ?? '[]'), (line) => process.stderr.write(line));
process.stdout.write(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, args: process.argv.slice(2), marker: Object.keys(process.env).filter((k) => k.startsWith('PETRI_NODE_FLAGS')) }));
`,
  );
  const run = async (wanted: string[], nodeOptions?: string, noExecve = false) => {
    const child = execFileAsync(
      process.execPath,
      ['--import', 'tsx', script, 'server', '--data-dir', 'a b'],
      {
        env: {
          ...process.env,
          WANTED: JSON.stringify(wanted),
          ...(noExecve ? { NO_EXECVE: '1' } : {}),
          ...(nodeOptions === undefined ? {} : { NODE_OPTIONS: nodeOptions }),
        },
      },
    );
    const spawned = child.child.pid;
    const { stdout, stderr } = await child;
    return {
      spawned,
      stderr,
      ...(JSON.parse(stdout) as { pid: number; execArgv: string[]; args: string[]; marker: string[] }),
    };
  };

  it('adds the missing flags in the same process, keeping its arguments, and only once', async () => {
    const ran = await run([
      '--max-semi-space-size=1',
      '--v8-pool-size=1',
      '--experimental-async-context-frame',
    ]);
    assert.equal(ran.pid, ran.spawned, 'the same process');
    assert.deepEqual(ran.execArgv, [
      '--max-semi-space-size=1',
      '--v8-pool-size=1',
      // Node.js 22.7 and later have it (the tests run on 22.23 or later).
      '--experimental-async-context-frame',
      '--import',
      'tsx',
    ]);
    assert.deepEqual(ran.args, ['server', '--data-dir', 'a b']);
    assert.deepEqual(ran.marker, [], 'the marker is not passed on to what the server starts');
  });

  it("keeps the operator's own value of a flag, and re-executes nothing when none is missing", async () => {
    const ran = await run(['--max-semi-space-size=1'], '--max-semi-space-size=4');
    assert.deepEqual(ran.execArgv, ['--import', 'tsx']);
  });
  it("runs on with V8's defaults on a Node.js without process.execve, and says so", async () => {
    const ran = await run(['--max-opt=2'], undefined, true);
    assert.deepEqual(ran.execArgv, ['--import', 'tsx']);
    assert.match(ran.stderr, /cannot re-execute itself .*running without nodeFlags --max-opt=2/);
  });
});

describe('config.nodeFlags', () => {
  it('defaults to the flags for a mostly idle server; [] for V8 defaults', () => {
    assert.deepEqual(loadConfig({ dataDir: dir }).nodeFlags, DEFAULTS.nodeFlags);
    assert.ok(DEFAULTS.nodeFlags.includes('--max-semi-space-size=1'));
    const file = path.join(dir, 'none.json');
    writeFileSync(file, JSON.stringify({ nodeFlags: [] }));
    assert.deepEqual(loadConfig({ dataDir: dir, configFile: file }).nodeFlags, []);
  });

  it("takes V8's memory and compiler settings only: nothing that runs code, opens a port, reads settings late or ends the process", () => {
    const file = path.join(dir, 'flags.json');
    const load = (nodeFlags: unknown) => {
      writeFileSync(file, JSON.stringify({ nodeFlags }));
      return loadConfig({ dataDir: dir, configFile: file }).nodeFlags;
    };
    const good = [
      '--max-old-space-size=512',
      '--no-turbofan',
      '--maglev',
      '--optimize-for-size',
      '--max-opt=3',
    ];
    assert.deepEqual(load(good), good);
    for (const bad of [
      ['--inspect=0.0.0.0:9229'], // a debugger for anyone on the network: code as root
      ['--import=/tmp/x.mjs'],
      ['--require=./x.cjs'],
      ['--eval=process.exit'], // a server that never runs
      ['--version'],
      ['--env-file=/tmp/x.env'], // PETRI_* read after the config was checked
      ['--heapsnapshot-signal=SIGTERM'], // the heap (secrets) written at every stop
      ['--title=x'],
      ['max-opt=2'],
      ['--max-opt=2 --jitless'],
      ['--max-opt=two'],
      ['--max_opt=2'],
      ['--import', 'tsx'],
      Array.from({ length: 17 }, () => '--max-opt=2'),
      '--max-opt=2',
    ]) {
      assert.throws(
        () => load(bad),
        /configuration 'nodeFlags' must be up to 16 of V8's memory and compiler settings|must be a list of strings/,
        JSON.stringify(bad),
      );
    }
  });
});

// `petri server` re-executes itself under config.nodeFlags: the flags it lacks are added, an
// operator's own choice of a flag is kept, the pid stays, and a flag Node.js refuses is an
// error that names it.
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
    // V8 reads underscores as dashes; NODE_OPTIONS counts as given too.
    assert.deepEqual(missingNodeFlags(wanted, ['--max_semi_space_size=8'], ' --v8-pool-size=2  '), [
      '--max-opt=2',
    ]);
    assert.deepEqual(missingNodeFlags([], ['--max-opt=3']), []);
  });
});

describe('re-executing under the flags', () => {
  // A stand-in for main.ts: re-executes itself, then says what it runs with.
  const script = path.join(dir, 'reexec.mts');
  writeFileSync(
    script,
    `import { reexecWithNodeFlags } from ${JSON.stringify(path.resolve('src/lib/node-flags.ts'))};
try {
  await reexecWithNodeFlags(JSON.parse(process.env.WANTED ?? '[]'), process.env.CHECKED === '1');
} catch (err) {
  process.stderr.write(String(err.message));
  process.exit(3);
}
process.stdout.write(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, args: process.argv.slice(2), marker: Object.keys(process.env).filter((k) => k.startsWith('PETRI_NODE_FLAGS')) }));
`,
  );
  const run = async (wanted: string[], checked = false, nodeOptions?: string) => {
    const child = execFileAsync(
      process.execPath,
      ['--import', 'tsx', script, 'server', '--data-dir', 'a b'],
      {
        env: {
          ...process.env,
          WANTED: JSON.stringify(wanted),
          CHECKED: checked ? '1' : '0',
          ...(nodeOptions === undefined ? {} : { NODE_OPTIONS: nodeOptions }),
        },
      },
    );
    const spawned = child.child.pid;
    const { stdout } = await child;
    return {
      spawned,
      ...(JSON.parse(stdout) as { pid: number; execArgv: string[]; args: string[]; marker: string[] }),
    };
  };

  it('adds the missing flags in the same process, keeping its arguments, and only once', async () => {
    const ran = await run(['--max-semi-space-size=1', '--v8-pool-size=1']);
    assert.equal(ran.pid, ran.spawned, 'the same process');
    assert.deepEqual(ran.execArgv, ['--max-semi-space-size=1', '--v8-pool-size=1', '--import', 'tsx']);
    assert.deepEqual(ran.args, ['server', '--data-dir', 'a b']);
    assert.deepEqual(ran.marker, [], 'the marker is not passed on to what the server starts');
  });

  it("keeps the operator's own value of a flag, and re-executes nothing when none is missing", async () => {
    const ran = await run(['--max-semi-space-size=1'], false, '--max-semi-space-size=4');
    assert.deepEqual(ran.execArgv, ['--import', 'tsx']);
  });

  it('refuses a flag Node.js does not know, naming it, when the flags are not the defaults', async () => {
    await assert.rejects(run(['--max-semi-space-size=1', '--no-such-flag-anywhere'], true), (err: Error) => {
      assert.match(
        String((err as { stderr?: string }).stderr),
        /nodeFlags: Node\.js v[0-9.]+ does not start with .*--no-such-flag-anywhere/,
      );
      return true;
    });
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

  it('refuses what is not a flag, words with spaces or shell characters, and long lists', () => {
    for (const bad of [
      ['max-opt=2'],
      ['--max-opt=2 --jitless'],
      ['--eval=require("fs")'],
      ['--import', 'tsx'],
      Array.from({ length: 33 }, (_, i) => `--flag-${i}`),
      '--max-opt=2',
    ]) {
      const file = path.join(dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ nodeFlags: bad }));
      assert.throws(
        () => loadConfig({ dataDir: dir, configFile: file }),
        /configuration 'nodeFlags' must be/,
      );
    }
  });
});

// Descriptors a launcher leaked into the control plane must not reach the sandboxes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

test('closeInheritedFds closes an inherited descriptor without close-on-exec, and only that', () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const script = [
    "import { closeInheritedFds } from './src/lib/process.ts';",
    "import { readdirSync } from 'node:fs';",
    'const closed = closeInheritedFds();',
    "const open = readdirSync('/proc/self/fd').map(Number);",
    'console.log(JSON.stringify({ closed, stillOpen: open.includes(200) }));',
  ].join('\n');
  // bash opens fd 200 without close-on-exec (dash cannot open one that high), as a careless launcher would.
  const run = spawnSync(
    'bash',
    [
      '-c',
      'exec 200</dev/null; exec "$@"',
      'bash',
      process.execPath,
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ],
    { cwd: root, encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
    closed: number[];
    stillOpen: boolean;
  };
  assert.ok(result.closed.includes(200), `closed ${result.closed}`);
  assert.equal(result.stillOpen, false);
});

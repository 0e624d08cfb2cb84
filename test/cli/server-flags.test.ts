// `petri server`'s own flags (read with node:util, not commander): help, and a bad flag
// named with the usage, before anything starts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const MAIN = path.resolve('src/main.ts');

async function server(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return execFileAsync(process.execPath, ['--import', 'tsx', MAIN, 'server', ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
}

describe('petri server flags', () => {
  it('--help lists every flag with its default, and starts nothing', async () => {
    const { code, stdout } = await server(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: petri server \[options\]/);
    for (const flag of [
      '--data-dir <dir>',
      '--domain <domain>',
      '--http-port <port>',
      '--https-port <port>',
      '--api-port <port>',
      '--config <file>',
      '--stop-all',
      '-h, --help',
    ])
      assert.ok(stdout.includes(flag), flag);
    assert.match(stdout, /default: \.\/\.petri/);
  });

  it('an unknown flag, a flag without its value or an argument: exit 1, named, with the usage', async () => {
    for (const [args, said] of [
      [['--bogus'], /^error: unknown option '--bogus'/],
      [['--data-dir'], /^error: Option '--data-dir <value>' argument missing/],
      [['start'], /^error: Unexpected argument 'start'/],
    ] as const) {
      const { code, stderr } = await server([...args]);
      assert.equal(code, 1, args.join(' '));
      assert.match(stderr, said);
      assert.match(stderr, /Usage: petri server/);
    }
  });
});

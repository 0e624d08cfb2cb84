// `petri` as a process whose stdout is a pipe that a slower reader empties: a long answer
// arrives whole (process.exit used to drop what the pipe had not taken yet, so
// `petri apps --json | jq` got the first 64 KiB of a list of a few hundred apps).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { cannedApps, type FakeApi, startFakeApi, TOKEN } from './fake-api.js';
import { envFor, tempDir } from './harness.js';

const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');

describe('petri through a pipe', () => {
  let fake: FakeApi;
  let config: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    fake = await startFakeApi();
    config = await tempDir();
    const [model] = cannedApps();
    if (!model) throw new Error('no canned app');
    for (let i = 1; i <= 400; i++) fake.apps.set(`app-${i}`, { ...model, name: `app-${i}` });
  });
  after(async () => {
    await fake.close();
    await config.remove();
  });

  test('a list longer than the pipe holds reaches a reader that starts late', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'apps', '--json'], {
      env: { ...process.env, ...envFor(fake.url, TOKEN, config.dir) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pause();
    let exited = false;
    const code = new Promise<number | null>((resolve) =>
      child.once('exit', (c) => {
        exited = true;
        resolve(c);
      }),
    );
    // The reader starts once the command has ended, or has its answer and waits (for the pipe).
    await until(
      () =>
        exited ||
        (fake.requests.some((r) => r.url === '/v1/apps') &&
          /epoll/.test(readFileSync(`/proc/${child.pid}/wchan`, 'utf8'))),
      { timeout: 30_000, message: 'petri apps --json neither ended nor waited' },
    );
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stdout.resume();
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    assert.equal(await code, 0, stderr);
    await until(() => child.stdout.readableEnded || child.stdout.destroyed, { timeout: 10_000 });
    const text = Buffer.concat(chunks).toString('utf8');
    assert.ok(text.length > 200_000, `only ${text.length} bytes`);
    const apps = JSON.parse(text) as { name: string }[];
    assert.equal(apps.length, fake.apps.size);
  });
});

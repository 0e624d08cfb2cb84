import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../../src/lib/until.js';
import { LogStore } from '../../src/logs/log-store.js';
import { OutputTailer } from '../../src/runtime/local/output-tailer.js';

let root: string;
const tailers: OutputTailer[] = [];
before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'petri-tailer-'));
});
after(() => {
  for (const t of tailers) t.close();
  fs.rmSync(root, { recursive: true, force: true });
});

let n = 0;
function world(): { store: LogStore; file: string } {
  const dir = path.join(root, `w${++n}`);
  const file = path.join(dir, 'apps/myapp/instances/web.1-abc/output.log');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return { store: new LogStore({ dir: path.join(dir, 'logs') }), file };
}

function tailer(store: LogStore, opts: ConstructorParameters<typeof OutputTailer>[1] = {}): OutputTailer {
  const t = new OutputTailer(store, { pollMs: 20, ...opts });
  tailers.push(t);
  return t;
}

// Runs a shell script with stdout and stderr appended to file, the way the runtime starts instances.
async function runInto(file: string, script: string): Promise<void> {
  const fd = fs.openSync(file, 'a');
  try {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', fd, fd] });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', resolve);
    });
    assert.equal(code, 0);
  } finally {
    fs.closeSync(fd);
  }
}

const texts = (store: LogStore) => store.read('myapp').map((l) => `${l.source}: ${l.text}`);

describe('OutputTailer', () => {
  it('a line written after a long quiet spell is stored at once, not at the next (backed-off) poll', async () => {
    const { store, file } = world();
    fs.writeFileSync(file, 'first\n');
    const t = tailer(store, { pollMs: 200 });
    t.watch(file, 'myapp', 'web.1');
    await until(() => store.read('myapp').length === 1, { timeout: 5000, message: 'the first line' });
    // Quiet long enough for polls to back off past a second (200, 400, 800, 1600 ms ...).
    await new Promise((r) => setTimeout(r, 3500));
    const written = performance.now();
    await runInto(file, 'echo second');
    await until(() => store.read('myapp').length === 2, { timeout: 5000, message: 'the second line' });
    const late = performance.now() - written;
    assert.ok(late < 600, `stored ${Math.round(late)} ms after it was written`);
  });

  it('stores the lines another process writes to the raw file', async () => {
    const { store, file } = world();
    const t = tailer(store);
    t.watch(file, 'myapp', 'web.1'); // before the file exists
    await runInto(file, 'echo a; echo b >&2');
    await until(() => store.read('myapp').length === 2, { timeout: 5000, message: 'two lines' });
    assert.deepEqual(texts(store), ['web.1: a', 'web.1: b']);
  });

  it('resumes after a restart without repeating or losing lines', async () => {
    const { store, file } = world();
    const first = tailer(store);
    first.watch(file, 'myapp', 'web.1');
    await runInto(file, 'echo a; echo b');
    first.flushNow();
    assert.deepEqual(texts(store), ['web.1: a', 'web.1: b']);
    first.close();

    // Written while no tailer runs, as when the control plane is down.
    await runInto(file, 'echo c');
    const second = tailer(store);
    second.watch(file, 'myapp', 'web.1');
    await until(() => store.read('myapp').length >= 3, { timeout: 5000, message: 'line c' });
    await runInto(file, 'echo d');
    await until(() => store.read('myapp').length >= 4, { timeout: 5000, message: 'line d' });
    assert.deepEqual(texts(store), ['web.1: a', 'web.1: b', 'web.1: c', 'web.1: d']);
  });

  it('keeps a partial line in the raw file until it is complete, and stores it on unwatch', async () => {
    const { store, file } = world();
    const t = tailer(store);
    t.watch(file, 'myapp', 'web.1');
    await runInto(file, 'printf "one\\ntw"');
    t.flushNow();
    assert.deepEqual(texts(store), ['web.1: one']);
    await runInto(file, 'printf "o\\nthr"');
    t.flushNow();
    assert.deepEqual(texts(store), ['web.1: one', 'web.1: two']);
    t.unwatch(file);
    assert.deepEqual(texts(store), ['web.1: one', 'web.1: two', 'web.1: thr']);
  });

  it('stores a partial line that stopped growing', async () => {
    const { store, file } = world();
    const t = tailer(store, { staleLineMs: 100 });
    t.watch(file, 'myapp', 'web.1');
    await runInto(file, 'printf "Password: "');
    await until(() => store.read('myapp').length === 1, { timeout: 5000, message: 'stale line' });
    assert.deepEqual(texts(store), ['web.1: Password: ']);
  });

  it('starts over when someone else truncates the file', async () => {
    const { store, file } = world();
    const t = tailer(store);
    t.watch(file, 'myapp', 'web.1');
    await runInto(file, 'echo first; echo second');
    t.flushNow();
    fs.truncateSync(file, 0);
    await runInto(file, 'echo x');
    t.flushNow();
    assert.deepEqual(texts(store), ['web.1: first', 'web.1: second', 'web.1: x']);
  });

  it('truncates a fully consumed raw file above the threshold and keeps going', async () => {
    const { store, file } = world();
    const t = tailer(store, { truncateAboveBytes: 10 });
    t.watch(file, 'myapp', 'web.1');
    await runInto(file, 'echo 0123456789; echo abcdefghij');
    t.flushNow();
    assert.equal(fs.statSync(file).size, 0);
    assert.equal(JSON.parse(fs.readFileSync(`${file}.offset`, 'utf8')).offset, 0);
    await runInto(file, 'echo more');
    t.flushNow();
    assert.deepEqual(texts(store), ['web.1: 0123456789', 'web.1: abcdefghij', 'web.1: more']);

    // A restart after the truncate does not replay anything either.
    t.close();
    const again = tailer(store);
    again.watch(file, 'myapp', 'web.1');
    again.flushNow();
    assert.equal(store.read('myapp').length, 3);
  });

  it('refuses bad app and source names', () => {
    const { store, file } = world();
    const t = tailer(store);
    assert.throws(() => t.watch(file, '../x', 'web.1'), /app name must match/);
    assert.throws(() => t.watch(file, 'myapp', 'web/1'), /log source must be/);
  });
});

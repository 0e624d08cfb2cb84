import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../../src/lib/until.js';
import { type LogLine, LogStore } from '../../src/logs/log-store.js';

let root: string;
before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'petri-logs-'));
});
after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

let n = 0;
function newDir(): string {
  return path.join(root, `store-${++n}`);
}

const texts = (lines: LogLine[]) => lines.map((l) => l.text);

describe('LogStore', () => {
  it('returns the last N lines in order, with time and source', () => {
    const store = new LogStore({ dir: newDir() });
    const t = new Date('2026-11-25T19:00:01.123Z');
    store.append('myapp', 'web.1', 'one\ntwo\nthree\n', t);
    assert.deepEqual(texts(store.read('myapp', { lines: 2 })), ['two', 'three']);
    assert.deepEqual(store.read('myapp', { lines: 1 }), [
      { time: '2026-11-25T19:00:01.123Z', source: 'web.1', text: 'three' },
    ]);
    assert.equal(store.read('myapp').length, 3);
    assert.deepEqual(store.read('myapp', { lines: 0 }), []);
    assert.deepEqual(store.read('other'), []);
  });

  it('filters by source and time', () => {
    const store = new LogStore({ dir: newDir() });
    store.append('myapp', 'build', 'added 3 packages\n', new Date('2026-01-01T00:00:00Z'));
    store.append('myapp', 'web.1', 'listening on 5000\n', new Date('2026-01-02T00:00:00Z'));
    store.append('myapp', 'build', 'done\n', new Date('2026-01-03T00:00:00Z'));
    assert.deepEqual(texts(store.read('myapp', { sources: ['build'] })), ['added 3 packages', 'done']);
    assert.deepEqual(texts(store.read('myapp', { since: new Date('2026-01-02T00:00:00Z') })), [
      'listening on 5000',
      'done',
    ]);
  });

  it('joins partial lines per source and stores the rest on flush', () => {
    const store = new LogStore({ dir: newDir() });
    store.append('myapp', 'web.1', 'hel');
    store.append('myapp', 'build', 'compil');
    store.append('myapp', 'web.1', 'lo\nwor');
    assert.deepEqual(texts(store.read('myapp')), ['hello']);
    store.append('myapp', 'build', 'ing\n');
    store.flush('myapp', 'web.1');
    assert.deepEqual(
      store.read('myapp').map((l) => `${l.source}: ${l.text}`),
      ['web.1: hello', 'build: compiling', 'web.1: wor'],
    );
  });

  it('drops carriage returns and terminal control sequences but keeps tabs', () => {
    const store = new LogStore({ dir: newDir() });
    store.append('myapp', 'build', '\x1b[31mred\x1b[0m\tok\r\n\x07bell\x1b]0;title\x07\n\x1b[2J\n\n');
    assert.deepEqual(texts(store.read('myapp')), ['red\tok', 'bell', '']);
  });

  it('keeps about twice the cap when writing three times it, and still reads the newest lines', () => {
    const dir = newDir();
    const cap = 10_000;
    const store = new LogStore({ dir, maxBytesPerApp: cap });
    let written = 0;
    let i = 0;
    while (written < 3 * cap) {
      const line = `line ${String(i++).padStart(5, '0')}`;
      store.append('myapp', 'web.1', `${line}\n`);
      written += line.length + 1;
    }
    const sizes = ['myapp.log', 'myapp.log.1'].map((f) => fs.statSync(path.join(dir, f)).size);
    assert.ok(
      sizes.every((s) => s <= cap),
      `each generation under the cap: ${sizes}`,
    );
    const lines = store.read('myapp', { lines: 150 });
    assert.equal(lines.length, 150, 'enough lines are kept to span both generations');
    const expected = Array.from({ length: 150 }, (_, k) => `line ${String(i - 150 + k).padStart(5, '0')}`);
    assert.deepEqual(texts(lines), expected);
  });

  it('follow delivers lines appended after the call, from any store, and stops on abort', async () => {
    const dir = newDir();
    const store = new LogStore({ dir });
    const other = new LogStore({ dir });
    store.append('myapp', 'web.1', 'before\n');
    const got: string[] = [];
    const ac = new AbortController();
    const done = store.follow('myapp', (l) => got.push(l.text), ac.signal);
    store.append('myapp', 'web.1', 'same store\n');
    other.append('myapp', 'web.1', 'other store\n');
    store.append('otherapp', 'web.1', 'not mine\n');
    // As another process would write it: no in-process event, only the file grows.
    const row = JSON.stringify({ t: new Date().toISOString(), s: 'web.1', m: 'other process' });
    fs.appendFileSync(path.join(dir, 'myapp.log'), `${row}\n`);
    await until(() => got.length >= 3, { timeout: 5000, message: 'followed lines' });
    assert.deepEqual(got, ['same store', 'other store', 'other process']);
    ac.abort();
    await done;
    store.append('myapp', 'web.1', 'after abort\n');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(got, ['same store', 'other store', 'other process']);
  });

  it('follow keeps up across rotation without losing or repeating lines', async () => {
    const store = new LogStore({ dir: newDir(), maxBytesPerApp: 2_000 });
    const got: string[] = [];
    const ac = new AbortController();
    const done = store.follow('myapp', (l) => got.push(l.text), ac.signal);
    const sent: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const lines = Array.from({ length: 10 }, (_, k) => `b${batch} l${k}`);
      sent.push(...lines);
      store.append('myapp', 'web.1', lines.map((l) => `${l}\n`).join(''));
      // Let the follower run between batches, as a real producer would.
      await until(() => got.length === sent.length, { timeout: 5000, message: `batch ${batch}` });
    }
    assert.deepEqual(got, sent);
    ac.abort();
    await done;
  });

  it("follow stops when the app's logs are removed, and never reads a new file of that name", async () => {
    const dir = newDir();
    const store = new LogStore({ dir });
    store.append('myapp', 'web.1', 'old app\n');
    const got: string[] = [];
    // In this process: remove() stops the follower at once, before the new app writes.
    const first = store.follow('myapp', (l) => got.push(l.text), new AbortController().signal);
    store.remove('myapp');
    store.append('myapp', 'web.1', 'new app, same name\n');
    assert.equal(await first, 'removed');
    // By another process: the file is replaced by one that is not a rotation of it.
    const second = store.follow('myapp', (l) => got.push(l.text), new AbortController().signal);
    fs.rmSync(path.join(dir, 'myapp.log'));
    const row = JSON.stringify({ t: new Date().toISOString(), s: 'web.1', m: 'another app again' });
    fs.writeFileSync(path.join(dir, 'myapp.log'), `${row}\n`.repeat(3));
    assert.equal(await second, 'removed');
    assert.deepEqual(got, []);
  });

  it('remove deletes the logs of the app', () => {
    const dir = newDir();
    const store = new LogStore({ dir, maxBytesPerApp: 100 });
    for (let i = 0; i < 20; i++) store.append('myapp', 'web.1', `line ${i}\n`);
    store.append('myapp', 'web.1', 'partial');
    store.remove('myapp');
    assert.deepEqual(fs.readdirSync(dir), []);
    store.flush('myapp', 'web.1');
    assert.deepEqual(store.read('myapp'), []);
  });

  it('refuses app and source names that are not safe file names', () => {
    const store = new LogStore({ dir: newDir() });
    for (const app of ['My App', '../etc', 'a', 'x/y', '', 'a'.repeat(31), '1app']) {
      assert.throws(() => store.append(app, 'web.1', 'x\n'), /app name must match/, app);
      assert.throws(() => store.read(app), /app name must match/, app);
    }
    for (const source of ['', '../../passwd', 'web/1', 'Web.1', 'web.', 'web.1.2', 'a b']) {
      assert.throws(() => store.append('myapp', source, 'x\n'), /log source must be/, source);
    }
    assert.deepEqual(fs.readdirSync(store.dir), []);
  });
});

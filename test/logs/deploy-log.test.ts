// A deploy's log is capped like an app's (issue 11: `yes` in a build wrote 216 MiB in 10 s
// with the API stalled, and 95 MiB without a newline sat in memory, re-split per chunk):
// 5 MiB on disk then one truncation line, lines cut at 16 KiB, Petri's own lines still
// written past the cap, and read back in windows of at most 1 MiB.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { DeployLogs, readDeployLog } from '../../src/logs/deploy-log.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(path.join(tmpdir(), 'petri-deploy-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const logs = new DeployLogs((_app, deploy) => path.join(dir, deploy, 'build.log'));
const fileOf = (deploy: string) => path.join(dir, deploy, 'build.log');
const linesOf = (deploy: string) =>
  readFileSync(fileOf(deploy), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { source: string; text: string });

describe('deploy logs are capped', () => {
  test('64 MiB of `yes`: at most 5 MiB kept, one truncation line, Petri lines still written', (t) => {
    const chunk = 'y\n'.repeat(32 * 1024);
    const started = Date.now();
    let slowest = 0;
    let passedOn = 0;
    for (let i = 0; i < 1024 && Date.now() - started < 20_000; i++) {
      const t0 = performance.now();
      passedOn += (logs.append(1, 'yes', 'build', chunk) ?? '').length;
      slowest = Math.max(slowest, performance.now() - t0);
    }
    logs.append(1, 'yes', 'build', '-----> Build finished in 10.0 s\n');
    logs.close('yes');
    const size = statSync(fileOf('yes')).size;
    t.diagnostic(
      `64 MiB of output in ${Date.now() - started} ms, slowest append ${slowest.toFixed(1)} ms, log ${(size / MiB).toFixed(2)} MiB, ${(passedOn / MiB).toFixed(1)} MiB passed on`,
    );
    assert.ok(size <= 5 * MiB + 64 * 1024, `log of ${size} bytes`);
    const lines = linesOf('yes');
    assert.equal(lines.filter((l) => /output truncated/.test(l.text)).length, 1);
    assert.equal(lines.at(-1)?.text, '-----> Build finished in 10.0 s');
    assert.ok(passedOn < 6 * MiB, 'past the cap, the flood is not passed on to the app log');
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });

  test('100 MB without a newline: one line cut at 16 KiB, in bounded time and memory', (t) => {
    const chunk = 'a'.repeat(64 * 1024);
    const started = Date.now();
    for (let i = 0; i < 1526 && Date.now() - started < 20_000; i++) logs.append(1, 'line', 'build', chunk);
    logs.append(1, 'line', 'build', '\nnext\n');
    logs.close('line');
    const ms = Date.now() - started;
    const lines = linesOf('line');
    t.diagnostic(`100 MB in ${ms} ms; ${lines.length} lines, first ${lines[0]?.text.length} characters`);
    assert.ok(ms < 3000, `took ${ms} ms`);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!.text, /^a{16384} \[line cut at 16384 characters\]$/);
    assert.equal(lines[1]!.text, 'next');
  });

  test('a big log (from before the cap) is read in windows of 1 MiB; a line longer than one is skipped', () => {
    const file = path.join(dir, 'old.log');
    const line = `${JSON.stringify({ time: 't', source: 'build', text: 'x'.repeat(1000) })}\n`;
    writeFileSync(file, line.repeat(20 * 1024)); // ~20 MiB
    appendFileSync(file, `${JSON.stringify({ time: 't', source: 'build', text: 'y'.repeat(3 * MiB) })}\n`);
    appendFileSync(file, `${JSON.stringify({ time: 't', source: 'build', text: 'end' })}\n`);
    let offset = 0;
    let reads = 0;
    let count = 0;
    let last = '';
    for (;;) {
      const r = readDeployLog(file, offset);
      assert.ok(r.offset - offset <= MiB, 'at most a window per read');
      offset = r.offset;
      count += r.lines.length;
      last = r.lines.at(-1)?.text ?? last;
      reads += 1;
      if (!r.more) break;
    }
    assert.equal(count, 20 * 1024 + 1);
    assert.equal(last, 'end');
    assert.ok(reads > 20, `${reads} reads`);
  });
});

// The loop helper every control-plane loop uses: nudges run a pass soon, stop waits for the
// pass in flight, and a pass failing the same way is logged once, not once per pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Loop } from '../../src/lib/loop.js';
import { until } from '../../src/lib/until.js';

const quiet = () => {
  const lines: string[] = [];
  return { lines, logger: { error: (_: object, msg: string) => lines.push(msg), info: () => {} } };
};

test('stop() resolves only after the pass in flight has ended, and no pass starts after it', async () => {
  let passes = 0;
  let finished = false;
  const loop = new Loop({
    what: 'test',
    intervalMs: 5,
    logger: quiet().logger,
    pass: async () => {
      passes++;
      await new Promise((r) => setTimeout(r, 100));
      finished = true;
    },
  });
  loop.start();
  await until(() => passes === 1, { timeout: 2000 });
  await loop.stop();
  assert.equal(finished, true);
  const after = passes;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(passes, after);
});

test('a nudge runs a pass soon, a nudge during a pass runs one more after it', async () => {
  let passes = 0;
  const loop = new Loop({
    what: 'test',
    intervalMs: 60_000,
    logger: quiet().logger,
    pass: async () => {
      passes++;
      await new Promise((r) => setTimeout(r, 30));
    },
  });
  loop.start();
  await until(() => passes === 1, { timeout: 2000 });
  loop.nudge();
  await until(() => passes === 2, { timeout: 2000 });
  await loop.stop();
});

test('a pass failing the same way is logged once and retried after a delay, not in a hot loop', async () => {
  const { lines, logger } = quiet();
  let passes = 0;
  const loop = new Loop({
    what: 'failing',
    intervalMs: 1,
    logger,
    pass: async () => {
      passes++;
      throw new Error('always');
    },
  });
  loop.start();
  await new Promise((r) => setTimeout(r, 300));
  await loop.stop();
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /failing failed/);
  assert.ok(passes <= 2, `${passes} passes in 300 ms`);
});

test('maxBackoffMs caps the delay between failing passes (the reconciler tries again every second)', async () => {
  const at: number[] = [];
  const loop = new Loop({
    what: 'failing',
    intervalMs: 1,
    maxBackoffMs: 500,
    logger: quiet().logger,
    pass: async () => {
      at.push(Date.now());
      throw new Error('always');
    },
  });
  loop.start();
  // Uncapped, the fourth pass would come 1 + 2 + 4 s after the first.
  await until(() => at.length >= 4, { timeout: 3000 });
  await loop.stop();
  const gaps = at.slice(1, 4).map((t, i) => t - at[i]!);
  assert.ok(
    gaps.every((g) => g < 900),
    `gaps ${gaps.join(', ')} ms`,
  );
});

test('quiet passes come less and less often, up to quietMaxMs apart; a nudge or a pass with work brings the interval back', async () => {
  const at: number[] = [];
  let work = false;
  const loop = new Loop({
    what: 'quiet',
    intervalMs: 10,
    quietMaxMs: 80,
    logger: quiet().logger,
    pass: async () => {
      at.push(performance.now());
      return work ? undefined : 'quiet';
    },
  });
  loop.start();
  await until(() => at.length >= 6, { timeout: 5000 });
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  // 20, 40, 80, 80 ... (never more than the cap, plus timer slack)
  assert.ok(gaps[gaps.length - 1]! >= 70, `gaps ${gaps.map(Math.round)}`);
  assert.ok(Math.max(...gaps) < 200, `gaps ${gaps.map(Math.round)}`);
  // A nudge: the next pass at once, and the one after it at the interval again.
  work = true;
  const nudged = performance.now();
  const seen = at.length;
  loop.nudge();
  await until(() => at.length >= seen + 3, { timeout: 5000 });
  await loop.stop();
  assert.ok(at[seen]! - nudged < 40, `nudged pass ${Math.round(at[seen]! - nudged)} ms later`);
  assert.ok(at[seen + 2]! - at[seen + 1]! < 40, 'a pass with work keeps the interval');
});

test('with nudgeGapMs, a flood of nudges runs a pass at most once per gap, and the last nudge is never lost', async () => {
  let passes = 0;
  const loop = new Loop({
    what: 'gap',
    intervalMs: 60_000,
    nudgeGapMs: 200,
    logger: quiet().logger,
    pass: async () => {
      passes++;
    },
  });
  loop.start();
  await until(() => passes === 1, { timeout: 2000 });
  const started = performance.now();
  while (performance.now() - started < 500) {
    loop.nudge();
    await new Promise((r) => setTimeout(r, 5));
  }
  // 500 ms of nudges every 5 ms: about 3 passes, not 100.
  assert.ok(passes <= 5, `${passes} passes`);
  const before = passes;
  await until(() => passes === before + 1, { timeout: 2000, message: 'a pass for the last nudge' });
  // runNow() still waits for a pass of its own.
  const now = passes;
  await loop.runNow();
  assert.equal(passes, now + 1);
  await loop.stop();
});

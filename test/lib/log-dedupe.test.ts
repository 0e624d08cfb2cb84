// Repeated identical errors are logged once, then as a count a minute, then as a count when
// they stop; a different error is logged at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from '../../src/lib/backoff.js';
import { RepeatedErrorLog } from '../../src/lib/log-dedupe.js';

test('the same error on the same object is one line, then a count per minute, then a count at the end', () => {
  let now = 0;
  const lines: string[] = [];
  const logger = {
    error: (_: object, msg: string) => lines.push(msg),
    info: (_: object, msg: string) => lines.push(msg),
  };
  const log = new RepeatedErrorLog(logger, { now: () => now });
  for (let i = 0; i < 700; i++) {
    log.error('stop a', new Error('runtime id must match'), 'instance stop failed');
    now += 100;
  }
  assert.deepEqual(lines, [
    'instance stop failed',
    'instance stop failed (the same error 600 more times in the last 60 s)',
  ]);
  log.error('stop a', new Error('something else'), 'instance stop failed');
  assert.equal(lines.length, 4, lines.join('\n'));
  assert.match(lines[2]!, /99 more times in the last 10 s/);
  log.error('stop a', new Error('something else'), 'instance stop failed');
  log.resolved('stop a');
  assert.match(lines[4]!, /1 more time in/);
});

test('backoff doubles per object up to its cap and starts afresh after a success', () => {
  let now = 0;
  const b = new Backoff({ initialMs: 1000, maxMs: 8000, now: () => now });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => b.failed('x')),
    [1000, 2000, 4000, 8000, 8000],
  );
  assert.equal(b.ready('x'), false);
  assert.equal(b.ready('y'), true);
  now += 8000;
  assert.equal(b.ready('x'), true);
  b.succeeded('x');
  assert.equal(b.failed('x'), 1000);
});

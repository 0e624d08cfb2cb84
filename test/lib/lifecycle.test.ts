// The lifecycle registry the composition root lists its components in: started in order,
// stopped in reverse, each stop awaited before the next, a failing stop skipping none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lifecycle } from '../../src/lib/lifecycle.js';

const recorder = () => {
  const lines: { msg: string; obj: Record<string, unknown> }[] = [];
  const push = (obj: object, msg: string) => lines.push({ msg, obj: obj as Record<string, unknown> });
  return { lines, logger: { info: push, error: push } };
};
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('components start in the order added and stop in reverse, each stop awaited before the next', async () => {
  const { lines, logger } = recorder();
  const life = new Lifecycle(logger);
  const events: string[] = [];
  for (const name of ['store', 'driver', 'api']) {
    await life.add(
      name,
      () => events.push(`start ${name}`),
      async () => {
        events.push(`stop ${name}`);
        await tick(20);
        events.push(`stopped ${name}`);
      },
    );
  }
  await life.stop();
  assert.deepEqual(events, [
    'start store',
    'start driver',
    'start api',
    'stop api',
    'stopped api',
    'stop driver',
    'stopped driver',
    'stop store',
    'stopped store',
  ]);
  // How long each took is logged, in the order they stopped.
  assert.deepEqual(
    lines.map((l) => l.obj.component),
    ['api', 'driver', 'store'],
  );
  assert.ok(
    lines.every((l) => typeof l.obj.ms === 'number' && l.obj.ms >= 15),
    JSON.stringify(lines),
  );
});

test('add() resolves with what start made, and stop() gets it back', async () => {
  const life = new Lifecycle(recorder().logger);
  let closed: { port: number } | undefined;
  const server = await life.add(
    'server',
    async () => ({ port: 7 }),
    (s) => {
      closed = s;
    },
  );
  assert.equal(server.port, 7);
  await life.stop();
  assert.equal(closed, server);
});

test('a failing stop is logged and the others still stop', async () => {
  const { lines, logger } = recorder();
  const life = new Lifecycle(logger);
  const stopped: string[] = [];
  await life.add(
    'store',
    () => {},
    () => stopped.push('store'),
  );
  await life.add(
    'broken',
    () => {},
    async () => {
      throw new Error('cannot close');
    },
  );
  await life.add('router', () => {}); // no stop: keeps serving
  await life.add(
    'api',
    () => {},
    () => stopped.push('api'),
  );
  await life.stop();
  assert.deepEqual(stopped, ['api', 'store']);
  const failed = lines.find((l) => l.obj.component === 'broken');
  assert.match(String(failed?.obj.err), /cannot close/);
});

test('stop() called twice stops each component once; the second call waits for the first', async () => {
  const life = new Lifecycle(recorder().logger);
  let stops = 0;
  let done = false;
  await life.add(
    'slow',
    () => {},
    async () => {
      stops++;
      await tick(30);
      done = true;
    },
  );
  const first = life.stop();
  await life.stop();
  assert.equal(done, true);
  await first;
  assert.equal(stops, 1);
});

test('a start that fails stops what was started before it, then throws', async () => {
  const life = new Lifecycle(recorder().logger);
  const stopped: string[] = [];
  await life.add(
    'store',
    () => {},
    () => stopped.push('store'),
  );
  await life.add(
    'driver',
    () => {},
    () => stopped.push('driver'),
  );
  await assert.rejects(
    life.add('api', () => {
      throw new Error('port taken');
    }),
    /port taken/,
  );
  assert.deepEqual(stopped, ['driver', 'store']);
});

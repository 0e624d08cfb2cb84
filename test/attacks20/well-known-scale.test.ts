// Attack (issue 20, shared cost): the router's well-known map costs ~15 ms per entry, serialized
// with every route change. Each setWellKnown (haproxy-router.ts changeWellKnown) reads and
// parses the whole map file, asks HAProxy for the whole running map (`show map`), sends the
// change and writes the whole file again; the domain verifier sets every claim's token again
// at each control-plane start (its record of what it served is in memory). Claims are cheap:
// 20 per app, 20 apps per team, 20 teams (ceilings.teamsPerPerson) a person may create, and
// unverified claims are kept a week: one member reaches thousands. Measured here: 3000 tokens
// take ~45 s (a member's 8,400: 21 teams x 20 apps x 20, two minutes), during which the router makes no route change
// (a deploy, a scale, an app woken waits), and the cost grows with the map (O(n) each, O(n^2)
// for a start).
// Here a real HaproxyRouter given the tokens of 3000 claims, as the verifier does at a start.
// Fix: hand the router the whole set at once at a start (one file write, one `add map` per
// missing entry, or a reload with the file), and for a single change only the one runtime
// command it needs (no `show map` of the whole map, no whole-file rewrite per entry); and count
// claims per person or team, not only per app.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { HaproxyRouter } from '../../src/router/haproxy-router.js';
import { get, makeRouterWorld, type RouterWorld } from '../router/helpers.js';

let world: RouterWorld;
before(async () => {
  world = await makeRouterWorld();
  await world.router.start();
  await world.router.apply([]);
});
after(async () => {
  await world?.cleanup();
});

test('serving 3000 claims’ tokens takes seconds, and later ones no longer than early ones', async () => {
  const n = 3000;
  const started = Date.now();
  let firstThousandMs = 0;
  let lastThousandMs = 0;
  let mark = started;
  for (let i = 1; i <= n; i++) {
    await world.router.setWellKnown(`/.well-known/petri-domain/${i}`, `token${i}x${'a'.repeat(26)}`);
    if (i === 1000) firstThousandMs = Date.now() - mark;
    if (i === n - 1000) mark = Date.now();
  }
  lastThousandMs = Date.now() - mark;
  const totalMs = Date.now() - started;
  assert.ok(
    totalMs < 10_000,
    `${n} tokens took ${totalMs} ms: the first thousand ${firstThousandMs} ms, the last ${lastThousandMs} ms`,
  );
});

test('a control plane started again adopts the answers and sets them all again at little cost', async () => {
  const n = 3000;
  const token = (i: number) => `token${i}x${'a'.repeat(26)}`;
  // The map file caught up with the running map (in batches, not once per token).
  await until(() => readFileSync(`${world.dir}/well-known.map`, 'utf8').includes(`/${n} ${token(n)}\n`), {
    timeout: 5000,
    message: 'the well-known map file to hold every token',
  });
  const again = new HaproxyRouter(world.opts);
  await again.start();
  const started = Date.now();
  for (let i = 1; i <= n; i++) await again.setWellKnown(`/.well-known/petri-domain/${i}`, token(i));
  const resetMs = Date.now() - started;
  assert.ok(resetMs < 2000, `setting ${n} tokens again took ${resetMs} ms`);
  await again.setWellKnown('/.well-known/petri-domain/1', 'changed');
  await again.deleteWellKnown(`/.well-known/petri-domain/${n}`);
  assert.equal(
    (await get(world.opts.httpPort, 'any.example.org', '/.well-known/petri-domain/1')).body,
    'changed',
  );
  assert.equal(
    (await get(world.opts.httpPort, 'any.example.org', '/.well-known/petri-domain/2')).body,
    token(2),
  );
  assert.equal(
    (await get(world.opts.httpPort, 'any.example.org', `/.well-known/petri-domain/${n}`)).status,
    404,
  );
  // Written at stop, for the next start to load.
  await again.stop();
  const file = readFileSync(`${world.dir}/well-known.map`, 'utf8');
  assert.match(file, /\/1 changed\n/);
  assert.doesNotMatch(file, new RegExp(`/${n} `));
  assert.equal(file.split('\n').filter((l) => l.startsWith('/')).length, n - 1);
});

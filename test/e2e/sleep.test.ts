// Sleep when idle, wake on the first request, through the real router and sandboxes: an
// idle app stops (no process, the route stays), a burst of requests wakes it exactly once
// and every request gets the app's answer, sleep and wake by hand, a restart of the control
// plane that neither wakes sleeping apps nor loses a wake, and a wake that takes too long.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri } from './petri.js';

interface AppJson {
  status: string;
  sleepingSince: string | null;
  settings: { idleTimeoutSeconds: number | null };
}

describe('sleep when idle, wake on the first request', () => {
  let petri: TestPetri;
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };
  const info = async (name: string) =>
    JSON.parse((await ok(['apps', 'info', name, '--json'])).stdout) as AppJson;
  const asleep = (name: string) =>
    until(async () => (await info(name)).status === 'sleeping', {
      timeout: 20_000,
      message: `${name} to sleep`,
    });
  /** Lines of `petri logs` that match, from the whole log. */
  const logLines = async (name: string, re: RegExp) =>
    (await ok(['logs', '--app', name, '-n', '1000'])).stdout.split('\n').filter((l) => re.test(l));
  /** Sandboxes of the app that still have a cgroup: a sleeping app has none. */
  const cgroups = (name: string) => {
    const dir = `/sys/fs/cgroup/pids/${petri.config.cgroupParent}`;
    try {
      return readdirSync(dir).filter((d) => d.startsWith(`${name}-`));
    } catch {
      return [];
    }
  };

  before(async () => {
    petri = await TestPetri.start({ idleCheckMs: 200, wakeTimeoutMs: 4000, bootTimeoutMs: 30_000 });
    await ok(['apps', 'create', 'napper']);
    await ok(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'napper']);
  });
  after(async () => petri?.destroy());

  test('an idle app sleeps: no process, the route stays, and apps and ps say since when', async () => {
    await ok(['apps', 'set', 'napper', 'idle=2s']);
    assert.equal((await info('napper')).settings.idleTimeoutSeconds, 2);
    await asleep('napper');
    const app = await info('napper');
    assert.ok(app.sleepingSince, 'since when');
    const ps = async () =>
      JSON.parse((await ok(['ps', '--app', 'napper', '--json'])).stdout) as {
        processes: unknown[];
        sleepingSince: string | null;
      };
    assert.equal((await ps()).sleepingSince, app.sleepingSince);
    await until(async () => (await ps()).processes.length === 0 && cgroups('napper').length === 0, {
      timeout: 15_000,
      message: 'its processes to be gone',
    });
    assert.match((await ok(['apps'])).stdout, /^napper\s+\S+\s+sleeping\s/m);
    assert.equal((await logLines('napper', /going to sleep: no request for/)).length, 1);
  });

  test("a burst of 50 requests wakes it exactly once, and every one gets the app's 200", async () => {
    await ok(['apps', 'set', 'napper', 'idle=never']);
    const starts = (await logLines('napper', /starting web\.1/)).length;
    const answers = await Promise.all(Array.from({ length: 50 }, () => petri.app('napper')));
    assert.deepEqual(
      answers.map((a) => `${a.status} ${a.body}`),
      answers.map(() => '200 hello from zero-dep v1\n'),
    );
    assert.equal((await logLines('napper', /starting web\.1/)).length, starts + 1, 'started exactly once');
    assert.equal((await logLines('napper', /waking up: a request for \/ arrived while asleep/)).length, 1);
    assert.equal((await info('napper')).status, 'running');
  });

  test('petri apps sleep and petri apps wake, by hand', async () => {
    await ok(['apps', 'sleep', 'napper']);
    await asleep('napper');
    await until(async () => cgroups('napper').length === 0, {
      timeout: 15_000,
      message: 'its processes to stop',
    });
    await ok(['apps', 'wake', 'napper']);
    assert.equal((await info('napper')).status, 'running');
    assert.equal((await petri.app('napper')).status, 200);
  });

  test('a restart of petri server leaves sleeping apps asleep and finishes a wake in flight', async () => {
    await ok(['apps', 'sleep', 'napper']);
    await asleep('napper');
    await petri.kill9();
    await petri.startServer();
    // A full pass of the new control plane has run once another app's change is served.
    await ok(['apps', 'create', 'witness']);
    await ok(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'witness']);
    assert.equal((await info('napper')).status, 'sleeping', 'the restart did not wake it');
    assert.deepEqual(cgroups('napper'), []);

    // A request wakes it; the control plane dies before the app is up; the next one starts it.
    const held = petri.app('napper').catch(() => undefined);
    await until(async () => (await info('napper')).status !== 'sleeping', {
      timeout: 10_000,
      interval: 5,
      message: 'the wake to be recorded',
    });
    await petri.kill9();
    await held;
    await petri.startServer();
    await until(async () => (await petri.app('napper')).status === 200, {
      timeout: 20_000,
      message: 'the woken app to serve after the restart',
    });
  });

  test('a wake that takes longer than the wake timeout answers 503 with Retry-After, and says why in the logs', async () => {
    await ok(['apps', 'create', 'sluggard']);
    await ok(['config', 'set', 'SLOW_START_MS=7000', '--app', 'sluggard']);
    await ok(['deploy', path.join(FIXTURES, 'slow-start'), '--app', 'sluggard']);
    await ok(['apps', 'sleep', 'sluggard']);
    await asleep('sluggard');
    await until(async () => cgroups('sluggard').length === 0, {
      timeout: 15_000,
      message: 'its processes to stop',
    });
    const started = Date.now();
    const first = await petri.app('sluggard');
    assert.equal(first.status, 503);
    assert.equal(first.headers['retry-after'], '5');
    assert.match(first.body, /waking up, or failing to/);
    assert.ok(Date.now() - started >= 3500, 'held for the wake timeout first');
    assert.equal((await logLines('sluggard', /no web process was up 4 s after waking/)).length, 1);
    await until(async () => (await petri.app('sluggard')).status === 200, {
      timeout: 20_000,
      message: 'the slow app to serve once it is up',
    });
  });
});

// Two Petris on one host must never touch each other's router: `--stop-all` only stops what
// its own data dir runs (it renders, binds and reloads nothing, whatever ports it is given),
// a config file's ports count when no flag overrides them, and a start whose port is taken
// fails with a clear error instead of sharing the port (HAProxy's SO_REUSEPORT would let two
// routers split one port's visitors between them).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/lib/ports.js';
import { processStartTime } from '../../src/lib/process.js';
import { FIXTURES, runPetriServer, TestPetri } from './petri.js';

const APP = path.join(FIXTURES, 'zero-dep');

describe('two Petris on one host', () => {
  let a: TestPetri;
  let b: TestPetri;

  before(async () => {
    [a, b] = await Promise.all([TestPetri.start(), TestPetri.start({}, { portsInConfigFile: true })]);
    for (const [petri, name] of [
      [a, 'one'],
      [b, 'two'],
    ] as const) {
      const created = await petri.cli(['apps', 'create', name]);
      assert.equal(created.code, 0, created.stderr);
      const deployed = await petri.cli(['deploy', APP, '--app', name]);
      assert.equal(deployed.code, 0, deployed.stderr);
    }
  });
  after(async () => {
    await Promise.all([a?.destroy(), b?.destroy()]);
  });

  /** Every one of `n` requests to A's app is answered by A's app. */
  async function assertAServesAlone(n: number): Promise<void> {
    const answers = [];
    for (let i = 0; i < n; i++) answers.push(await a.app('one'));
    const foreign = answers.filter((r) => r.status !== 200 || !/hello from zero-dep/.test(r.body));
    assert.deepEqual(
      foreign.map((r) => `${r.status} ${r.body.slice(0, 60)}`),
      [],
      `${foreign.length} of ${n} visitors of A got another answer`,
    );
  }

  test('ports in the config file are used when no flag is given', async () => {
    // b was started with httpPort and apiPort in its config file only (no --http-port).
    const answer = await b.app('two');
    assert.equal(answer.status, 200);
    assert.match(answer.body, /hello from zero-dep/);
    const apps = await b.cli(['apps']);
    assert.equal(apps.code, 0, apps.stderr);
    assert.match(apps.stdout, /two/);
  });

  test('a start on a port another Petri serves fails with a clear error and leaves it alone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-taken-'));
    const config = path.join(dir, 'config.json');
    const suffix = path.basename(dir).slice(-6).toLowerCase();
    try {
      for (const [taken, key, ports] of [
        ['http', 'httpPort', { httpPort: a.httpPort, apiPort: await freePort() }],
        ['api', 'apiPort', { httpPort: await freePort(), apiPort: a.apiPort }],
      ] as const) {
        writeFileSync(
          config,
          JSON.stringify({
            ...ports,
            wakerPort: await freePort(),
            cgroupParent: `petri-taken-${suffix.replace(/[^a-z0-9]/g, 'x')}`,
            network: { enabled: false, bridge: 'unused', subnet: '10.213.251.0/24' },
            logLevel: 'warn',
            addons: { postgres: { mode: 'off' }, mysql: { mode: 'off' }, redis: { mode: 'off' } },
          }),
        );
        const started = await runPetriServer(['--data-dir', path.join(dir, 'data'), '--config', config]);
        assert.equal(started.running, false, `a Petri started on A's ${taken} port: ${started.output}`);
        assert.notEqual(started.code, 0);
        const port = ports[key];
        assert.match(
          started.output,
          new RegExp(`port ${port} .*is already in use.*${key}`, 's'),
          `the error names the port and the setting to change: ${started.output}`,
        );
        // Nothing of the failed start keeps running: its router would be a second one.
        assert.equal(routerPid(path.join(dir, 'data')), undefined, 'no router left by the failed start');
        await assertAServesAlone(20);
      }
    } finally {
      await runPetriServer(['--data-dir', path.join(dir, 'data'), '--config', config, '--stop-all']);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--stop-all given another Petri's ports stops its own Petri only", async () => {
    const router = routerPid(b.dataDir);
    assert.ok(router !== undefined, "B's router runs");
    await b.kill9(); // as an operator stops B's control plane first
    // The ports of A, as the defaults were when both used them: --stop-all must not bind them.
    // No --config either: what B runs (its cgroup parent, its bridge) is in its data dir.
    const stopped = await runPetriServer([
      '--data-dir',
      b.dataDir,
      '--http-port',
      String(a.httpPort),
      '--api-port',
      String(a.apiPort),
      '--stop-all',
    ]);
    await assertAServesAlone(50);
    assert.equal(stopped.code, 0, stopped.output);
    assert.equal(processStartTime(router), undefined, "B's router stopped");
    await assert.rejects(b.app('two'), /ECONNREFUSED/, "B's app no longer served");
    const apps = await a.cli(['apps']);
    assert.equal(apps.code, 0, `A's API still answers: ${apps.stderr}`);
  });
});

/** The pid of the data dir's HAProxy master, if one runs. */
function routerPid(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dataDir, 'router', 'haproxy.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
  return processStartTime(pid) === undefined ? undefined : pid;
}

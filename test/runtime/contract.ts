// The contract every RuntimeDriver keeps, in what the controllers above the seam rely on:
// instances run, are listed with their labels and reached at their address and port (the
// driver's choice, status.port), their output reaches the sink, exits are seen with their code, stops are graceful then forced,
// a new driver adopts what an earlier one started, and tasks run to completion or their
// timeout. The local driver (local-contract.test.ts, root) and the fake the unit tests use
// (fake-contract.test.ts) both run it. Builds and one-offs are the local driver's own tests.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import type {
  InstanceSpec,
  OutputSink,
  RuntimeDriver,
  SandboxLabels,
  TaskSpec,
} from '../../src/runtime/driver.js';

/** Commands in the implementation's own terms (a shell for the local driver). */
export interface ContractPrograms {
  /** Prints `line`, then answers HTTP 200 on PORT on every address, until stopped. */
  serve(line: string): string[];
  /** Prints `line`, then exits with `code`. */
  exit(code: number, line: string): string[];
  /** Prints `line` every 100 ms or so, until stopped. */
  tick(line: string): string[];
  /** Prints `line`, ignores SIGTERM, runs until killed. */
  stubborn(line: string): string[];
}

export interface ContractWorld {
  /** A driver for this world, delivering output to `sink`; a second call is a restarted
   * control plane's driver on the same host. */
  driver(sink: OutputSink): RuntimeDriver;
  programs: ContractPrograms;
  /** A spec for an instance of this world (paths, uid, limits filled in). */
  instance(id: string, command: string[], labels: SandboxLabels, env: Record<string, string>): InstanceSpec;
  task(
    id: string,
    command: string[],
    onOutput: (chunk: string) => void,
    timeoutMs: number,
  ): Promise<TaskSpec>;
  cleanup(): Promise<void>;
  /** Makes a running instance look as an earlier version of the driver left it: without
   * labels (only for a driver with relabel()). */
  forgetLabels?(id: string): Promise<void>;
}

export interface ContractOptions {
  name: string;
  setUp(): Promise<ContractWorld>;
  /** How long an exit or a line may take to be seen (a real driver polls files). */
  timeoutMs?: number;
}

/** An OutputSink that keeps whole lines, by app and source. */
export class RecordingSink implements OutputSink {
  readonly maxLineChars = 16 * 1024;
  readonly lines: { app: string; source: string; text: string }[] = [];
  private readonly partial = new Map<string, string>();

  assertNames(app: string, source: string): void {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(app) || !/^[a-z0-9_-]+(\.[0-9]+)?$/.test(source))
      throw new Error(`bad app or source name: ${app} ${source}`);
  }

  append(app: string, source: string, text: string): void {
    const key = `${app}\0${source}`;
    const parts = ((this.partial.get(key) ?? '') + text).split('\n');
    this.partial.set(key, parts.pop() ?? '');
    for (const line of parts) this.lines.push({ app, source, text: line });
  }

  flush(app: string, source: string): void {
    const key = `${app}\0${source}`;
    const rest = this.partial.get(key);
    if (rest) this.lines.push({ app, source, text: rest });
    this.partial.delete(key);
  }

  has(app: string, source: string, text: string): boolean {
    return this.lines.some((l) => l.app === app && l.source === source && l.text === text);
  }
}

export function driverContract(opts: ContractOptions): void {
  const timeout = opts.timeoutMs ?? 10_000;
  describe(`RuntimeDriver contract: ${opts.name}`, () => {
    let world: ContractWorld;
    let sink: RecordingSink;
    let driver: RuntimeDriver;
    const started: InstanceSpec[] = [];

    before(async () => {
      world = await opts.setUp();
      sink = new RecordingSink();
      driver = world.driver(sink);
    });
    after(async () => {
      for (const spec of started) {
        await driver.stop(spec.id, 0).catch(() => {});
        await driver.removeFiles(spec).catch(() => {});
      }
      await driver?.close();
      await world?.cleanup();
    });

    const labelsOf = (app: string, process: string): SandboxLabels => ({
      app,
      kind: 'instance',
      release: 7,
      process,
    });
    async function start(id: string, command: string[], labels: SandboxLabels) {
      // No PORT in the spec: the driver chooses the port, sets it and reports it.
      const spec = world.instance(id, command, labels, {});
      started.push(spec);
      const status = await driver.start(spec);
      return { spec, status };
    }
    const exited = (id: string) =>
      until(
        async () => {
          const s = await driver.status(id);
          return !s.running && s.exitCode !== undefined && s;
        },
        { timeout, message: `${id} to exit` },
      );

    test('an instance runs, is listed with its labels, and answers on PORT at its address', async () => {
      const labels = labelsOf('contract-a', 'web.1');
      const { spec, status } = await start('contract-a-web-1', world.programs.serve('up'), labels);
      assert.equal(status.running, true, 'start returns once it runs');
      const port = status.port;
      assert.ok(
        port !== undefined && Number.isInteger(port) && port > 0 && port < 65536,
        'start() says its port',
      );
      const listed = (await driver.list()).find((s) => s.id === spec.id);
      assert.equal(listed?.running, true);
      assert.deepEqual(listed?.labels, labels, 'list() gives the labels back');
      assert.deepEqual((await driver.status(spec.id)).labels, labels, 'and so does status()');
      assert.equal(listed?.port, port, 'list() gives the port back');
      assert.equal((await driver.status(spec.id)).port, port, 'and so does status()');
      const address = listed?.address ?? '127.0.0.1';
      await until(
        async () => (await fetch(`http://${address}:${port}/`).catch(() => undefined))?.status === 200,
        { timeout, message: 'the instance to answer at its address' },
      );
      if (listed?.address) {
        assert.deepEqual(await driver.sandboxAt(listed.address), labels, 'sandboxAt() knows it by address');
      }
      assert.equal(await driver.sandboxAt('192.0.2.1'), undefined, 'nobody is at an unknown address');
      // Starting what runs is harmless: the same instance, not a second one.
      const again = await driver.start(spec);
      assert.equal(again.running, true);
      assert.equal((await driver.list()).filter((s) => s.id === spec.id).length, 1);
    });

    test('its output reaches the sink under its app and process', async () => {
      await start(
        'contract-b-worker-1',
        world.programs.tick('tick of b'),
        labelsOf('contract-b', 'worker.1'),
      );
      await until(() => sink.has('contract-b', 'worker.1', 'tick of b'), {
        timeout,
        message: 'a line of output in the sink',
      });
      await driver.flushOutput();
    });

    test('an exit is seen with its code, listed until stopped, its output delivered', async () => {
      const labels = labelsOf('contract-c', 'web.1');
      const { spec } = await start('contract-c-web-1', world.programs.exit(3, 'bye from c'), labels);
      const status = await exited(spec.id);
      assert.equal(status.exitCode, 3);
      const listed = (await driver.list()).find((s) => s.id === spec.id);
      assert.deepEqual([listed?.running, listed?.exitCode], [false, 3], 'listed, with its code');
      await driver.stop(spec.id, 1000);
      assert.equal(
        (await driver.list()).find((s) => s.id === spec.id),
        undefined,
        'not listed once stopped',
      );
      await driver.removeFiles(spec);
      await driver.removeFiles(spec); // idempotent
      assert.ok(sink.has('contract-c', 'web.1', 'bye from c'), 'its last line reached the sink');
    });

    test('stop is graceful, then forced after the grace period; idempotent', async () => {
      const { spec } = await start(
        'contract-d-web-1',
        world.programs.stubborn('stubborn d'),
        labelsOf('contract-d', 'web.1'),
      );
      await until(() => sink.has('contract-d', 'web.1', 'stubborn d'), { timeout, message: 'it to run' });
      const t0 = Date.now();
      await driver.stop(spec.id, 300);
      assert.ok(Date.now() - t0 >= 250, 'the grace period is given');
      assert.ok(Date.now() - t0 < timeout, 'and not much more');
      assert.equal((await driver.status(spec.id)).running, false);
      await driver.stop(spec.id, 300);
      await driver.stop('contract-never-started', 0);
      // A graceful stop of an instance that heeds SIGTERM does not wait out the grace.
      const heeds = await start(
        'contract-d-web-2',
        world.programs.serve('d2'),
        labelsOf('contract-d', 'web.2'),
      );
      await until(() => sink.has('contract-d', 'web.2', 'd2'), { timeout, message: 'it to run' });
      const t1 = Date.now();
      await driver.stop(heeds.spec.id, 30_000);
      assert.ok(Date.now() - t1 < 10_000, 'SIGTERM ends it');
    });

    test('a new driver adopts running instances: listed with their labels and port, output still captured', async () => {
      const labels = labelsOf('contract-e', 'web.1');
      const { spec, status } = await start('contract-e-web-1', world.programs.serve('serving e'), labels);
      await until(() => sink.has('contract-e', 'web.1', 'serving e'), { timeout, message: 'output' });
      // The control plane stops: its driver lets go, the instance runs on.
      await driver.close();
      const sink2 = new RecordingSink();
      driver = world.driver(sink2);
      const adopted = (await driver.list()).find((s) => s.id === spec.id);
      assert.equal(adopted?.running, true, 'still running');
      assert.deepEqual(adopted?.labels, labels);
      assert.equal(adopted?.port, status.port, 'with the port it was started on');
      assert.equal((await driver.status(spec.id)).port, status.port);
      const address = adopted?.address ?? '127.0.0.1';
      await until(
        async () =>
          (await fetch(`http://${address}:${adopted?.port}/`).catch(() => undefined))?.status === 200,
        { timeout, message: 'the adopted instance to answer at its address and port' },
      );
      sink = sink2;
    });

    test('an instance an earlier version left without labels is relabelled and its output captured again', async (t) => {
      if (!world.forgetLabels || !driver.relabel) return t.skip('the driver always has its labels');
      const labels = labelsOf('contract-f', 'web.1');
      const { spec } = await start('contract-f-web-1', world.programs.tick('tick of f'), labels);
      await until(() => sink.has('contract-f', 'web.1', 'tick of f'), { timeout, message: 'output' });
      await driver.close();
      await world.forgetLabels(spec.id);
      const sink2 = new RecordingSink();
      driver = world.driver(sink2);
      const found = (await driver.list()).find((s) => s.id === spec.id);
      assert.equal(found?.running, true, 'still running');
      assert.equal(found?.labels, undefined, 'listed without labels, as after an upgrade');
      assert.ok(driver.relabel, 'the new driver relabels too');
      await driver.relabel({ id: spec.id, workDir: spec.workDir, labels });
      assert.deepEqual((await driver.status(spec.id)).labels, labels);
      await until(() => sink2.has('contract-f', 'web.1', 'tick of f'), {
        timeout,
        message: "the relabelled instance's output to reach the sink",
      });
      sink = sink2;
    });

    test('a task runs to completion with its output and exit code', async () => {
      let output = '';
      const result = await driver.runTask(
        await world.task(
          'contract-task-1',
          world.programs.exit(4, 'task says hi'),
          (c) => {
            output += c;
          },
          30_000,
        ),
      );
      assert.equal(result.exitCode, 4);
      assert.equal(result.timedOut, false);
      assert.match(output, /task says hi/);
    });

    test('a task past its timeout is ended and says so', async () => {
      const t0 = Date.now();
      const result = await driver.runTask(
        await world.task('contract-task-2', world.programs.stubborn('forever'), () => {}, 500),
      );
      assert.equal(result.timedOut, true);
      assert.ok(Date.now() - t0 < timeout);
    });
  });
}

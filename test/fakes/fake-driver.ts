// An in-memory RuntimeDriver for fast unit tests of what sits above the seam (the
// reconciler). It passes the same contract suite as the local driver (test/runtime/
// contract.ts), so a test that passes on it asks nothing of a driver a real one would not do.
//
// Instances live in a FakeHost that outlives drivers, as sandboxes outlive the control plane:
// a new FakeDriver on the same host adopts them. A command is a tiny subset of sh, one
// statement after another, separated by `;` (for `sh -c SCRIPT` the script's first line, so
// the developer's command of a process type wrapped by specs/ processCommand):
//   echo TEXT    a line of output        exit N     ends with code N
//   serve        answers HTTP 200 on PORT at the instance's address, until stopped
//   tick TEXT    prints TEXT every 50 ms, until stopped
//   sleep        runs until stopped       trap TERM  ignores SIGTERM (stop kills after grace)
// A script that runs out of statements exits 0; an unknown word exits 127, as sh would.
// Each instance gets an address of its own on 127.0.0.0/8 (all of it is loopback on Linux),
// like the local driver with its network, and a free port the driver chooses and sets as
// PORT (a spec carries none); move() gives it another address and port, as a driver may.
import http from 'node:http';
import { freePort } from '../../src/lib/ports.js';
import type {
  BuildDisks,
  InstanceSpec,
  InstanceStatus,
  InteractiveProcess,
  OutputSink,
  RuntimeDriver,
  SandboxLabels,
  TaskResult,
  TaskSpec,
} from '../../src/runtime/driver.js';

const TICK_MS = 50;

interface Program {
  running: boolean;
  exitCode?: number | null;
  signal?: string | null;
  ignoresTerm: boolean;
  /** Ends it: closes its server and timers. */
  end(code: number | null, signal: string | null): void;
  ended: Promise<void>;
}

interface FakeInstance {
  spec: InstanceSpec;
  address: string;
  /** Its PORT, chosen by the driver; absent as for an instance an earlier Petri started
   * (forgetPort()). */
  port?: number;
  program: Program;
  /** Gone from list() once stopped, as a local instance's cgroup is. */
  listed: boolean;
}

/** What survives a driver: the instances and the addresses they hold. */
export class FakeHost {
  readonly instances = new Map<string, FakeInstance>();
  private lastAddress = 1;
  /** Where output goes: the sink of the driver that runs now (a closed one delivers none). */
  sink: OutputSink | undefined;

  nextAddress(): string {
    this.lastAddress++;
    const n = this.lastAddress;
    return `127.0.${Math.floor(n / 250) + 1}.${(n % 250) + 2}`;
  }
}

export interface FakeDriverOptions {
  host?: FakeHost;
  output?: OutputSink;
}

export class FakeDriver implements RuntimeDriver {
  readonly host: FakeHost;
  /** Calls, for tests that count them. */
  readonly calls: { start: string[]; stop: string[] } = { start: [], stop: [] };

  constructor(opts: FakeDriverOptions = {}) {
    this.host = opts.host ?? new FakeHost();
    this.host.sink = opts.output;
  }

  async start(spec: InstanceSpec): Promise<InstanceStatus> {
    const existing = this.host.instances.get(spec.id);
    if (existing?.program.running) return this.status(spec.id);
    this.calls.start.push(spec.id);
    const address = existing?.address ?? this.host.nextAddress();
    const port = await freePort();
    this.host.instances.set(spec.id, {
      spec,
      address,
      port,
      listed: true,
      program: this.launch(spec, address, port),
    });
    return this.status(spec.id);
  }

  private launch(spec: InstanceSpec, address: string, port: number | undefined): Program {
    const source = spec.labels.process ?? spec.labels.kind;
    return run(commandOf(spec.command), {
      env: { ...spec.env, ...(port !== undefined && { PORT: String(port) }) },
      address,
      out: (line) => this.host.sink?.append(spec.labels.app, source, `${line}\n`),
    });
  }

  async list(): Promise<InstanceStatus[]> {
    return Promise.all(
      [...this.host.instances.values()].filter((i) => i.listed).map((i) => this.status(i.spec.id)),
    );
  }

  async status(id: string): Promise<InstanceStatus> {
    const instance = this.host.instances.get(id);
    if (!instance) return { id, running: false };
    const { program } = instance;
    return {
      id,
      running: program.running,
      ...(program.exitCode !== undefined && { exitCode: program.exitCode }),
      ...(program.signal && { signal: program.signal }),
      oomKilled: false,
      address: instance.address,
      ...(instance.port !== undefined && { port: instance.port }),
      labels: instance.spec.labels,
    };
  }

  async stop(id: string, graceMs: number): Promise<void> {
    this.calls.stop.push(id);
    const instance = this.host.instances.get(id);
    if (!instance) return;
    const { program } = instance;
    if (program.running) {
      // SIGTERM; what ignores it is killed after the grace period. Exit codes as the local
      // driver reports them (sh's 128+N), without a signal.
      if (program.ignoresTerm) {
        await new Promise((resolve) => setTimeout(resolve, graceMs));
        program.end(137, null);
      } else {
        program.end(143, null);
      }
    }
    await program.ended;
    instance.listed = false;
  }

  async removeFiles(spec: Pick<InstanceSpec, 'id' | 'workDir'>): Promise<void> {
    const instance = this.host.instances.get(spec.id);
    if (instance?.program.running) throw new Error(`instance ${spec.id} is running; stop it first`);
    this.host.instances.delete(spec.id);
  }

  async flushOutput(): Promise<void> {
    // Lines are delivered as they are written.
  }

  async runTask(spec: TaskSpec): Promise<TaskResult> {
    const program = run(commandOf(spec.command), {
      env: spec.env,
      address: '127.0.0.1',
      out: (line) => spec.onOutput(`${line}\n`),
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      program.end(null, 'SIGKILL');
    }, spec.timeoutMs);
    await program.ended;
    clearTimeout(timer);
    return { exitCode: program.exitCode ?? null, signal: program.signal ?? null, timedOut, oomKilled: false };
  }

  async openBuildDisks(): Promise<BuildDisks> {
    throw new Error('the fake driver does not build (builds are tested on the local driver)');
  }

  async closeBuildDisks(): Promise<void> {}

  async runInteractive(): Promise<InteractiveProcess> {
    throw new Error('the fake driver runs no one-offs (they are tested on the local driver)');
  }

  networkGateway(): string | undefined {
    return undefined;
  }

  async sandboxAt(address: string): Promise<SandboxLabels | undefined> {
    for (const i of this.host.instances.values()) if (i.address === address) return i.spec.labels;
    return undefined;
  }

  async prepare(): Promise<void> {}

  async reclaimTasks(): Promise<string[]> {
    return [];
  }

  async close(): Promise<void> {
    this.host.sink = undefined;
  }

  async teardown(): Promise<void> {}

  /** Gives a running instance another address and port (what a driver that reschedules
   * does). */
  async move(id: string): Promise<{ address: string; port: number }> {
    const instance = this.host.instances.get(id);
    if (!instance?.program.running) throw new Error(`instance ${id} does not run`);
    instance.program.end(143, null);
    await instance.program.ended;
    instance.address = this.host.nextAddress();
    instance.port = await freePort();
    instance.program = this.launch(instance.spec, instance.address, instance.port);
    return { address: instance.address, port: instance.port };
  }

  /** Makes a running instance look as an earlier Petri left it: the driver does not know
   * its port (the store does). */
  forgetPort(id: string): void {
    const instance = this.host.instances.get(id);
    if (instance) delete instance.port;
  }

  /** Ends an instance as a crash would (the app's own exit, not a stop). */
  crash(id: string, code = 1): void {
    this.host.instances.get(id)?.program.end(code, null);
  }
}

/** The script of a command: `sh -c SCRIPT`'s first line (the developer's command inside
 * specs/ processCommand's subshell: its first line is the opening parenthesis), else the
 * argv joined. */
function commandOf(argv: string[]): string {
  if (argv[0] !== 'sh' || argv[1] !== '-c') return argv.join(' ');
  const lines = (argv[2] ?? '').split('\n');
  return (lines[0] === '(' ? lines[1] : lines[0]) ?? '';
}

function run(
  script: string,
  io: { env: Record<string, string>; address: string; out: (line: string) => void },
): Program {
  let resolveEnded!: () => void;
  const timers: NodeJS.Timeout[] = [];
  let server: http.Server | undefined;
  const program: Program = {
    running: true,
    ignoresTerm: false,
    ended: new Promise((resolve) => {
      resolveEnded = resolve;
    }),
    end(code, signal) {
      if (!program.running) return;
      program.running = false;
      program.exitCode = code;
      program.signal = signal;
      for (const t of timers) clearInterval(t);
      if (server) {
        server.closeAllConnections();
        server.close(() => resolveEnded());
      } else {
        resolveEnded();
      }
    },
  };
  // Asynchronously, as a process runs after its start returned.
  setImmediate(() => {
    let staysUp = false;
    for (const statement of script.split(';').map((s) => s.trim())) {
      if (!program.running) return;
      const [word = '', ...rest] = statement.split(/\s+/);
      const text = rest.join(' ');
      if (word === '' || word === 'true') continue;
      if (word === 'echo') io.out(text);
      else if (word === 'exit') return program.end(Number(text || 0), null);
      else if (word === 'trap' && text === 'TERM') program.ignoresTerm = true;
      else if (word === 'sleep') staysUp = true;
      else if (word === 'tick') {
        staysUp = true;
        timers.push(setInterval(() => io.out(text), TICK_MS));
      } else if (word === 'serve') {
        staysUp = true;
        server = http.createServer((_req, res) => res.end('ok\n'));
        server.on('error', (err) => {
          io.out(`serve: ${err.message}`);
          program.end(1, null);
        });
        server.listen(Number(io.env.PORT), io.address);
      } else {
        io.out(`sh: ${word}: not found`);
        return program.end(127, null);
      }
    }
    if (!staysUp) program.end(0, null);
  });
  return program;
}

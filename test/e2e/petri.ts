// A real Petri for end-to-end tests: `petri server` as a child process with its own data
// dir, ports, cgroup parent and uid range; the CLI run in-process against it; requests sent
// through the real router with the app's Host header. Everything it started is stopped by
// pid (`petri server --stop-all`), even when a test fails.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { runCli } from '../../src/cli/main.js';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { TEST_RUNTIMES } from '../build/test-runtimes.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const FIXTURES = path.join(ROOT, 'test/fixtures/apps');
/** node's argv for `petri server` from the source tree. */
const SERVER = ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), 'server'];
/** The nodeFlags of a test server, given on node's command line so it does not re-execute
 * itself (tsx loaded twice, at every start): the one that changes behaviour (how
 * AsyncLocalStorage carries the audit scope), not the memory settings, which cost the suite
 * CPU and are measured by bench/density.ts instead. A test or bench can pass others. */
const TEST_NODE_FLAGS = ['--experimental-async-context-frame'];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

class Capture {
  text = '';
  isTTY = false;
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export class TestPetri {
  proc: ChildProcess | undefined;
  output = '';
  token = '';
  readonly dataDir: string;
  /** Its subnet and uid range on this host (claimSlot). */
  private readonly slot: number;
  /** The JSON config file `petri server --config` reads. */
  readonly configFile: string;
  readonly httpsPort: number;

  /** What the server was started with (see the JSON config written below). */
  readonly config: {
    cgroupParent: string;
    uidBase: number;
    network: { enabled: boolean; bridge: string; subnet: string };
    egressPort: number;
    wakerPort: number;
  };

  private constructor(
    readonly apiPort: number,
    readonly httpPort: number,
    egressPort: number,
    wakerPort: number,
    readonly extraConfig: Record<string, unknown>,
    /** Ports in the config file only, no port flags: what an operator with a config file does. */
    private readonly portsInConfigFile = false,
    /** The router's HTTPS port: its own, as every other port (the default 8443 is shared). */
    freeHttpsPort = 0,
  ) {
    this.httpsPort = typeof extraConfig.httpsPort === 'number' ? extraConfig.httpsPort : freeHttpsPort;
    this.dataDir = mkdtempSync(path.join(tmpdir(), 'petri-e2e-'));
    this.configFile = path.join(this.dataDir, '..', `${path.basename(this.dataDir)}.json`);
    const suffix = path
      .basename(this.dataDir)
      .replace(/[^a-z0-9]/gi, '')
      .toLowerCase()
      .slice(-8);
    // Its own cgroup parent, uid range, bridge and subnet: two test Petris never share one,
    // and none shares the default 10.213.0.0/16 of a Petri the install started on this host.
    // The subnet and uid range come from a slot claimed on this host (a random pick clashed
    // when test files ran side by side: one's mail relay found the other's gateway address).
    this.slot = claimSlot();
    this.config = {
      cgroupParent: `petri-test-${suffix}`,
      uidBase: 200_000 + this.slot * 1000,
      network: { enabled: true, bridge: `pt${suffix}`.slice(0, 15), subnet: `10.232.${this.slot}.0/24` },
      egressPort,
      wakerPort,
    };
    writeFileSync(
      this.configFile,
      JSON.stringify({
        ...this.config,
        bootTimeoutMs: 5000,
        drainGraceMs: 10_000,
        logLevel: 'warn',
        // Add-on servers only where a test asks for them (test/e2e/addons.test.ts).
        addons: { postgres: { mode: 'off' }, mysql: { mode: 'off' }, redis: { mode: 'off' } },
        // One Node.js download per machine, not one per test server (test-runtimes.ts).
        runtimesDir: TEST_RUNTIMES,
        // The e2e tests curl their apps, which the gate (issue 15) would stop for a staff app.
        audience: { default: 'public' },
        httpsPort: this.httpsPort,
        nodeFlags: TEST_NODE_FLAGS,
        ...(portsInConfigFile ? { httpPort, apiPort } : {}),
        ...extraConfig,
      }),
    );
  }

  static async start(
    extraConfig: Record<string, unknown> = {},
    /** httpPort: the router's, when a test needs it before the server starts (pebble's HTTP-01). */
    opts: { portsInConfigFile?: boolean; httpPort?: number } = {},
  ): Promise<TestPetri> {
    const petri = new TestPetri(
      await freePort(),
      opts.httpPort ?? (await freePort()),
      await freePort(),
      await freePort(),
      extraConfig,
      opts.portsInConfigFile,
      await freePort(),
    );
    try {
      await petri.startServer();
    } catch (err) {
      // A start that failed or timed out must not leave its server, router and data dir
      // behind for the rest of the run (the test that called start() has no petri to destroy).
      await petri.destroy();
      throw err;
    }
    petri.token = readFileSync(path.join(petri.dataDir, 'admin.token'), 'utf8').trim();
    return petri;
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  private serverArgs(): string[] {
    const ports = this.portsInConfigFile
      ? []
      : ['--http-port', String(this.httpPort), '--api-port', String(this.apiPort)];
    const nodeFlags = (this.extraConfig.nodeFlags as string[] | undefined) ?? TEST_NODE_FLAGS;
    return [...nodeFlags, ...SERVER, '--data-dir', this.dataDir, ...ports, '--config', this.configFile];
  }

  async startServer(): Promise<void> {
    const proc = spawn(process.execPath, this.serverArgs(), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.output = '';
    proc.stdout?.on('data', (d) => (this.output += d));
    proc.stderr?.on('data', (d) => (this.output += d));
    // 90 s: a start takes a few seconds alone, but well over 30 on a machine loaded by
    // parallel tests (load average 12 on 2 CPUs was seen).
    await until(
      async () => {
        if (proc.exitCode !== null) throw new Error(`petri server exited: ${this.output}`);
        return this.output.includes('Petri is running');
      },
      { timeout: 90_000, message: 'petri server to start' },
    );
  }

  /** kill -9 of the control plane, as a crash would. */
  async kill9(): Promise<void> {
    const proc = this.proc;
    // Killed by a signal, a process has a signalCode and no exitCode: it is gone all the same.
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  }

  /** The CLI in this process; `stdin` is what a pipe would feed it. */
  async cli(argv: string[], cwd = ROOT, stdin?: string): Promise<CliResult> {
    const stdout = new Capture();
    const stderr = new Capture();
    const env = {
      PETRI_URL: this.apiUrl,
      PETRI_TOKEN: this.token,
      PETRI_CONFIG_DIR: path.join(this.dataDir, 'cli'),
    };
    const input = stdin === undefined ? undefined : Readable.from([Buffer.from(stdin)]);
    const code = await runCli(argv, { stdout, stderr, env, cwd, stdin: input });
    return { code, stdout: stdout.text, stderr: stderr.text };
  }

  /** A request through the router, as a browser would send it to NAME.petri.localhost. */
  request(
    host: string,
    urlPath = '/',
    method = 'GET',
    body?: Buffer,
    headers: Record<string, string> = {},
  ): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.httpPort,
          path: urlPath,
          method,
          headers: { ...headers, host, connection: 'close' },
          agent: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
          res.on('error', reject);
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error(`request to ${host}${urlPath} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  app(name: string, urlPath = '/'): Promise<HttpResult> {
    return this.request(`${name}.petri.localhost`, urlPath);
  }

  /** Network namespaces left on the host in this Petri's subnet (after destroy: none). */
  namespacesLeft(): string[] {
    return namespacesIn(`10.232.${this.slot}.`);
  }

  /** Stops the control plane, then every instance and the router it ran; removes its files. */
  async destroy(): Promise<void> {
    await this.kill9();
    const stop = spawn(process.execPath, [...this.serverArgs(), '--stop-all'], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    await new Promise((resolve) => stop.once('exit', resolve));
    // Whatever --stop-all could not unmount (a test that broke the world) goes lazily.
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const mountPoint = line.split(' ')[1];
      if (mountPoint?.startsWith(`${this.dataDir}/`)) spawnSync('umount', ['-l', mountPoint]);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
    rmSync(this.configFile, { force: true });
    releaseSlot(this.slot);
  }
}

/** The network namespaces on this host holding an address of `subnet` (a /24's prefix). */
function namespacesIn(prefix: string): string[] {
  const names = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
  return names.filter((name) =>
    spawnSync('ip', ['netns', 'exec', name, 'ip', '-4', '-o', 'addr', 'show'], {
      encoding: 'utf8',
    }).stdout.includes(` ${prefix}`),
  );
}

/** Where test Petris on this host claim their slots: a directory per slot, holding the pid of
 * the test process that claimed it (tmpfs: gone at a reboot). */
const SLOTS_DIR = '/run/petri-test-slots';
const SLOTS = 250;

/** A slot no running test process holds: made with mkdir (atomic), taken over from a process
 * that is gone (a test killed before its destroy). */
function claimSlot(): number {
  mkdirSync(SLOTS_DIR, { recursive: true });
  const start = Math.floor(Math.random() * SLOTS);
  for (let i = 0; i < SLOTS; i++) {
    const slot = (start + i) % SLOTS;
    const dir = path.join(SLOTS_DIR, String(slot));
    if (!makeDir(dir)) {
      // Held, or being claimed right now (no pid yet): only a gone holder's is taken over,
      // by removing it and claiming it afresh (mkdir again decides between two takers).
      const holder = holderOf(dir);
      if (holder === 0 || holder === process.pid || isAlive(holder)) continue;
      rmSync(dir, { recursive: true, force: true });
      if (!makeDir(dir)) continue;
    }
    writeFileSync(path.join(dir, 'pid'), String(process.pid));
    return slot;
  }
  throw new Error(`all ${SLOTS} test Petri slots are taken (${SLOTS_DIR}): stop some test processes`);
}

/** The pid in a slot; 0 while its claimer has not written it yet, or it is gone. */
function holderOf(dir: string): number {
  try {
    return Number(readFileSync(path.join(dir, 'pid'), 'utf8')) || 0;
  } catch {
    return 0;
  }
}

function makeDir(dir: string): boolean {
  try {
    mkdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

function releaseSlot(slot: number): void {
  rmSync(path.join(SLOTS_DIR, String(slot)), { recursive: true, force: true });
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `petri server ARGS` run to its end (--stop-all, a start that must fail): exit code and
 * output. A server that starts instead is stopped (SIGTERM) after `timeoutMs`, and its
 * answer is the 'running' flag. */
export async function runPetriServer(
  args: string[],
  timeoutMs = 30_000,
): Promise<{ code: number | null; output: string; running: boolean }> {
  const proc = spawn(process.execPath, [...SERVER, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout?.on('data', (d) => (output += d));
  proc.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let running = false;
  await until(
    () => {
      running = output.includes('Petri is running');
      return proc.exitCode !== null || proc.signalCode !== null || running;
    },
    { timeout: timeoutMs, message: `petri server ${args.join(' ')} to end` },
  ).catch(() => undefined);
  if (proc.exitCode === null) proc.kill('SIGTERM');
  return { code: await exited, output, running };
}

/** A small app written to a temp dir, for cases that need no fixture of their own. */
export function writeApp(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-app-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

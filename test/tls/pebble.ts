// A real ACME server for tests: Debian's pebble on loopback ports of the test's own, with
// pebble-challtestsrv as its DNS (every A query answered with 127.0.0.1, so pebble validates
// HTTP-01 against the test Petri's router at httpPort). The directory's own TLS certificate
// is made here (caFile: what Petri's tls.acme.caFile trusts); pebble's issuing root, what a
// client checks the served chain with, comes from pebble's management endpoint. Nothing but
// loopback is reached; what the harness started is stopped by pid.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';

export interface PebbleOptions {
  /** The port pebble validates HTTP-01 challenges on: the test Petri's router httpPort. */
  httpPort: number;
  /** Lifetime of the certificates it issues (pebble's default: five years). */
  validitySeconds?: number;
  /** External account binding keys (kid → base64url HMAC key); set: accounts must have one. */
  eab?: Record<string, string>;
}

export class Pebble {
  private readonly procs: ChildProcess[] = [];
  private output = '';
  /** pebble's issuing root (PEM), once started. */
  root = '';

  private constructor(
    readonly dir: string,
    readonly acmePort: number,
    readonly managementPort: number,
    readonly dnsPort: number,
    readonly challtestPort: number,
  ) {}

  /** https://127.0.0.1:PORT/dir */
  get directoryUrl(): string {
    return `https://127.0.0.1:${this.acmePort}/dir`;
  }

  /** The CA of the directory's TLS certificate (for tls.acme.caFile). */
  get caFile(): string {
    return path.join(this.dir, 'directory-cert.pem');
  }

  /** pebble's issuing root as a file (curl --cacert). */
  get rootFile(): string {
    return path.join(this.dir, 'root.pem');
  }

  static async start(opts: PebbleOptions): Promise<Pebble> {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-pebble-'));
    const pebble = new Pebble(dir, await freePort(), await freePort(), await freePort(), await freePort());
    try {
      await pebble.launch(opts);
    } catch (err) {
      await pebble.stop();
      throw err;
    }
    return pebble;
  }

  private async launch(opts: PebbleOptions): Promise<void> {
    const { dir } = this;
    const key = path.join(dir, 'directory-key.pem');
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        key,
        '-out',
        this.caFile,
        '-days',
        '2',
        '-subj',
        '/CN=pebble directory',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { encoding: 'utf8' },
    );
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
    const config = path.join(dir, 'pebble-config.json');
    writeFileSync(
      config,
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${this.acmePort}`,
          managementListenAddress: `127.0.0.1:${this.managementPort}`,
          certificate: this.caFile,
          privateKey: key,
          httpPort: opts.httpPort,
          // TLS-ALPN-01 off: Petri answers HTTP-01 only.
          tlsPort: 0,
          ocspResponderURL: '',
          externalAccountBindingRequired: opts.eab !== undefined,
          ...(opts.eab ? { externalAccountMACKeys: opts.eab } : {}),
          ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
        },
      }),
    );
    const loopback = (port: number) => `127.0.0.1:${port}`;
    this.spawn('pebble-challtestsrv', [
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
      '-dns01',
      loopback(this.dnsPort),
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      loopback(this.challtestPort),
    ]);
    await until(() => this.output.includes('Starting management server'), {
      timeout: 10_000,
      message: `pebble-challtestsrv to start: ${this.output}`,
    });
    this.spawn('pebble', ['-config', config, '-dnsserver', loopback(this.dnsPort)], {
      // No artificial waits before validating, and no nonces refused for the sport of it.
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
    });
    const ca = readFileSync(this.caFile);
    // pebble makes its root and intermediate keys at start: a second or two.
    this.root = await until(() => fetchText(`https://127.0.0.1:${this.managementPort}/roots/0`, ca), {
      timeout: 30_000,
      message: `pebble to serve its root: ${this.output}`,
    });
    writeFileSync(this.rootFile, this.root);
    await until(() => fetchText(this.directoryUrl, ca), { timeout: 10_000, message: 'the ACME directory' });
  }

  private spawn(command: string, args: string[], env: Record<string, string> = {}): void {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.procs.push(proc);
    proc.stdout?.on('data', (d) => (this.output += d));
    proc.stderr?.on('data', (d) => (this.output += d));
    proc.once('exit', (code, signal) => {
      this.output += `\n${command} exited (${code ?? signal})\n`;
    });
  }

  /** Makes pebble's DNS answer `host` with `address` (a loopback address: nothing else is
   * ever reached), e.g. 127.0.0.2, where no router listens, for a challenge that fails. */
  async addA(host: string, address: string): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${this.challtestPort}/add-a`, {
      method: 'POST',
      body: JSON.stringify({ host: `${host}.`, addresses: [address] }),
    });
    if (!res.ok) throw new Error(`pebble-challtestsrv add-a: ${res.status} ${await res.text()}`);
  }

  /** Adds a TXT record to pebble's DNS, e.g. a custom domain's proof (_petri-challenge.HOST). */
  async setTxt(host: string, value: string): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${this.challtestPort}/set-txt`, {
      method: 'POST',
      body: JSON.stringify({ host: `${host}.`, value }),
    });
    if (!res.ok) throw new Error(`pebble-challtestsrv set-txt: ${res.status} ${await res.text()}`);
  }

  /** What pebble and its DNS said (for failure messages). */
  get log(): string {
    return this.output;
  }

  /** Stops pebble and its DNS (by pid) and removes the files; the ACME server is then down. */
  async stop(): Promise<void> {
    for (const proc of this.procs.reverse()) {
      if (proc.exitCode !== null || proc.signalCode !== null) continue;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGKILL');
      await exited;
    }
    this.procs.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function fetchText(url: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
  });
}

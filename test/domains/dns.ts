// A DNS server for tests: Debian's pebble-challtestsrv on loopback ports of the test's own,
// its other challenge servers off. Every A query is answered with 127.0.0.1 unless a test
// gives a name other addresses (addA) or makes it a CNAME (setCname); AAAA queries get no
// answer; TXT queries get what setTxt set (a claim's proof, _petri-challenge.HOST). Stopped
// by pid.
import { type ChildProcess, spawn } from 'node:child_process';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';

export class TestDns {
  private output = '';

  private constructor(
    private readonly proc: ChildProcess,
    /** The DNS port on 127.0.0.1 (UDP and TCP). */
    readonly port: number,
    private readonly managementPort: number,
  ) {
    proc.stdout?.on('data', (d) => (this.output += d));
    proc.stderr?.on('data', (d) => (this.output += d));
  }

  /** domains.resolver for Petri's config. */
  get resolver(): string[] {
    return [`127.0.0.1:${this.port}`];
  }

  static async start(): Promise<TestDns> {
    const port = await freePort();
    const managementPort = await freePort();
    const proc = spawn(
      '/usr/bin/pebble-challtestsrv',
      [
        '-dns01',
        `127.0.0.1:${port}`,
        '-management',
        `127.0.0.1:${managementPort}`,
        '-http01',
        '',
        '-https01',
        '',
        '-tlsalpn01',
        '',
        '-defaultIPv4',
        '127.0.0.1',
        '-defaultIPv6',
        '',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const dns = new TestDns(proc, port, managementPort);
    try {
      await until(
        async () => {
          if (proc.exitCode !== null) throw new Error(`pebble-challtestsrv exited: ${dns.output}`);
          return dns.manage('/clear-a', { host: 'ready.test.' }).then(
            () => true,
            () => false,
          );
        },
        { timeout: 10_000, message: 'pebble-challtestsrv to answer' },
      );
    } catch (err) {
      await dns.stop();
      throw err;
    }
    return dns;
  }

  /** Answers A queries for `host` with these addresses instead of 127.0.0.1. */
  addA(host: string, addresses: string[]): Promise<void> {
    return this.manage('/add-a', { host: `${host}.`, addresses });
  }

  /** Makes `host` a CNAME to `target` (whose A queries get the default answer). */
  setCname(host: string, target: string): Promise<void> {
    return this.manage('/set-cname', { host: `${host}.`, target: `${target}.` });
  }

  /** Adds a TXT record `value` to `host` (e.g. _petri-challenge.www.example.test). */
  setTxt(host: string, value: string): Promise<void> {
    return this.manage('/set-txt', { host: `${host}.`, value });
  }

  /** Removes `host`'s TXT records. */
  clearTxt(host: string): Promise<void> {
    return this.manage('/clear-txt', { host: `${host}.` });
  }

  private async manage(path: string, body: object): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${this.managementPort}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`pebble-challtestsrv ${path}: ${res.status} ${await res.text()}`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.kill('SIGTERM');
    await exited;
  }
}

// The hostile-app suite: an experiment that attacks its host and its neighbours. Every
// attempt must fail, the platform must record what it should, and a neighbour app must
// keep answering throughout.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { SteadyLoad } from './load.js';
import { FIXTURES, TestPetri } from './petri.js';

interface Outcome {
  ok: boolean;
  value?: unknown;
  error?: string;
}

describe('a hostile app cannot reach what is not its own', () => {
  let petri: TestPetri;
  let neighbour: SteadyLoad;
  let gateway: string;
  let neighbourAddress: string;
  let neighbourPort: number;
  // "The internet": a host in a network namespace this test makes, never a real address.
  const inet = {
    ns: `pt-inet-${process.pid}`,
    host: `vi${process.pid}`.slice(0, 15),
    server: undefined as ChildProcess | undefined,
  };
  const third = 100 + (process.pid % 100);
  const inetAddress = `10.99.${third}.2`;

  const attack = async (what: string, params: Record<string, string | number> = {}): Promise<Outcome> => {
    const query = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
    // An attack may have cost the app its life (that is the point of some): wait for it back.
    await until(async () => (await petri.app('hostile', '/whoami')).status === 200, {
      timeout: 30_000,
      message: 'the hostile app to answer',
    });
    const res = await petri.app('hostile', `/${what}?${query}`);
    assert.equal(res.status, 200, `${what}: ${res.body}`);
    return JSON.parse(res.body) as Outcome;
  };
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    return r;
  };
  const processOf = async (app: string) => {
    const ps = JSON.parse((await ok(['ps', '--app', app, '--json'])).stdout) as {
      processes: { name: string; state: string; address?: string; port: number; lastExit: string | null }[];
    };
    return ps.processes.find((p) => p.name === 'web.1')!;
  };

  before(async () => {
    petri = await TestPetri.start();
    gateway = petri.config.network.subnet.replace(/\.0\/\d+$/, '.1');
    await ok(['apps', 'create', 'neighbour']);
    await ok(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'neighbour']);
    await ok(['apps', 'create', 'hostile']);
    // Disk below memory: /tmp is memory (tmpfs), and it must fill before the memory does.
    await ok(['apps', 'limits', 'hostile', '--memory', '128', '--pids', '64', '--disk', '48']);
    await ok(['deploy', path.join(FIXTURES, 'hostile'), '--app', 'hostile']);
    const n = await processOf('neighbour');
    neighbourAddress = n.address ?? '127.0.0.1';
    neighbourPort = n.port;
    execFileSync('ip', ['netns', 'add', inet.ns]);
    execFileSync('ip', ['link', 'add', inet.host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', inet.ns]);
    execFileSync('ip', ['addr', 'add', `10.99.${third}.1/30`, 'dev', inet.host]);
    execFileSync('ip', ['link', 'set', inet.host, 'up']);
    execFileSync('ip', ['-n', inet.ns, 'addr', 'add', `${inetAddress}/30`, 'dev', 'eth0']);
    execFileSync('ip', ['-n', inet.ns, 'link', 'set', 'eth0', 'up']);
    inet.server = spawn('ip', [
      'netns',
      'exec',
      inet.ns,
      process.execPath,
      '-e',
      "require('net').createServer((s) => s.end('internet')).listen(80)",
    ]);
    neighbour = new SteadyLoad(petri.httpPort, 'neighbour.petri.localhost', { keepAlive: 1, fresh: 1 });
  });

  after(async () => {
    const result = await neighbour?.stop();
    inet.server?.kill('SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', inet.ns]);
    } catch {
      // not made
    }
    await petri?.destroy();
    if (result) {
      assert.deepEqual(
        result.failures,
        [],
        `the neighbour failed ${result.failures.length} of ${result.requests}`,
      );
      // Normal is a few ms; a neighbour starved by the attacks would take seconds.
      assert.ok(
        result.slowestMs < 2000,
        `the neighbour's slowest answer took ${result.slowestMs.toFixed(0)} ms`,
      );
    }
  });

  test("reading another app's files, Petri's data dir, store, tokens and keys, /etc/shadow fails", async () => {
    for (const file of [
      path.join(petri.dataDir, 'petri.db'),
      path.join(petri.dataDir, 'admin.token'),
      path.join(petri.dataDir, 'secret.key'),
      path.join(petri.dataDir, 'apps'),
      '/etc/shadow',
      '/root',
    ]) {
      const r = await attack(file.endsWith('apps') || file === '/root' ? 'list' : 'read', { path: file });
      assert.equal(r.ok, false, `${file} was readable`);
      assert.match(r.error ?? '', /ENOENT|EACCES/);
    }
    const root = await attack('list', { path: '/' });
    assert.ok(!(root.value as string[]).includes('root') && !(root.value as string[]).includes('work'));
  });

  test('writing outside /app and /tmp fails; /app and /tmp are writable', async () => {
    for (const file of ['/etc/pwned', '/usr/lib/pwned', '/pwned', '/proc/sys/kernel/hostname']) {
      const r = await attack('write', { path: file });
      assert.equal(r.ok, false, `${file} was writable`);
    }
    assert.equal((await attack('write', { path: '/app/mine' })).ok, true);
    assert.equal((await attack('write', { path: '/tmp/mine' })).ok, true);
  });

  test("signalling or tracing another app's processes fails", async () => {
    const cg = `/sys/fs/cgroup/pids/${petri.config.cgroupParent}`;
    const neighbourInstance = execFileSync('ls', [cg])
      .toString()
      .split('\n')
      .find((d) => d.startsWith('neighbour-'))!;
    const pids = readFileSync(path.join(cg, neighbourInstance, 'cgroup.procs'), 'utf8')
      .trim()
      .split('\n');
    for (const pid of pids) {
      const r = await attack('signal', { pid });
      assert.equal(r.ok, false);
      assert.equal(r.error, 'ESRCH');
      const traced = await attack('syscall', { nr: 101, arg: 16 /* PTRACE_ATTACH */ });
      assert.equal(traced.value, '-1 1', 'ptrace refused with EPERM');
    }
    for (const [name, nr] of [
      ['mount', 165],
      ['bpf', 321],
      ['kexec_load', 246],
      ['init_module', 175],
      ['unshare', 272],
    ] as const) {
      assert.equal((await attack('syscall', { nr })).value, '-1 1', `${name} refused with EPERM`);
    }
    // socket(AF_VSOCK, ...): in a virtual machine it reaches the hypervisor's host, past every firewall.
    assert.equal((await attack('syscall', { nr: 41, arg: 40 })).value, '-1 97', 'AF_VSOCK refused');
  });

  test('connecting to a neighbour, the control plane, the router or any other host port fails', async () => {
    const targets: [string, number][] = [
      [neighbourAddress, neighbourPort],
      [gateway, petri.apiPort],
      [gateway, petri.httpPort],
      [gateway, 22],
      // The add-on servers of the host (PostgreSQL, MariaDB, Redis): not reachable at all.
      [gateway, 5432],
      [gateway, 3306],
      [gateway, 6379],
      ['127.0.0.1', petri.apiPort],
      ['127.0.0.1', petri.httpPort],
      [inetAddress, 80],
    ];
    for (const [host, port] of targets) {
      const r = await attack('connect', { host, port });
      assert.equal(r.ok, false, `reached ${host}:${port}`);
    }
    const socket = await attack('list', { path: path.join(petri.dataDir, 'router') });
    assert.equal(socket.ok, false, "HAProxy's sockets are not visible");
  });

  test('an undeclared host is refused by the egress proxy, and the attempt is recorded', async () => {
    const refused = await attack('proxy', { target: 'undeclared.example:443' });
    assert.equal(refused.value, 'HTTP 403');
    await until(
      async () => {
        const egress = JSON.parse((await ok(['egress', '--app', 'hostile', '--json'])).stdout) as {
          declared: string[];
          attempts: { host: string; allowed: boolean; count: number }[];
        };
        assert.deepEqual(egress.declared, ['allowed.example:443']);
        return egress.attempts.some((a) => a.host === 'undeclared.example' && !a.allowed && a.count >= 1);
      },
      { timeout: 5000, message: 'the refusal in petri egress' },
    );
    const report = await ok(['egress', 'report', '--csv']);
    assert.match(report.stdout, /^app,host,port,allowed,count,last_seen,last_reason$/m);
    assert.match(report.stdout, /^hostile,undeclared\.example,443,false,/m);
  });

  test('a fork bomb hits the pids limit', async () => {
    assert.equal((await attack('forkbomb')).value, 'fork refused');
    await until(
      async () =>
        /web\.1 hit its process limit \(64\)/.test(
          (await ok(['logs', '--app', 'hostile', '-n', '200'])).stdout,
        ),
      { timeout: 10_000, message: 'the process limit in petri logs' },
    );
  });

  test('thousands of open files hit the open-files limit', async () => {
    assert.match(String((await attack('sockets', { n: 20000 })).value), /^stopped after \d+: EMFILE$/);
  });

  test('filling the disk stops at the disk limit', async () => {
    assert.match(String((await attack('filldisk', { path: '/app/fill.bin' })).value), /ENOSPC|EDQUOT/);
    assert.match(String((await attack('filldisk', { path: '/tmp/fill.bin' })).value), /ENOSPC|EDQUOT/);
  });

  test('setuid binaries do not make the app root', async () => {
    assert.match(String((await attack('setuid')).value), /^refused/);
    const who = (await attack('whoami')).value as { uid: number };
    assert.notEqual(who.uid, 0);
  });

  test('a memory bomb is killed by the memory limit, and petri ps and logs say so', async () => {
    await until(async () => (await petri.app('hostile', '/whoami')).status === 200, { timeout: 30_000 });
    await petri.app('hostile', '/membomb').catch(() => undefined);
    let logs = '';
    await until(
      async () => {
        logs = (await ok(['logs', '--app', 'hostile', '-n', '200'])).stdout;
        return /killed: memory limit 128 MiB/.test(logs);
      },
      { timeout: 20_000, message: 'the kill in petri logs' },
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}; the logs:\n${logs}\nthe server's output:\n${petri.output.slice(-4000)}`,
      );
    });
    const web = await processOf('hostile');
    assert.match(web.lastExit ?? '', /web\.1 exited \(killed: memory limit 128 MiB\)/);
    await until(async () => (await petri.app('hostile')).status === 200, {
      timeout: 20_000,
      message: 'hostile back',
    });
  });
});

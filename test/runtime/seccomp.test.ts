// The seccomp filter: a golden disassembly of the x86_64 program, a tiny BPF interpreter that
// judges (arch, nr) pairs, and the real thing: bwrap installs it and refused syscalls fail
// while a Node web server still starts. UPDATE_GOLDEN=1 rewrites the golden file.
// The real tests need root (to drop to an unused uid), bwrap and an x86_64 host.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ALLOWED_SOCKET_FAMILIES,
  AUDIT_ARCH,
  compileSeccompFilter,
  DEFAULT_DENIED_SYSCALLS,
  rlimitArgs,
  type SeccompArch,
  seccompDeniedNames,
  seccompSocketSyscalls,
  seccompSyscallNumber,
} from '../../src/runtime/local/seccomp.js';

const KILL = 'KILL';
const ALLOW = 'ALLOW';
type Verdict = typeof KILL | typeof ALLOW | `ERRNO(${number})`;
const EPERM = 'ERRNO(1)';
const ENOSYS = 'ERRNO(38)';
const EAFNOSUPPORT = 'ERRNO(97)';
const EPROTONOSUPPORT = 'ERRNO(93)';
const AF_VSOCK = 40;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

function decode(program: Buffer): Insn[] {
  assert.equal(program.length % 8, 0, 'whole sock_filter entries');
  const out: Insn[] = [];
  for (let i = 0; i < program.length; i += 8) {
    out.push({
      code: program.readUInt16LE(i),
      jt: program.readUInt8(i + 2),
      jf: program.readUInt8(i + 3),
      k: program.readUInt32LE(i + 4),
    });
  }
  return out;
}

/** Runs the filter the way the kernel would for a syscall whose first argument is arg0 (the
 * others zero): only the four opcodes the generator emits are understood, anything else
 * fails the test. */
function evaluate(program: Buffer, auditArch: number, nr: number, arg0 = 0n, arg2 = 0n): Verdict {
  const insns = decode(program);
  const data = Buffer.alloc(64); // struct seccomp_data
  data.writeInt32LE(nr | 0, 0);
  data.writeUInt32LE(auditArch, 4);
  data.writeBigUInt64LE(arg0, 16);
  data.writeBigUInt64LE(arg2, 32);
  let a = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    switch (code) {
      case 0x20: // ld [k]
        a = data.readUInt32LE(k);
        break;
      case 0x15: // jeq #k
        pc += a === k ? jt : jf;
        break;
      case 0x35: // jge #k
        pc += a >= k ? jt : jf;
        break;
      case 0x06: {
        // ret #k
        const action = (k & 0xffff0000) >>> 0;
        if (action === 0x80000000) return KILL;
        if (action === 0x7fff0000) return ALLOW;
        if (action === 0x00050000) return `ERRNO(${k & 0xffff})`;
        throw new Error(`unexpected return action 0x${k.toString(16)}`);
      }
      default:
        throw new Error(`unexpected opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('fell off the end of the program');
}

function disassemble(program: Buffer, arch: SeccompArch): string {
  const names = new Map<number | undefined, string>(
    DEFAULT_DENIED_SYSCALLS.map((n) => [seccompSyscallNumber(arch, n), n]),
  );
  for (const [name, nr] of Object.entries(seccompSocketSyscalls(arch))) names.set(nr, name);
  const families = new Map(Object.entries(ALLOWED_SOCKET_FAMILIES).map(([name, n]) => [n as number, name]));
  const loaded = ['nr', 'arch', '', '', 'args[0]', '', '', '', 'args[2]'];
  let a = 'nr';
  return decode(program)
    .map(({ code, jt, jf, k }, i) => {
      const hex = program
        .subarray(i * 8, i * 8 + 8)
        .toString('hex')
        .replace(/(..)(?!$)/g, '$1 ');
      const hk = `0x${k.toString(16)}`;
      let text: string;
      if (code === 0x20) {
        a = loaded[k / 4] ?? `?${k}`;
        text = `ld  [${k}]  ; ${a}`;
      } else if (code === 0x06) text = `ret ${hk}  ; ${evaluate(program.subarray(i * 8, i * 8 + 8), 0, 0)}`;
      else {
        const op = code === 0x15 ? 'jeq' : 'jge';
        // A compare right before `ld [16]` is of a syscall number (the socket blocks).
        const next = decode(program)[i + 1];
        const ofNr = a === 'nr' || (next?.code === 0x20 && next.k === 16);
        const label = ofNr ? names.get(k) : a === 'args[0]' ? families.get(k) : 'NETLINK_ROUTE';
        const note = label ? `  ; ${label}` : '';
        text = `${op} #${hk}, +${jt}, +${jf}${note}`;
      }
      return `${String(i).padStart(3, '0')}: ${hex}  ${text}`;
    })
    .join('\n')
    .concat('\n');
}

function golden(name: string, actual: string): void {
  const file = fileURLToPath(new URL(`./golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `golden file ${name} differs (UPDATE_GOLDEN=1 to accept)`);
}

test('the default x86_64 program matches the golden file', () => {
  golden('seccomp-x86_64.txt', disassemble(compileSeccompFilter(), 'x86_64'));
});

test('the program is deterministic and every jump stays inside it', () => {
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const program = compileSeccompFilter({ arch });
    assert.deepEqual(program, compileSeccompFilter({ arch }));
    const insns = decode(program);
    insns.forEach(({ code, jt, jf }, pc) => {
      if (code === 0x15 || code === 0x35) assert.ok(pc + 1 + Math.max(jt, jf) < insns.length);
    });
    assert.equal(insns.at(-1)?.code, 0x06, 'ends with a return');
  }
});

// Independent of the module's table: the numbers of linux-libc-dev's headers.
const HEADERS: Record<SeccompArch, { file: string; define: RegExp }> = {
  x86_64: { file: '/usr/include/x86_64-linux-gnu/asm/unistd_64.h', define: /^#define __NR_(\w+)\s+(\d+)/gm },
  aarch64: { file: '/usr/include/asm-generic/unistd.h', define: /^#define __NR(?:3264)?_(\w+)\s+(\d+)/gm },
};

for (const arch of ['x86_64', 'aarch64'] as const) {
  const { file, define } = HEADERS[arch];
  test(`${arch} numbers agree with ${file}`, { skip: !existsSync(file) && 'no kernel headers' }, () => {
    const header = new Map<string, number>();
    for (const m of readFileSync(file, 'utf8').matchAll(define)) header.set(m[1]!, Number(m[2]));
    for (const name of DEFAULT_DENIED_SYSCALLS) {
      assert.equal(seccompSyscallNumber(arch, name), header.get(name), `${arch} ${name}`);
    }
  });
}

const allowedConnect: Record<SeccompArch, number> = { x86_64: 42, aarch64: 203 };

describe('the filter judges syscalls', () => {
  // Spot checks typed from the headers, so a wrong table cannot vouch for itself.
  const allowed: Record<SeccompArch, Record<string, number>> = {
    x86_64: {
      read: 0,
      write: 1,
      openat: 257,
      socket: 41,
      connect: 42,
      clone: 56,
      futex: 202,
      epoll_wait: 232,
      personality: 135,
    },
    aarch64: {
      read: 63,
      write: 64,
      openat: 56,
      socket: 198,
      connect: 203,
      clone: 220,
      futex: 98,
      epoll_pwait: 22,
      personality: 92,
    },
  };
  const refused: Record<SeccompArch, Record<string, number>> = {
    x86_64: { mount: 165, ptrace: 101, bpf: 321, kexec_load: 246, io_uring_setup: 425, _sysctl: 156 },
    aarch64: { mount: 40, ptrace: 117, bpf: 280, kexec_load: 104, io_uring_setup: 425 },
  };

  for (const arch of ['x86_64', 'aarch64'] as const) {
    const program = compileSeccompFilter({ arch });

    test(`${arch}: every denied name gets EPERM (clone3 ENOSYS)`, () => {
      const names = seccompDeniedNames(arch);
      assert.ok(names.length > 40);
      for (const name of names) {
        const nr = seccompSyscallNumber(arch, name)!;
        const expected = name === 'clone3' ? ENOSYS : EPERM;
        assert.equal(evaluate(program, AUDIT_ARCH[arch], nr), expected, `${arch} ${name} (${nr})`);
      }
      for (const [name, nr] of Object.entries(refused[arch])) {
        assert.equal(evaluate(program, AUDIT_ARCH[arch], nr), EPERM, `${arch} ${name}`);
      }
      assert.equal(evaluate(program, AUDIT_ARCH[arch], 435), ENOSYS, 'clone3');
    });

    test(`${arch}: what a web app needs is allowed`, () => {
      for (const [name, nr] of Object.entries(allowed[arch])) {
        // An AF_INET first argument, which socket needs; the others do not look at it.
        assert.equal(evaluate(program, AUDIT_ARCH[arch], nr, 2n), ALLOW, `${arch} ${name} (${nr})`);
      }
    });

    test(`${arch}: a foreign arch is killed`, () => {
      for (const foreign of [0x40000003 /* i386 */, AUDIT_ARCH[arch === 'x86_64' ? 'aarch64' : 'x86_64']]) {
        assert.equal(evaluate(program, foreign, 0), KILL);
        assert.equal(evaluate(program, foreign, 165), KILL);
      }
    });
  }

  for (const arch of ['x86_64', 'aarch64'] as const) {
    test(`${arch}: socket and socketpair only for AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK`, () => {
      const program = compileSeccompFilter({ arch });
      for (const nr of Object.values(seccompSocketSyscalls(arch))) {
        for (const family of Object.values(ALLOWED_SOCKET_FAMILIES)) {
          assert.equal(
            evaluate(program, AUDIT_ARCH[arch], nr, BigInt(family)),
            ALLOW,
            `${nr} family ${family}`,
          );
        }
        // AF_UNSPEC, AF_PACKET, AF_KEY, AF_ALG, AF_VSOCK, AF_XDP, past AF_MAX, and a family
        // whose low half is allowed but not the whole (the kernel reads an int: allowed).
        for (const family of [0, 17, 15, 38, AF_VSOCK, 44, 46, 0xffffffff]) {
          assert.equal(
            evaluate(program, AUDIT_ARCH[arch], nr, BigInt(family)),
            EAFNOSUPPORT,
            `${nr} family ${family}`,
          );
        }
        assert.equal(evaluate(program, AUDIT_ARCH[arch], nr, (1n << 32n) | 2n), ALLOW, 'high half ignored');
        // Netlink: NETLINK_ROUTE (0) for getifaddrs, none of audit (9), sock_diag (4),
        // netfilter (12), xfrm (6), kobject uevents (15), generic (16), crypto (21).
        const netlink = BigInt(ALLOWED_SOCKET_FAMILIES.AF_NETLINK);
        assert.equal(evaluate(program, AUDIT_ARCH[arch], nr, netlink, 0n), ALLOW);
        for (const protocol of [9n, 4n, 12n, 6n, 15n, 16n, 21n]) {
          assert.equal(
            evaluate(program, AUDIT_ARCH[arch], nr, netlink, protocol),
            EPROTONOSUPPORT,
            `netlink ${protocol}`,
          );
        }
        assert.equal(evaluate(program, AUDIT_ARCH[arch], nr, 2n, 6n), ALLOW, 'AF_INET with IPPROTO_TCP');
      }
      // Another syscall with the same first argument is not judged by family.
      assert.equal(evaluate(program, AUDIT_ARCH[arch], allowedConnect[arch], BigInt(AF_VSOCK)), ALLOW);
    });
  }

  test('x86_64: the x32 ABI is killed, on aarch64 that bit means nothing special', () => {
    const x86 = compileSeccompFilter();
    assert.equal(evaluate(x86, AUDIT_ARCH.x86_64, 0x40000000), KILL);
    assert.equal(evaluate(x86, AUDIT_ARCH.x86_64, 0x40000000 + 39), KILL, 'x32 getpid');
    assert.equal(evaluate(x86, AUDIT_ARCH.x86_64, -1), KILL, 'nr -1 reads as 0xffffffff');
    assert.equal(evaluate(x86, AUDIT_ARCH.x86_64, 0x3fffffff), ALLOW);
    assert.equal(evaluate(compileSeccompFilter({ arch: 'aarch64' }), AUDIT_ARCH.aarch64, 0x40000000), ALLOW);
  });

  test('deny replaces the default list; unknown names are refused; arch-less names are skipped', () => {
    const onlyPtrace = compileSeccompFilter({ deny: ['ptrace'] });
    assert.equal(evaluate(onlyPtrace, AUDIT_ARCH.x86_64, 101), EPERM);
    assert.equal(evaluate(onlyPtrace, AUDIT_ARCH.x86_64, 165), ALLOW, 'mount no longer listed');
    assert.throws(() => compileSeccompFilter({ deny: ['socket'] }), /unknown syscall 'socket'/);
    const arm = compileSeccompFilter({ arch: 'aarch64', deny: ['iopl', 'ptrace'] });
    assert.equal(decode(arm).length, 4 + 2 + 2 * 11 + 1, 'arch check, ptrace, two family checks, allow');
    assert.ok(!seccompDeniedNames('aarch64').includes('iopl'));
    assert.ok(seccompDeniedNames('x86_64').includes('_sysctl'));
    assert.ok(!DEFAULT_DENIED_SYSCALLS.includes('personality'), 'glibc queries it');
  });
});

test('rlimitArgs is a prlimit prefix with soft = hard', () => {
  assert.deepEqual(rlimitArgs({ nofile: 1024 }), ['/usr/bin/prlimit', '--nofile=1024:1024', '--']);
  assert.throws(() => rlimitArgs({ nofile: 0 }), /positive integer/);
  assert.throws(() => rlimitArgs({ nofile: 1.5 }), /positive integer/);
});

// --- The real thing -------------------------------------------------------------------------

const UID = 64123; // unused by the host and by the other runtime tests
const canRun =
  process.getuid?.() === 0 &&
  process.arch === 'x64' &&
  existsSync('/usr/bin/bwrap') &&
  existsSync('/usr/bin/setpriv');

describe('under bwrap --seccomp', { skip: !canRun && 'needs root, x86_64 and bwrap' }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'petri-seccomp-'));
  // The sandbox uid starts in this directory, so it must be able to enter it.
  chmodSync(dir, 0o755);
  const filterFile = path.join(dir, 'filter.bpf');
  writeFileSync(filterFile, compileSeccompFilter());
  after(() => rmSync(dir, { recursive: true, force: true }));

  interface Run {
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }

  /** Runs `command` as UID inside bwrap; the filter travels on fd 3 unless `seccomp` is false. */
  function sandboxed(
    command: string[],
    opts: { seccomp?: boolean; prefix?: string[]; env?: Record<string, string> } = {},
  ): Promise<Run> {
    const seccomp = opts.seccomp ?? true;
    // A fresh open file for each run: the offset of a shared one would be at EOF after the
    // first bwrap read it.
    const fd = openSync(filterFile, 'r');
    const argv = [
      ...(opts.prefix ?? []),
      '/usr/bin/setpriv',
      `--reuid=${UID}`,
      `--regid=${UID}`,
      '--clear-groups',
      '--',
      '/usr/bin/bwrap',
      '--ro-bind',
      '/',
      '/',
      '--dev',
      '/dev',
      '--proc',
      '/proc',
      '--unshare-user',
      '--unshare-pid',
      '--die-with-parent',
      ...(seccomp ? ['--seccomp', '3'] : []),
      '--',
      ...command,
    ];
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: dir,
      env: { PATH: '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe', fd],
      timeout: 30_000,
    });
    closeSync(fd);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c;
    });
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c;
    });
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  /** Python calls syscall(nr, 0, 0, 0, 0, 0) and prints the result and errno. */
  const probe = (nr: number) => [
    '/usr/bin/python3',
    '-c',
    `import ctypes; libc = ctypes.CDLL(None, use_errno=True); r = libc.syscall(${nr}, 0, 0, 0, 0, 0); print(r, ctypes.get_errno())`,
  ];

  // Node 20 starts its threads with clone3 (now ENOSYS), so this also covers the fallback.
  test('a Node web server starts and stops', async () => {
    const run = await sandboxed([
      '/usr/bin/node',
      '-e',
      "require('http').createServer((q,s)=>s.end('ok')).listen(0, function(){console.log('up');this.close()})",
    ]);
    assert.equal(run.stdout, 'up\n', run.stderr);
    assert.equal(run.code, 0, run.stderr);
  });

  // Recent libuv keeps io_uring off unless UV_USE_IO_URING=1; with it on, libuv calls
  // io_uring_setup for file I/O and must fall back to its thread pool on EPERM.
  test('Node with io_uring requested still reads files and serves', async () => {
    const script = `require('fs').readFile('/etc/hostname', (err) => {
      if (err) throw err;
      require('http').createServer((q, s) => s.end('ok')).listen(0, function () {
        console.log('up'); this.close();
      });
    });`;
    const run = await sandboxed(['/usr/bin/node', '-e', script], { env: { UV_USE_IO_URING: '1' } });
    assert.equal(run.stdout, 'up\n', run.stderr);
    assert.equal(run.code, 0, run.stderr);
  });

  test('threads still start (clone3 gets ENOSYS, glibc falls back to clone)', async () => {
    const run = await sandboxed([
      '/usr/bin/python3',
      '-c',
      'import threading; t = threading.Thread(target=print, args=("thread",)); t.start(); t.join()',
    ]);
    assert.equal(run.stdout, 'thread\n', run.stderr);
  });

  for (const [name, nr] of [
    ['mount', 165],
    ['bpf', 321],
    ['kexec_load', 246],
    ['ptrace', 101],
    ['io_uring_setup', 425],
  ] as const) {
    test(`${name} (${nr}) fails with EPERM`, async () => {
      const run = await sandboxed(probe(nr));
      assert.equal(run.stdout, '-1 1\n', run.stderr);
    });
  }

  test('clone3 fails with ENOSYS', async () => {
    assert.equal((await sandboxed(probe(435))).stdout, '-1 38\n');
  });

  /** Python creates a socket (or pair) of a family and prints the result and errno. */
  const socketProbe = (call: 'socket' | 'socketpair', family: number) => [
    '/usr/bin/python3',
    '-c',
    'import ctypes; libc = ctypes.CDLL(None, use_errno=True); fds = (ctypes.c_int * 2)(); ' +
      (call === 'socket' ? `r = libc.socket(${family}, 1, 0)` : `r = libc.socketpair(${family}, 1, 0, fds)`) +
      '; print(min(r, 0), ctypes.get_errno())',
  ];

  test('AF_VSOCK sockets fail with EAFNOSUPPORT (and are created without the filter)', async () => {
    assert.equal((await sandboxed(socketProbe('socket', AF_VSOCK))).stdout, '-1 97\n');
    assert.equal((await sandboxed(socketProbe('socketpair', AF_VSOCK))).stdout, '-1 97\n');
    assert.equal(
      (await sandboxed(socketProbe('socket', AF_VSOCK), { seccomp: false })).stdout,
      '0 0\n',
      'this machine has vsock: an app could reach the hypervisor host',
    );
  });

  test('AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE still work (interfaces, name lookup, IPC); other netlink protocols do not', async () => {
    for (const family of Object.values(ALLOWED_SOCKET_FAMILIES)) {
      const type = family === ALLOWED_SOCKET_FAMILIES.AF_NETLINK ? 3 : 1; // SOCK_RAW for netlink
      const script = `import ctypes; libc = ctypes.CDLL(None, use_errno=True); r = libc.socket(${family}, ${type}, 0); print(min(r, 0), ctypes.get_errno())`;
      assert.equal((await sandboxed(['/usr/bin/python3', '-c', script])).stdout, '0 0\n', `family ${family}`);
    }
    for (const protocol of [
      4 /* NETLINK_SOCK_DIAG */, 9 /* NETLINK_AUDIT */, 15 /* NETLINK_KOBJECT_UEVENT */,
    ]) {
      const script = `import ctypes; libc = ctypes.CDLL(None, use_errno=True); r = libc.socket(16, 3, ${protocol}); print(min(r, 0), ctypes.get_errno())`;
      assert.equal(
        (await sandboxed(['/usr/bin/python3', '-c', script])).stdout,
        '-1 93\n',
        `netlink ${protocol}`,
      );
    }
    const node = await sandboxed([
      '/usr/bin/node',
      '-e',
      `const os = require('os'); const names = Object.keys(os.networkInterfaces());
       require('dns').lookup('localhost', { all: true }, (err, found) => {
         if (err) throw err;
         console.log(names.includes('lo'), found.length > 0);
       });`,
    ]);
    assert.equal(node.stdout, 'true true\n', node.stderr);
    // A child process with an IPC channel: a socketpair of AF_UNIX.
    const ipc = await sandboxed([
      '/usr/bin/node',
      '-e',
      "const c = require('child_process').spawn(process.execPath, ['-e', 'process.send(42)'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }); c.on('message', (m) => console.log(m));",
    ]);
    assert.equal(ipc.stdout, '42\n', ipc.stderr);
  });

  test('control: without the filter, ptrace and io_uring_setup do not answer EPERM', async () => {
    assert.equal((await sandboxed(probe(101), { seccomp: false })).stdout, '0 0\n', 'PTRACE_TRACEME works');
    assert.notEqual((await sandboxed(probe(425), { seccomp: false })).stdout, '-1 1\n');
  });

  test('no new user namespace: unshare -U fails (and works without the filter)', async () => {
    const run = await sandboxed(['/usr/bin/unshare', '-U', 'true']);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /Operation not permitted/);
    assert.equal((await sandboxed(['/usr/bin/unshare', '-U', 'true'], { seccomp: false })).code, 0);
  });

  test('an x32 syscall kills the process', async () => {
    // 0x40000027 is x32's getpid; python flushes "before" itself, "after" never comes.
    const script =
      'import ctypes; print("before", flush=True); ctypes.CDLL(None).syscall(0x40000027); print("after")';
    const run = await sandboxed(['/usr/bin/python3', '-c', script]);
    assert.equal(run.stdout, 'before\n');
    assert.equal(run.code, 128 + os.constants.signals.SIGSYS, 'bwrap reports the signal as 128 + SIGSYS');
  });

  test('prlimit --nofile=64:64 caps open files', async () => {
    const run = await sandboxed(['/bin/sh', '-c', 'ulimit -n'], { prefix: rlimitArgs({ nofile: 64 }) });
    assert.equal(run.stdout, '64\n', run.stderr);
  });
});

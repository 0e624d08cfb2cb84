// The sandbox's seccomp filter as plain data: a classic-BPF program, compiled here without
// libseccomp, that bwrap installs with `--seccomp FD` just before it execs the app. It refuses
// the syscalls no web app needs and that widen the kernel's attack surface, and sockets of
// any address family but the four a web app uses; everything else is allowed. Also the
// rlimit prefix of the launch argv. Pure: nothing here touches the system.

export type SeccompArch = 'x86_64' | 'aarch64';

interface DeniedSyscall {
  name: string;
  /** Syscall numbers; absent where the arch has no such syscall. Checked against Linux
   * arch/x86/entry/syscalls/syscall_64.tbl (x86_64) and include/uapi/asm-generic/unistd.h
   * (aarch64 uses the generic table), via linux-libc-dev 6.1's
   * /usr/include/x86_64-linux-gnu/asm/unistd_64.h and /usr/include/asm-generic/unistd.h. */
  x86_64?: number;
  aarch64?: number;
  /** The answer the caller gets. EPERM unless a fallback needs ENOSYS (see clone3). */
  errno: 'EPERM' | 'ENOSYS';
  why: string;
}

// personality is left out on purpose: glibc and Node call personality(0xffffffff) to query
// the current persona, and refusing only the setting form would need argument checks.
const SYSCALLS: readonly DeniedSyscall[] = [
  // Filesystem namespaces: the sandbox's view of files is bwrap's to build, not the app's.
  { name: 'mount', x86_64: 165, aarch64: 40, errno: 'EPERM', why: 'mount tables are set by bwrap' },
  { name: 'umount2', x86_64: 166, aarch64: 39, errno: 'EPERM', why: 'could uncover hidden host paths' },
  { name: 'pivot_root', x86_64: 155, aarch64: 41, errno: 'EPERM', why: 'mount tables are set by bwrap' },
  { name: 'chroot', x86_64: 161, aarch64: 51, errno: 'EPERM', why: 'classic escape helper' },
  { name: 'fsopen', x86_64: 430, aarch64: 430, errno: 'EPERM', why: 'new mount API' },
  { name: 'fsconfig', x86_64: 431, aarch64: 431, errno: 'EPERM', why: 'new mount API' },
  { name: 'fsmount', x86_64: 432, aarch64: 432, errno: 'EPERM', why: 'new mount API' },
  { name: 'fspick', x86_64: 433, aarch64: 433, errno: 'EPERM', why: 'new mount API' },
  { name: 'move_mount', x86_64: 429, aarch64: 429, errno: 'EPERM', why: 'new mount API' },
  { name: 'open_tree', x86_64: 428, aarch64: 428, errno: 'EPERM', why: 'new mount API' },
  { name: 'mount_setattr', x86_64: 442, aarch64: 442, errno: 'EPERM', why: 'new mount API' },
  {
    name: 'open_by_handle_at',
    x86_64: 304,
    aarch64: 265,
    errno: 'EPERM',
    why: 'opens files by handle, bypassing the mount view (the "shocker" escape)',
  },
  {
    name: 'name_to_handle_at',
    x86_64: 303,
    aarch64: 264,
    errno: 'EPERM',
    why: 'pairs with open_by_handle_at',
  },
  // Namespaces: no new ones and no joining others; bwrap's --disable-userns covers clone(2).
  { name: 'unshare', x86_64: 272, aarch64: 97, errno: 'EPERM', why: 'new namespaces' },
  { name: 'setns', x86_64: 308, aarch64: 268, errno: 'EPERM', why: 'joins other namespaces' },
  {
    name: 'clone3',
    x86_64: 435,
    aarch64: 435,
    // A BPF filter cannot read clone3's flags (they sit in a struct behind a pointer), so it
    // cannot tell a thread from a new namespace. ENOSYS makes glibc (>= 2.34) fall back to
    // clone(2), whose flags bwrap's --disable-userns already restrict; EPERM would be taken
    // as a real failure and break thread creation.
    errno: 'ENOSYS',
    why: 'flags unreadable by BPF; glibc falls back to clone',
  },
  // The machine itself: none of it is an app's business.
  { name: 'swapon', x86_64: 167, aarch64: 224, errno: 'EPERM', why: 'host swap' },
  { name: 'swapoff', x86_64: 168, aarch64: 225, errno: 'EPERM', why: 'host swap' },
  { name: 'reboot', x86_64: 169, aarch64: 142, errno: 'EPERM', why: 'host power' },
  { name: 'kexec_load', x86_64: 246, aarch64: 104, errno: 'EPERM', why: 'loads a new kernel' },
  { name: 'kexec_file_load', x86_64: 320, aarch64: 294, errno: 'EPERM', why: 'loads a new kernel' },
  { name: 'init_module', x86_64: 175, aarch64: 105, errno: 'EPERM', why: 'kernel modules' },
  { name: 'finit_module', x86_64: 313, aarch64: 273, errno: 'EPERM', why: 'kernel modules' },
  { name: 'delete_module', x86_64: 176, aarch64: 106, errno: 'EPERM', why: 'kernel modules' },
  { name: 'acct', x86_64: 163, aarch64: 89, errno: 'EPERM', why: 'host process accounting' },
  { name: 'quotactl', x86_64: 179, aarch64: 60, errno: 'EPERM', why: 'host disk quotas' },
  { name: 'settimeofday', x86_64: 164, aarch64: 170, errno: 'EPERM', why: 'host clock' },
  { name: 'clock_settime', x86_64: 227, aarch64: 112, errno: 'EPERM', why: 'host clock' },
  { name: 'clock_adjtime', x86_64: 305, aarch64: 266, errno: 'EPERM', why: 'host clock' },
  { name: 'adjtimex', x86_64: 159, aarch64: 171, errno: 'EPERM', why: 'host clock' },
  { name: 'syslog', x86_64: 103, aarch64: 116, errno: 'EPERM', why: 'kernel log leaks addresses' },
  { name: 'iopl', x86_64: 172, errno: 'EPERM', why: 'raw I/O ports (x86 only)' },
  { name: 'ioperm', x86_64: 173, errno: 'EPERM', why: 'raw I/O ports (x86 only)' },
  { name: 'vhangup', x86_64: 153, aarch64: 58, errno: 'EPERM', why: 'hangs up the terminal' },
  // Obsolete or removed: nothing calls them, so they are pure attack surface.
  { name: 'lookup_dcookie', x86_64: 212, aarch64: 18, errno: 'EPERM', why: 'oprofile leftover' },
  { name: 'uselib', x86_64: 134, errno: 'EPERM', why: 'a.out leftover' },
  { name: '_sysctl', x86_64: 156, errno: 'EPERM', why: 'removed sysctl interface' },
  { name: 'nfsservctl', x86_64: 180, aarch64: 42, errno: 'EPERM', why: 'removed in Linux 3.1' },
  // Kernel attack surface and reaching into other processes.
  { name: 'bpf', x86_64: 321, aarch64: 280, errno: 'EPERM', why: 'verifier bugs' },
  { name: 'perf_event_open', x86_64: 298, aarch64: 241, errno: 'EPERM', why: 'side channels, kernel bugs' },
  { name: 'userfaultfd', x86_64: 323, aarch64: 282, errno: 'EPERM', why: 'widens kernel race windows' },
  { name: 'ptrace', x86_64: 101, aarch64: 117, errno: 'EPERM', why: 'inspects other processes' },
  { name: 'process_vm_readv', x86_64: 310, aarch64: 270, errno: 'EPERM', why: 'reads other processes' },
  { name: 'process_vm_writev', x86_64: 311, aarch64: 271, errno: 'EPERM', why: 'writes other processes' },
  { name: 'kcmp', x86_64: 312, aarch64: 272, errno: 'EPERM', why: 'probes other processes' },
  { name: 'keyctl', x86_64: 250, aarch64: 219, errno: 'EPERM', why: 'kernel keyrings are not namespaced' },
  { name: 'add_key', x86_64: 248, aarch64: 217, errno: 'EPERM', why: 'kernel keyrings are not namespaced' },
  {
    name: 'request_key',
    x86_64: 249,
    aarch64: 218,
    errno: 'EPERM',
    why: 'kernel keyrings are not namespaced',
  },
  // io_uring: a frequent source of kernel bugs. libuv (Node 20) falls back to its thread pool.
  { name: 'io_uring_setup', x86_64: 425, aarch64: 425, errno: 'EPERM', why: 'kernel bugs' },
  { name: 'io_uring_enter', x86_64: 426, aarch64: 426, errno: 'EPERM', why: 'kernel bugs' },
  { name: 'io_uring_register', x86_64: 427, aarch64: 427, errno: 'EPERM', why: 'kernel bugs' },
];

export const DEFAULT_DENIED_SYSCALLS: readonly string[] = SYSCALLS.map((s) => s.name);

/** The address families socket(2) and socketpair(2) may create (include/linux/socket.h).
 * Every other family is refused with EAFNOSUPPORT, the kernel's own answer for a family it
 * lacks, so programs that probe for one carry on. AF_VSOCK above all: in a virtual machine
 * it talks to the hypervisor's host, past every network namespace and firewall. AF_NETLINK
 * stays, for NETLINK_ROUTE only, because libc needs it: getifaddrs (Node's
 * os.networkInterfaces) and getaddrinfo's AI_ADDRCONFIG ask the kernel for the interfaces'
 * addresses over it. */
export const ALLOWED_SOCKET_FAMILIES = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16 } as const;

/** The syscalls whose first argument is an address family. x86_64 has no socketcall(2)
 * (that is i386, killed as a foreign arch); aarch64 has none at all. */
const SOCKET_SYSCALLS: Record<SeccompArch, Record<'socket' | 'socketpair', number>> = {
  x86_64: { socket: 41, socketpair: 53 },
  aarch64: { socket: 198, socketpair: 199 },
};

/** socket's and socketpair's numbers on `arch`, for tests and the golden disassembly. */
export function seccompSocketSyscalls(arch: SeccompArch = 'x86_64'): Record<'socket' | 'socketpair', number> {
  return SOCKET_SYSCALLS[arch];
}

// seccomp ABI (include/uapi/linux/seccomp.h, include/uapi/linux/audit.h).
export const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const ERRNO = { EPERM: 1, ENOSYS: 38, EPROTONOSUPPORT: 93, EAFNOSUPPORT: 97 } as const;
/** x86_64 syscall numbers with this bit set are the x32 ABI. */
export const X32_SYSCALL_BIT = 0x40000000;

// Classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h).
const BPF_LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K = 0x06; // BPF_RET | BPF_K
// Offsets in struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
// The low 32 bits of args[0] (little-endian): the kernel reads the family as an int, so the
// high half cannot change what it means.
const OFFSET_ARG0_LOW = 16;
const OFFSET_ARG2_LOW = 32;
/** The one netlink protocol libc uses (include/uapi/linux/netlink.h). */
export const NETLINK_ROUTE = 0;

type Insn = [code: number, jt: number, jf: number, k: number];

function denied(arch: SeccompArch, deny: readonly string[]): DeniedSyscall[] {
  const known = new Map(SYSCALLS.map((s) => [s.name, s]));
  const out: DeniedSyscall[] = [];
  for (const name of new Set(deny)) {
    const syscall = known.get(name);
    if (!syscall) {
      throw new Error(
        `seccomp: unknown syscall '${name}'; deny takes names from DEFAULT_DENIED_SYSCALLS (add its numbers to the table in seccomp.ts first)`,
      );
    }
    // Known but absent on this arch (iopl on aarch64): nothing to refuse.
    if (syscall[arch] !== undefined) out.push(syscall);
  }
  return out;
}

/** The table's number for `name` on `arch`; undefined when unknown or absent there. */
export function seccompSyscallNumber(arch: SeccompArch, name: string): number | undefined {
  return SYSCALLS.find((s) => s.name === name)?.[arch];
}

/** Names the filter refuses on `arch` (the default list, less what the arch lacks). */
export function seccompDeniedNames(arch: SeccompArch = 'x86_64'): string[] {
  return denied(arch, DEFAULT_DENIED_SYSCALLS).map((s) => s.name);
}

/** The filter as bwrap's `--seccomp FD` reads it: an array of struct sock_filter
 * { u16 code; u8 jt; u8 jf; u32 k }, little-endian (both supported arches run LE).
 * `deny` replaces the default list (it may only name syscalls of the table). */
export function compileSeccompFilter(opts: { arch?: SeccompArch; deny?: string[] } = {}): Buffer {
  const arch = opts.arch ?? 'x86_64';
  const auditArch = AUDIT_ARCH[arch];
  if (auditArch === undefined) throw new Error(`seccomp: arch must be x86_64 or aarch64, got '${arch}'`);
  const program: Insn[] = [
    // Syscall numbers mean something else on another arch (an i386 binary via int 0x80 on
    // x86_64): kill rather than judge a number against the wrong table.
    [BPF_LD_W_ABS, 0, 0, OFFSET_ARCH],
    [BPF_JEQ_K, 1, 0, auditArch],
    [BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS],
    [BPF_LD_W_ABS, 0, 0, OFFSET_NR],
  ];
  if (arch === 'x86_64') {
    // x32 shares AUDIT_ARCH_X86_64 and marks its numbers with bit 30; it is another table
    // again, so it is a foreign ABI too (libseccomp treats it the same way).
    program.push([BPF_JGE_K, 0, 1, X32_SYSCALL_BIT], [BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS]);
  }
  // One compare and one return per syscall: every jump is 0 or 1, so the 8-bit jt/jf limit
  // never bites however long the list grows (the kernel's cap is 4096 instructions).
  for (const syscall of denied(arch, opts.deny ?? DEFAULT_DENIED_SYSCALLS)) {
    program.push(
      [BPF_JEQ_K, 0, 1, syscall[arch] as number],
      [BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ERRNO[syscall.errno]],
    );
  }
  program.push(...socketFamilyChecks(arch), [BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW]);

  const out = Buffer.alloc(program.length * 8);
  program.forEach(([code, jt, jf, k], i) => {
    out.writeUInt16LE(code, i * 8);
    out.writeUInt8(jt, i * 8 + 2);
    out.writeUInt8(jf, i * 8 + 3);
    // `|` yields a signed int32; >>> 0 turns it back into the u32 the field holds.
    out.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return out;
}

/** For socket and socketpair: allow the listed families, EAFNOSUPPORT for any other, and of
 * netlink only NETLINK_ROUTE (the others, audit, uevents, netfilter, xfrm, crypto ..., are
 * kernel surface no app needs; EPROTONOSUPPORT, as for a protocol the kernel lacks). The
 * block loads arguments over the syscall number, so every path through it returns. */
function socketFamilyChecks(arch: SeccompArch): Insn[] {
  const families = Object.values(ALLOWED_SOCKET_FAMILIES);
  const n = families.length;
  // Relative to the block's first instruction (the args[0] load): the n compares, the
  // refusal, then the netlink protocol check at n + 2 .. n + 4, the allow at n + 5.
  const protocolCheck = n + 2;
  const allow = n + 5;
  const out: Insn[] = [];
  for (const nr of Object.values(SOCKET_SYSCALLS[arch])) {
    out.push(
      [BPF_JEQ_K, 0, n + 6, nr],
      [BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW],
      ...families.map((family, j): Insn => {
        const to = family === ALLOWED_SOCKET_FAMILIES.AF_NETLINK ? protocolCheck : allow;
        return [BPF_JEQ_K, to - (1 + j) - 1, 0, family];
      }),
      [BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ERRNO.EAFNOSUPPORT],
      [BPF_LD_W_ABS, 0, 0, OFFSET_ARG2_LOW],
      [BPF_JEQ_K, 1, 0, NETLINK_ROUTE],
      [BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ERRNO.EPROTONOSUPPORT],
      [BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW],
    );
  }
  return out;
}

export const PRLIMIT = '/usr/bin/prlimit';

/** A util-linux prlimit prefix for the launch argv: soft = hard, so the app cannot raise it.
 * Lowering needs no privilege; raising the hard limit above the caller's does. */
export function rlimitArgs(limits: { nofile: number }): string[] {
  const n = limits.nofile;
  if (!Number.isInteger(n) || n <= 0) throw new Error(`rlimit nofile must be a positive integer, got ${n}`);
  return [PRLIMIT, `--nofile=${n}:${n}`, '--'];
}

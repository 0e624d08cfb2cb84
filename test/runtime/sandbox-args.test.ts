// The sandbox as data: golden files of the bwrap argv for an instance and a task, and the
// inputs that must never be accepted. UPDATE_GOLDEN=1 rewrites the golden files.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ENTER_AND_RECORD,
  enterArgv,
  launchLimits,
  type SandboxPlan,
  SECCOMP_FD,
  sandboxEnv,
  sandboxLaunch,
  seccompArch,
  tmpSizeMiB,
} from '../../src/runtime/local/sandbox-args.js';
import { compileSeccompFilter } from '../../src/runtime/local/seccomp.js';

function golden(name: string, actual: string): void {
  const file = fileURLToPath(new URL(`./golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `golden file ${name} differs (UPDATE_GOLDEN=1 to accept)`);
}

const instance: SandboxPlan = {
  uid: 20001,
  gid: 20002,
  appDir: '/var/lib/petri/instances/web-1/app',
  env: { PORT: '5001', DATABASE_URL: 'postgres://u:p@127.0.0.1/db' },
  command: ['node', 'server.js'],
  dieWithParent: false,
  limits: { nofile: 4096, diskMiB: 512, memoryMiB: 256 },
  seccompArch: 'x86_64',
};

function render(plan: SandboxPlan): string {
  const launch = sandboxLaunch(plan);
  const shell = enterArgv(
    ENTER_AND_RECORD,
    ['/state/web-1.exit'],
    ['/cg/memory/petri/web-1/cgroup.procs'],
    launch.argv,
  );
  return [
    '# /bin/sh',
    ...shell.map((a) => `  ${a}`),
    '# bwrap --args 3',
    ...launch.bwrapArgs.map((a) => `  ${a}`),
    '# /etc/passwd (fd 4)',
    launch.inputs[1],
    '# /etc/group (fd 5)',
    launch.inputs[2],
    `# seccomp filter (fd 6): ${plan.seccompArch}, ${launch.inputs[3].length / 8} instructions (golden: seccomp-${plan.seccompArch}.txt)`,
    '',
  ].join('\n');
}

test('instance argv matches the golden file', () => {
  golden('instance-argv.txt', render(instance));
});

test('task argv matches the golden file: die-with-parent, extra writable and read-only mounts', () => {
  golden(
    'task-argv.txt',
    render({
      ...instance,
      appDir: '/var/lib/petri/builds/b-1/app',
      writableMounts: { '/var/lib/petri/cache/probe': '/cache' },
      readOnlyMounts: { '/var/lib/petri/runtimes/node/22.23.5': '/opt/node' },
      command: ['npm', 'ci'],
      dieWithParent: true,
    }),
  );
});

test('instances never die with their parent; tasks always do', () => {
  assert.ok(!sandboxLaunch(instance).bwrapArgs.includes('--die-with-parent'));
  assert.ok(sandboxLaunch({ ...instance, dieWithParent: true }).bwrapArgs.includes('--die-with-parent'));
});

test('bwrap arguments reach it NUL-terminated through fd 3, not the command line', () => {
  const launch = sandboxLaunch(instance);
  assert.deepEqual(launch.inputs[0].split('\0').slice(0, -1), launch.bwrapArgs);
  assert.ok(!launch.argv.some((a) => a.includes('postgres://')), 'secrets stay off the command line');
});

test('the launch limits: prlimit as root before setpriv, a sized /tmp, the seccomp filter on fd 6', () => {
  const launch = sandboxLaunch(instance);
  const prlimit = launch.argv.indexOf('/usr/bin/prlimit');
  assert.ok(
    prlimit >= 0 && prlimit < launch.argv.indexOf('/usr/bin/setpriv'),
    'the hard limit is set as root',
  );
  assert.ok(launch.argv.includes('--nofile=4096:4096'));
  const tmp = launch.bwrapArgs.indexOf('/tmp');
  // Half the memory limit (256 MiB), under the disk limit (512 MiB): see the next test.
  assert.deepEqual(launch.bwrapArgs.slice(tmp - 3, tmp + 1), [
    '--size',
    String(128 << 20),
    '--tmpfs',
    '/tmp',
  ]);
  const seccomp = launch.bwrapArgs.indexOf('--seccomp');
  assert.equal(launch.bwrapArgs[seccomp + 1], String(SECCOMP_FD));
  assert.equal(SECCOMP_FD, 6, 'after args, passwd and group');
  assert.deepEqual(launch.inputs[3], compileSeccompFilter({ arch: 'x86_64' }));
  assert.deepEqual(
    sandboxLaunch({ ...instance, seccompArch: 'aarch64' }).inputs[3],
    compileSeccompFilter({ arch: 'aarch64' }),
  );
});

test('/tmp is the disk limit, at most half the memory limit (its pages are charged to memory)', () => {
  assert.equal(tmpSizeMiB({ diskMiB: 1024, memoryMiB: 512 }), 256);
  assert.equal(tmpSizeMiB({ diskMiB: 100, memoryMiB: 4096 }), 100);
  assert.equal(tmpSizeMiB({ diskMiB: 1024, memoryMiB: 16 }), 8);
  assert.equal(tmpSizeMiB({ diskMiB: 64 }), 64);
});

test('nofile and diskMiB default to 1024 and are checked', () => {
  assert.deepEqual(launchLimits({}), { nofile: 1024, diskMiB: 1024 });
  const launch = sandboxLaunch({ ...instance, limits: {} });
  assert.ok(launch.argv.includes('--nofile=1024:1024'));
  assert.ok(launch.bwrapArgs.includes(String(1024 << 20)));
  assert.throws(() => launchLimits({ nofile: 0 }), /nofile/);
  assert.throws(() => launchLimits({ nofile: 10.5 }), /nofile/);
  assert.throws(() => launchLimits({ diskMiB: 4 }), /diskMiB/);
  assert.throws(() => launchLimits({ diskMiB: 100.5 }), /diskMiB/);
});

test('the seccomp arch follows the host; other hosts are refused', () => {
  assert.equal(seccompArch('x64'), 'x86_64');
  assert.equal(seccompArch('arm64'), 'aarch64');
  assert.throws(() => seccompArch('ia32'), /x64 and arm64/);
});

test('HOME is always /app; the spec may set PATH and LANG', () => {
  assert.deepEqual(sandboxEnv({ HOME: '/root', PATH: '/app/bin:/usr/bin', X: '1' }), {
    PATH: '/app/bin:/usr/bin',
    LANG: 'C.UTF-8',
    X: '1',
    HOME: '/app',
  });
});

test('refuses inputs that could reshape the sandbox', () => {
  assert.throws(() => sandboxLaunch({ ...instance, env: { 'A=B': 'x' } }), /environment variable name/);
  assert.throws(() => sandboxLaunch({ ...instance, env: { A: 'x\0--bind\0/\0/host' } }), /NUL/);
  assert.throws(() => sandboxLaunch({ ...instance, command: ['sh', '\0--bind'] }), /NUL/);
  assert.throws(() => sandboxLaunch({ ...instance, command: [] }), /empty/);
  assert.throws(() => sandboxLaunch({ ...instance, uid: 0 }), /uid/);
  assert.throws(() => sandboxLaunch({ ...instance, writableMounts: { cache: '/cache' } }), /absolute/);
  // A read-only mount (a runtime) goes to a place of its own, never over the sandbox's own parts.
  for (const inside of ['/usr', '/usr/bin', '/etc/passwd', '/app', '/tmp', '/', '/opt/../usr', 'opt/node']) {
    assert.throws(
      () => sandboxLaunch({ ...instance, readOnlyMounts: { '/var/lib/petri/runtimes/node/1.2.3': inside } }),
      /read-only mounts need plain absolute paths/,
      inside,
    );
  }
  assert.throws(
    () => sandboxLaunch({ ...instance, readOnlyMounts: { 'runtimes/node/1.2.3': '/opt/node' } }),
    /read-only mounts need plain absolute paths/,
  );
});

// The fake driver the reconciler's unit tests use keeps the RuntimeDriver contract, so those
// tests cannot pass on behaviour no real driver has. In memory: a few hundred ms, no root.
import { FakeDriver, FakeHost } from '../fakes/fake-driver.js';
import { driverContract } from './contract.js';

driverContract({
  name: 'fake',
  timeoutMs: 2000,
  async setUp() {
    const host = new FakeHost();
    return {
      driver: (sink) => new FakeDriver({ host, output: sink }),
      programs: {
        serve: (line) => ['sh', '-c', `echo ${line}; serve`],
        exit: (code, line) => ['sh', '-c', `echo ${line}; exit ${code}`],
        tick: (line) => ['sh', '-c', `tick ${line}`],
        stubborn: (line) => ['sh', '-c', `trap TERM; echo ${line}; sleep`],
      },
      instance: (id, command, labels, env) => ({
        id,
        app: labels.app,
        uid: 20001,
        gid: 20001,
        slugDir: '/nonexistent/slug',
        workDir: `/nonexistent/instances/${id}`,
        command,
        env,
        limits: { memoryMiB: 64, cpus: 1, pids: 32 },
        labels,
      }),
      task: async (id, command, onOutput, timeoutMs) => ({
        id,
        app: 'contract',
        uid: 20001,
        gid: 20001,
        appDir: `/nonexistent/tasks/${id}`,
        command,
        env: {},
        limits: { memoryMiB: 64, cpus: 1, pids: 32 },
        timeoutMs,
        onOutput,
      }),
      cleanup: async () => {},
    };
  },
});

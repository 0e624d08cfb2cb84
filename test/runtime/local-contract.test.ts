// The local driver keeps the RuntimeDriver contract, with the real bwrap and cgroups (root,
// as the other local-driver tests). Without a network of its own, instances share the
// host's loopback; network.test.ts covers addresses.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { LocalDriver } from '../../src/runtime/local/local-driver.js';
import { driverContract } from './contract.js';
import { APP_GID, APP_UID, makeWorld } from './world.js';

driverContract({
  name: 'local',
  async setUp() {
    const world = await makeWorld('contract');
    return {
      driver: (sink) => new LocalDriver({ ...world.options, output: sink }),
      programs: {
        serve: (line) => ['sh', '-c', `echo ${line}; exec node server.mjs`],
        exit: (code, line) => ['sh', '-c', `echo ${line}; exit ${code}`],
        tick: (line) => ['sh', '-c', `while :; do echo ${line}; sleep 0.1; done`],
        stubborn: (line) => ['sh', '-c', `trap "" TERM; echo ${line}; while :; do sleep 0.1; done`],
      },
      instance: (id, command, labels, env) => ({
        ...world.instanceSpec(id, 0, { command, env, labels }),
        app: labels.app,
      }),
      task: async (id, command, onOutput, timeoutMs) => {
        // runTask mounts appDir as it is (a build's disks make it).
        const appDir = path.join(world.root, 'tasks', id);
        await mkdir(appDir, { recursive: true });
        return {
          id,
          app: 'contract',
          uid: APP_UID,
          gid: APP_GID,
          appDir,
          command,
          env: {},
          limits: { memoryMiB: 128, cpus: 1, pids: 64 },
          timeoutMs,
          onOutput,
        };
      },
      cleanup: () => world.cleanup(),
    };
  },
});

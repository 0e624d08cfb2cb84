// The local driver keeps the RuntimeDriver contract, with the real bwrap and cgroups (root,
// as the other local-driver tests): sharing the host's loopback, and with a network of its
// own (an address per sandbox, which sandboxAt() knows by its labels).
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { LocalDriverOptions } from '../../src/runtime/local/local-driver.js';
import { LocalDriver } from '../../src/runtime/local/local-driver.js';
import { driverContract } from './contract.js';
import { APP_GID, APP_UID, makeWorld } from './world.js';

const tag = randomBytes(3).toString('hex');
const X = 1 + (randomBytes(1)[0]! % 250);

for (const [name, extra] of [
  ['local', {}],
  // A subnet of its own, outside the default 10.213.0.0/16 and the other suites' ranges.
  ['local, own network', { network: { bridge: `pc${tag}`, subnet: `10.234.${X}.0/24`, hostPorts: [] } }],
] as const satisfies [string, Partial<LocalDriverOptions>][])
  driverContract({
    name,
    async setUp() {
      const world = await makeWorld(name === 'local' ? 'contract' : 'contract-net', extra);
      return {
        driver: (sink) => new LocalDriver({ ...world.options, output: sink }),
        programs: {
          // On every address, as apps should (the probe app listens on 127.0.0.1 only).
          serve: (line) => [
            'sh',
            '-c',
            `echo ${line}; exec node -e 'require("node:http").createServer((q, s) => s.end("ok")).listen(Number(process.env.PORT))'`,
          ],
          exit: (code, line) => ['sh', '-c', `echo ${line}; exit ${code}`],
          tick: (line) => ['sh', '-c', `while :; do echo ${line}; sleep 0.1; done`],
          stubborn: (line) => ['sh', '-c', `trap "" TERM; echo ${line}; while :; do sleep 0.1; done`],
        },
        instance: (id, command, labels, env) => ({
          ...world.instanceSpec(id, { command, env, labels }),
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
        // Instances started before specs carried labels have no record beside their exit file.
        forgetLabels: (id) => rm(path.join(world.options.stateDir, 'instances', `${id}.json`)),
      };
    },
  });

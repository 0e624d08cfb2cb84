// Each test file's own world for the local driver: temp dirs, a unique cgroup parent, and
// a cleanup that stops whatever runs there and removes the cgroups, even after a failure.
import { chmod, cp, mkdtemp, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec } from '../../src/lib/exec.js';
import type { InstanceSpec } from '../../src/runtime/driver.js';
import { mountPoints } from '../../src/runtime/local/app-disk.js';
import { LocalDriver, type LocalDriverOptions } from '../../src/runtime/local/local-driver.js';
import { type Attachment, networkPlan } from '../../src/runtime/local/network-plan.js';

export const APP_UID = 20001;
export const APP_GID = 20001;
export const PROBE_APP = fileURLToPath(new URL('./fixtures/probe-app', import.meta.url));
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface World {
  root: string;
  options: LocalDriverOptions;
  driver: LocalDriver;
  /** A read-only slug with the probe app, owned by root. */
  slugDir: string;
  /** An instance of the probe app; the driver chooses its PORT (InstanceStatus.port). */
  instanceSpec(id: string, overrides?: Partial<InstanceSpec>): InstanceSpec;
  cleanup(): Promise<void>;
}

export async function makeWorld(name: string, extra: Partial<LocalDriverOptions> = {}): Promise<World> {
  const root = await mkdtemp(path.join(os.tmpdir(), `petri-${name}-`));
  // The sandbox's uid must be able to traverse to its /app (bwrap binds as that uid).
  await chmod(root, 0o755);
  const slugDir = path.join(root, 'slug');
  await cp(PROBE_APP, slugDir, { recursive: true });
  const options: LocalDriverOptions = {
    stateDir: path.join(root, 'state'),
    cgroupParent: `petri-test-${name}-${process.pid}-${Date.now().toString(36)}`,
    ...extra,
  };
  const driver = new LocalDriver(options);
  return {
    root,
    options,
    driver,
    slugDir,
    instanceSpec: (id, overrides = {}) => ({
      id,
      app: 'probe',
      uid: APP_UID,
      gid: APP_GID,
      slugDir,
      workDir: path.join(root, 'instances', id),
      command: ['node', 'server.mjs'],
      env: { HIDDEN_PATH: options.stateDir },
      limits: { memoryMiB: 256, cpus: 1, pids: 64 },
      labels: { app: 'probe', kind: 'instance', process: 'web.1' },
      ...overrides,
    }),
    cleanup: async () => {
      // A fresh driver: cleanup must not depend on the state of the one under test.
      const fresh = new LocalDriver(options);
      try {
        for (const instance of await fresh.list()) await fresh.stop(instance.id, 0);
        // Unmounts each instance's /app disk and deletes its image.
        const instances = path.join(root, 'instances');
        for (const id of await readdir(instances).catch(() => [])) {
          await fresh.removeFiles({ id, workDir: path.join(instances, id) });
        }
      } finally {
        // Host-wide leftovers (bridge, namespaces, nft table) go even when a stop failed.
        if (options.network) await removeNetwork(options);
        // Any mount still under root (a one-off's disk after a failure): rm must not walk into it.
        const mounts = mountPoints(await readFile('/proc/self/mountinfo', 'utf8'));
        for (const mount of mounts.filter((m) => m.startsWith(`${root}/`)).reverse()) {
          await exec('umount', ['-l', '--', mount]);
        }
        for (const controller of ['memory', 'cpu', 'cpuacct', 'pids', 'unified']) {
          await rmdir(path.join(CGROUP_ROOT, controller, options.cgroupParent)).catch(() => {});
        }
        await rm(root, { recursive: true, force: true });
      }
    },
  };
}

/** Where the local driver writes an instance's stdout and stderr (the world's driver has no
 * output sink, so the lines stay there). */
export function outputOf(spec: Pick<InstanceSpec, 'workDir'>): string {
  return path.join(spec.workDir, 'output.log');
}

/** A host TCP server that greets whoever connects, so a test sees data really flowed. */
export function greeter(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      // Probes hang up abruptly (a reset), which is no failure of the server.
      socket.on('error', () => {});
      socket.end('hello\n');
    });
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

export async function getJson(port: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return (await res.json()) as Record<string, unknown>;
}

/** Whatever the driver's network left: namespaces (with their veths) it recorded, the
 * bridge and the nft table. Best effort: each step runs even when an earlier one failed. */
async function removeNetwork(options: LocalDriverOptions): Promise<void> {
  const dir = path.join(options.stateDir, 'network');
  for (const file of (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.json'))) {
    const a = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as Attachment;
    await exec('ip', ['link', 'delete', 'dev', a.hostVeth]);
    await exec('ip', ['netns', 'delete', a.netns]);
  }
  const plan = networkPlan(options.network!);
  await exec('ip', ['link', 'delete', 'dev', plan.bridge]);
  await exec('nft', ['delete', 'table', 'inet', plan.table]);
}

// Each test file's own world for the local driver: temp dirs, a unique cgroup parent, and
// a cleanup that stops whatever runs there and removes the cgroups, even after a failure.
import { chmod, cp, mkdtemp, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InstanceSpec } from '../../src/runtime/driver.js';
import { LocalDriver, type LocalDriverOptions } from '../../src/runtime/local/local-driver.js';

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
  instanceSpec(id: string, port: number, overrides?: Partial<InstanceSpec>): InstanceSpec;
  cleanup(): Promise<void>;
}

export async function makeWorld(name: string): Promise<World> {
  const root = await mkdtemp(path.join(os.tmpdir(), `petri-${name}-`));
  // The sandbox's uid must be able to traverse to its /app (bwrap binds as that uid).
  await chmod(root, 0o755);
  const slugDir = path.join(root, 'slug');
  await cp(PROBE_APP, slugDir, { recursive: true });
  const options: LocalDriverOptions = {
    stateDir: path.join(root, 'state'),
    cgroupParent: `petri-test-${name}-${process.pid}-${Date.now().toString(36)}`,
  };
  const driver = new LocalDriver(options);
  return {
    root,
    options,
    driver,
    slugDir,
    instanceSpec: (id, port, overrides = {}) => ({
      id,
      app: 'probe',
      uid: APP_UID,
      gid: APP_GID,
      slugDir,
      workDir: path.join(root, 'instances', id),
      command: ['node', 'server.mjs'],
      env: { PORT: String(port), HIDDEN_PATH: options.stateDir },
      limits: { memoryMiB: 256, cpus: 1, pids: 64 },
      outputFile: path.join(root, 'logs', `${id}.log`),
      ...overrides,
    }),
    cleanup: async () => {
      // A fresh driver: cleanup must not depend on the state of the one under test.
      const fresh = new LocalDriver(options);
      for (const instance of await fresh.list()) await fresh.stop(instance.id, 0);
      for (const controller of ['memory', 'cpu', 'cpuacct', 'pids', 'unified']) {
        await rmdir(path.join(CGROUP_ROOT, controller, options.cgroupParent)).catch(() => {});
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

export async function getJson(port: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return (await res.json()) as Record<string, unknown>;
}

// The HAProxy process: validate a config, launch the master detached from Node, recognise one
// left running by an earlier control plane, stop it. The master (-W) outlives the control
// plane on purpose: apps keep serving through a crash or restart of `petri server`.
import { readFileSync } from 'node:fs';
import { exec } from '../lib/exec.js';
import { processStartTime } from '../lib/process.js';
import { until } from '../lib/until.js';
import type { RouterPaths } from './paths.js';

export interface HaproxyProcess {
  pid: number;
  /** With the pid, the identity of the process (pids are reused). */
  startTime: number;
}

/** Throws HAProxy's own message when it rejects the config. */
export async function validateConfig(bin: string, configPath: string): Promise<void> {
  const result = await exec(bin, ['-c', '-f', configPath], { timeoutMs: 15_000 });
  if (result.code !== 0) {
    const why = (result.stderr || result.stdout).trim() || `exit ${result.code}`;
    throw new Error(`HAProxy rejected the configuration: ${why}`);
  }
}

/** Starts a master-worker HAProxy that daemonizes (-D): it leaves Node's process group and
 * session, so neither a kill -9 of the control plane nor its terminal takes it down. */
export async function launchHaproxy(bin: string, paths: RouterPaths): Promise<HaproxyProcess> {
  const args = ['-W', '-D', '-f', paths.config, '-p', paths.pidfile, '-S', `${paths.masterSocket},mode,600`];
  // With -D the command returns once the master has bound the listeners and forked a worker;
  // a port in use or a bad config is a non-zero exit with HAProxy's message.
  const result = await exec(bin, args, { timeoutMs: 30_000 });
  if (result.code !== 0) {
    const why = (result.stderr || result.stdout).trim() || `exit ${result.code}`;
    // With noreuseport (see config.ts) a port someone else listens on is refused here.
    if (/Address already in use/i.test(why)) {
      throw new Error(
        `the router's port is already in use by another program (another Petri?); choose a free one. HAProxy said: ${why}`,
      );
    }
    throw new Error(`HAProxy failed to start: ${why}`);
  }
  return until(() => findRunningHaproxy(paths), {
    timeout: 10_000,
    message: `HAProxy pidfile ${paths.pidfile}`,
  });
}

/** The master of the HAProxy serving `paths.config`, if the pidfile names one that is alive. */
export function findRunningHaproxy(paths: RouterPaths): HaproxyProcess | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(paths.pidfile, 'utf8').trim().split('\n')[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const startTime = processStartTime(pid);
  if (startTime === undefined) return undefined;
  // A stale pidfile may name a reused pid: only an haproxy started on this config is ours.
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
  const isHaproxy = argv[0] !== undefined && /haproxy$/.test(argv[0]);
  if (!isHaproxy || !argv.includes(paths.config)) return undefined;
  return { pid, startTime };
}

export function isAlive(proc: HaproxyProcess): boolean {
  return processStartTime(proc.pid) === proc.startTime;
}

/** Soft stop (SIGUSR1: stop listening, finish what is in flight), then SIGTERM, then SIGKILL,
 * each with a deadline. The master is not our child (it daemonized): poll /proc for it. */
export async function stopHaproxy(proc: HaproxyProcess, graceMs: number): Promise<void> {
  const steps: [NodeJS.Signals, number][] = [
    ['SIGUSR1', graceMs],
    ['SIGTERM', 5_000],
    ['SIGKILL', 5_000],
  ];
  for (const [signal, timeout] of steps) {
    if (!isAlive(proc)) return;
    try {
      process.kill(proc.pid, signal);
    } catch {
      return; // gone between the check and the signal
    }
    try {
      await until(() => !isAlive(proc), { timeout, message: `HAProxy ${proc.pid} to exit after ${signal}` });
      return;
    } catch {
      // next, stronger signal
    }
  }
  if (isAlive(proc)) throw new Error(`HAProxy ${proc.pid} survived SIGKILL`);
}

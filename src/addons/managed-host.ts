// What the managed servers share: the state file with their port and admin password, the
// system user they run as, and stopping a server with a deadline. Process facts from /proc
// are in lib/process.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../lib/errors.js';
import { execOk } from '../lib/exec.js';
import { freePort } from '../lib/ports.js';
import { processStartTime, sendSignal } from '../lib/process.js';
import { until } from '../lib/until.js';

export const HOST = '127.0.0.1';

export interface ServerState {
  port: number;
  adminPassword: string;
}

export interface UserIds {
  uid: number;
  gid: number;
}

/** The port and admin password, chosen on first use and kept in dir/state.json (mode 0600,
 * root's); a configured port replaces the recorded one. */
export async function loadServerState(dir: string, fixedPort?: number): Promise<ServerState> {
  const file = path.join(dir, 'state.json');
  await mkdir(dir, { recursive: true, mode: 0o711 });
  let state = await readServerState(file);
  if (!state || (fixedPort !== undefined && fixedPort !== state.port)) {
    state = {
      port: fixedPort ?? (await freePort(HOST)),
      adminPassword: state?.adminPassword ?? randomBytes(24).toString('hex'),
    };
    const partial = `${file}.partial`;
    await writeFile(partial, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    await rename(partial, file);
  }
  return state;
}

async function readServerState(file: string): Promise<ServerState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const { port, adminPassword } = ((JSON.parse(text) as unknown) ?? {}) as Partial<ServerState>;
  if (
    !Number.isInteger(port) ||
    typeof adminPassword !== 'string' ||
    !/^[0-9a-f]{32,}$/.test(adminPassword)
  ) {
    throw new Error(`${file} is damaged (needs a port and a hex adminPassword); restore it from a backup`);
  }
  return { port: port as number, adminPassword };
}

/** uid and gid of the system user a managed server runs as. */
export async function systemUserIds(user: string, engine: string): Promise<UserIds> {
  try {
    const uid = Number((await execOk('id', ['-u', user], { timeoutMs: 5000 })).stdout.trim());
    const gid = Number((await execOk('id', ['-g', user], { timeoutMs: 5000 })).stdout.trim());
    return { uid, gid };
  } catch (err) {
    throw new Error(
      `system user ${user} for ${engine} was not found (${errorMessage(err)}): create it (the install script does) or configure another`,
    );
  }
}

/** Sends the server's clean-shutdown signal and waits; SIGKILL after the deadline. The
 * start time tells the server from a process that got its pid later. */
export async function stopServerProcess(
  server: { pid: number; startTime: number },
  shutdown: NodeJS.Signals,
  timeoutMs: number,
  label: string,
): Promise<void> {
  const gone = () => processStartTime(server.pid) !== server.startTime;
  sendSignal(server.pid, shutdown);
  try {
    await until(gone, { timeout: timeoutMs, message: `${label} to stop` });
  } catch {
    sendSignal(server.pid, 'SIGKILL');
    await until(gone, { timeout: 5000, message: `${label} to die after SIGKILL` });
  }
}

// Client of HAProxy's Unix sockets: the runtime API of the worker (admin.sock) and the master
// CLI (master.sock). Plain node:net, one command per connection: the command is sent with a
// half-close, which both sockets take as "answer, then close" (the master CLI otherwise
// keeps the connection open).
import net from 'node:net';

/** `payload`: sent after the command in HAProxy's `<<` form (lines, ended by an empty one), as
 * `set ssl cert` and `add ssl crt-list` take it; it may hold no empty line of its own. */
export async function sendCommand(
  socketPath: string,
  command: string,
  timeoutMs = 5000,
  payload?: string,
): Promise<string> {
  if (/[\r\n]/.test(command)) throw new Error('an HAProxy command must be one line');
  if (
    payload !== undefined &&
    (payload.includes('\r') || /\n\s*\n/.test(payload.trim()) || payload.trim() === '')
  ) {
    throw new Error('an HAProxy command payload must be non-empty lines with no empty line between them');
  }
  const sent = payload === undefined ? `${command}\n` : `${command} <<\n${payload.trim()}\n\n`;
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let output = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`HAProxy socket ${socketPath} did not answer '${command}' within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(sent));
    socket.on('data', (chunk: string) => {
      output += chunk;
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve(output);
    });
  });
}

/** A command of a plan (server-plan.ts, gate-map.ts) and what it answers. */
export interface RuntimeCommand {
  command: string;
  /** What HAProxy answers on success; anything else is an error. */
  ok: RegExp;
  /** A failure that is expected and retried later instead of failing the apply. */
  retryLater?: RegExp;
}

/** `show info`: "Key: value" lines. */
export function parseShowInfo(text: string): Map<string, string> {
  const info = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) info.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return info;
}

export interface ProcessList {
  masterPid: number | undefined;
  /** Reloads that the master could not complete (HAProxy 2.6 prints "[failed: N]"). */
  failedReloads: number;
  workers: number[];
}

/** `show proc` on the master CLI. Old workers (still draining after a reload) are left out. */
export function parseShowProc(text: string): ProcessList {
  const list: ProcessList = { masterPid: undefined, failedReloads: 0, workers: [] };
  let section = 'master';
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) {
      section = line.startsWith('# workers') ? 'workers' : line.startsWith('#<PID>') ? 'master' : 'other';
      continue;
    }
    const fields = line.trim().split(/\s+/);
    const pid = Number(fields[0]);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (section === 'master' && fields[1] === 'master') {
      list.masterPid = pid;
      const failed = /\[failed: (\d+)\]/.exec(line);
      list.failedReloads = failed ? Number(failed[1]) : 0;
    } else if (section === 'workers' && fields[1] === 'worker') {
      list.workers.push(pid);
    }
  }
  return list;
}

export interface RuntimeServer {
  backend: string;
  name: string;
  address: string;
  port: number;
  /** In maintenance (set by us, by the config, or by DNS): receives no new traffic. */
  maint: boolean;
}

// srv_admin_state bits that mean maintenance: forced, inherited, configured, resolution, hostname.
const MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;

/** `show servers state` (format version 1): a header line names the columns. */
export function parseServersState(text: string): RuntimeServer[] {
  const lines = text.split('\n');
  const header = lines.find((line) => line.startsWith('# be_id'));
  if (header === undefined) return [];
  const columns = header.slice(2).trim().split(/\s+/);
  const at = (fields: string[], name: string) => fields[columns.indexOf(name)] ?? '';
  const servers: RuntimeServer[] = [];
  for (const line of lines) {
    const fields = line.trim().split(/\s+/);
    // Skips the header, blank lines and the format version line ("1").
    if (line.startsWith('#') || fields.length < columns.length) continue;
    servers.push({
      backend: at(fields, 'be_name'),
      name: at(fields, 'srv_name'),
      address: at(fields, 'srv_addr'),
      port: Number(at(fields, 'srv_port')),
      maint: (Number(at(fields, 'srv_admin_state')) & MAINT_BITS) !== 0,
    });
  }
  return servers;
}

/** Seconds since each backend's last session from `show stat` (-1: none since the worker
 * started), keyed by backend name. */
export function parseLastSessions(csv: string): Map<string, number> {
  const lines = csv.split('\n');
  const header = lines[0]?.replace(/^# /, '').split(',') ?? [];
  const px = header.indexOf('pxname');
  const sv = header.indexOf('svname');
  const last = header.indexOf('lastsess');
  const result = new Map<string, number>();
  if (px < 0 || sv < 0 || last < 0) return result;
  for (const line of lines.slice(1)) {
    const fields = line.split(',');
    const name = fields[px];
    if (!name || fields[sv] !== 'BACKEND') continue;
    const value = fields[last];
    result.set(name, value === undefined || value === '' ? -1 : Number(value));
  }
  return result;
}

/** Current sessions per server from `show stat` (CSV: pxname, svname, ... scur ...). */
export function parseCurrentSessions(csv: string): Map<string, number> {
  const lines = csv.split('\n');
  const header = lines[0]?.replace(/^# /, '').split(',') ?? [];
  const sv = header.indexOf('svname');
  const scur = header.indexOf('scur');
  const sessions = new Map<string, number>();
  if (sv < 0 || scur < 0) return sessions;
  for (const line of lines.slice(1)) {
    const fields = line.split(',');
    const name = fields[sv];
    if (!name || name === 'FRONTEND' || name === 'BACKEND') continue;
    sessions.set(name, (sessions.get(name) ?? 0) + Number(fields[scur] ?? 0));
  }
  return sessions;
}

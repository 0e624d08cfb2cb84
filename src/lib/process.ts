// Facts about processes by pid, read from /proc. A pid alone is not an identity (pids are
// reused), so an adopted process is recognised by its pid and its start time together.
import { closeSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The process's start time in clock ticks since boot, or undefined when it does not exist. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    if (state === 'Z' || state === 'X') return undefined;
    const start = rest[19];
    return start === undefined ? undefined : Number(start);
  } catch {
    return undefined;
  }
}

/** Closes descriptors this process inherited without close-on-exec (a launcher's stray fd):
 * every child would pass them on, into the sandboxes. Node opens its own with O_CLOEXEC,
 * so a descriptor above 2 without it is one nobody here meant to share. */
export function closeInheritedFds(): number[] {
  const O_CLOEXEC = 0o2000000;
  const closed: number[] = [];
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return closed;
  }
  for (const name of fds) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd <= 2) continue;
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags === undefined || (Number.parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
      closeSync(fd);
      closed.push(fd);
    } catch {
      // gone meanwhile (the descriptor of the listing itself)
    }
  }
  return closed;
}

/** The process's command name (/proc/PID/comm), or undefined when it does not exist. */
export function processCommand(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The process's working directory, or undefined when it does not exist. */
export function processCwd(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** kill(2) that treats a process already gone as done. */
export function sendSignal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

// Facts about processes by pid, read from /proc. A pid alone is not an identity (pids are
// reused), so an adopted process is recognised by its pid and its start time together.
import { readFileSync } from 'node:fs';

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

export function isSameProcessAlive(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime;
}

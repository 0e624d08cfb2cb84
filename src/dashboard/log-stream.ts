// A live log that survives a dropped connection: it follows GET /v1/apps/NAME/logs, and when
// the stream ends or fails without being stopped, says so, waits, and follows again. The
// lines asked for again on reconnecting overlap those shown; the ones already shown (same
// time, source and text) are skipped, so a line is shown once.
import type { LogLine } from '../client/types.js';

export type StreamState =
  | { kind: 'connecting' }
  | { kind: 'live'; reconnected: boolean }
  | { kind: 'lost'; retryInMs: number; reason: string }
  | { kind: 'failed'; reason: string };

export interface LogSource {
  logs(options: {
    lines: number;
    follow: boolean;
    source?: string;
    signal: AbortSignal;
    /** Called once the server has answered and the stream is open. */
    onOpen: () => void;
  }): AsyncIterable<LogLine>;
}

export interface FollowOptions {
  source?: string;
  /** Past lines asked for first, and again on every reconnection. */
  lines?: number;
  onLines: (lines: LogLine[]) => void;
  onState: (state: StreamState) => void;
  /** Whether an error is final (access refused, app gone): no reconnection then. */
  isFinal?: (err: unknown) => boolean;
  /** How an error reads to people (the error's message by default). */
  explain?: (err: unknown) => string;
  delays?: number[];
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

const DELAYS = [1_000, 2_000, 5_000, 10_000];

/** Follows until stopped; returns the function that stops it. */
export function followLogs(source: LogSource, options: FollowOptions): () => void {
  const controller = new AbortController();
  void run(source, options, controller.signal);
  return () => controller.abort();
}

async function run(source: LogSource, options: FollowOptions, signal: AbortSignal): Promise<void> {
  const delays = options.delays ?? DELAYS;
  const sleep = options.sleep ?? abortableSleep;
  const seen = new Seen();
  let attempt = 0;
  let everLive = false;
  while (!signal.aborted) {
    options.onState({ kind: 'connecting' });
    let reason = 'the connection ended';
    try {
      const batch: LogLine[] = [];
      const opened = () => {
        options.onState({ kind: 'live', reconnected: everLive });
        everLive = true;
        attempt = 0;
      };
      for await (const line of source.logs({
        lines: options.lines ?? 200,
        follow: true,
        source: options.source,
        signal,
        onOpen: opened,
      })) {
        if (!seen.add(line)) continue;
        batch.push(line);
        // Lines that come together are shown together: one update per burst.
        if (batch.length === 1) queueMicrotask(() => options.onLines(batch.splice(0)));
      }
    } catch (err) {
      if (signal.aborted) return;
      reason = options.explain ? options.explain(err) : err instanceof Error ? err.message : String(err);
      if (options.isFinal?.(err)) {
        options.onState({ kind: 'failed', reason });
        return;
      }
    }
    if (signal.aborted) return;
    const wait = delays[Math.min(attempt, delays.length - 1)] ?? 1_000;
    attempt++;
    options.onState({ kind: 'lost', retryInMs: wait, reason });
    await sleep(wait, signal);
  }
}

/** The lines already shown, by time, source and text (the last 5,000). */
class Seen {
  private readonly keys = new Set<string>();
  private readonly order: string[] = [];
  add(line: LogLine): boolean {
    const key = `${line.time}\u0000${line.source}\u0000${line.text}`;
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    this.order.push(key);
    if (this.order.length > 5_000) this.keys.delete(this.order.shift()!);
    return true;
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

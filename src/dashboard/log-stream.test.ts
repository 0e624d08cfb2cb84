import { describe, expect, it } from 'vitest';
import { ApiError } from '../client/errors.js';
import type { LogLine } from '../client/types.js';
import { followLogs, type LogSource, type StreamState } from './log-stream.js';

const line = (n: number): LogLine => ({
  time: `2026-12-02T12:00:0${n}Z`,
  source: 'web.1',
  text: `line ${n}`,
});

/** A log source whose streams are scripted: each call plays the next script. */
function scripted(scripts: Array<{ lines: LogLine[]; end: 'end' | Error | 'hang' }>) {
  let calls = 0;
  const source: LogSource = {
    async *logs({ signal, onOpen }) {
      const script = scripts[calls++];
      if (!script) return await new Promise<never>(() => undefined);
      onOpen();
      for (const l of script.lines) yield l;
      if (script.end instanceof Error) throw script.end;
      if (script.end === 'hang')
        await new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        );
    },
  };
  return { source, calls: () => calls };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!check()) throw new Error('condition not met');
}

describe('followLogs', () => {
  it('reconnects after a drop, says so, and shows each line once', async () => {
    const { source } = scripted([
      { lines: [line(1), line(2)], end: new TypeError('network error') },
      { lines: [line(2), line(3)], end: 'hang' },
    ]);
    const shown: LogLine[] = [];
    const states: StreamState[] = [];
    const stop = followLogs(source, {
      onLines: (l) => shown.push(...l),
      onState: (s) => states.push(s),
      delays: [0],
    });
    await until(() => shown.length === 3);
    stop();
    expect(shown.map((l) => l.text)).toEqual(['line 1', 'line 2', 'line 3']);
    const kinds = states.map((s) => (s.kind === 'live' ? `live${s.reconnected ? '-again' : ''}` : s.kind));
    expect(kinds).toEqual(['connecting', 'live', 'lost', 'connecting', 'live-again']);
    expect(states[2]).toMatchObject({ kind: 'lost', reason: 'network error' });
  });

  it('stops on a refusal (the app is gone, access ended) instead of asking forever', async () => {
    const { source, calls } = scripted([{ lines: [], end: new ApiError(404, 'not_found', 'no app shop') }]);
    const states: StreamState[] = [];
    followLogs(source, {
      onLines: () => undefined,
      onState: (s) => states.push(s),
      isFinal: (err) => err instanceof ApiError && err.status < 500,
      delays: [0],
    });
    await until(() => states.at(-1)?.kind === 'failed');
    expect(states.at(-1)).toEqual({ kind: 'failed', reason: 'no app shop' });
    expect(calls()).toBe(1);
  });

  it('says nothing more once stopped', async () => {
    const { source } = scripted([{ lines: [line(1)], end: 'hang' }]);
    const states: StreamState[] = [];
    const stop = followLogs(source, {
      onLines: () => undefined,
      onState: (s) => states.push(s),
      delays: [0],
    });
    await until(() => states.some((s) => s.kind === 'live'));
    stop();
    const count = states.length;
    await new Promise((r) => setTimeout(r, 20));
    expect(states.length).toBe(count);
  });
});

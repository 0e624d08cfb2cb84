// An app's logs, live: the last lines, then each new one as the app writes it, optionally of
// one source only (web.1, build, release, router ...). A dropped connection is said, and the
// stream follows again by itself.
import { useEffect, useId, useRef, useState } from 'react';
import { ApiError } from '../../client/errors.js';
import type { App, LogLine } from '../../client/types.js';
import { client, errorText, signIn } from '../api.js';
import { followLogs, type StreamState } from '../log-stream.js';

const MAX_LINES = 2_000;

export function LogsTab({ app }: { app: App }) {
  const id = useId();
  // ?source=web.1: the Processes tab's link to a crashed process's last lines.
  const [initial] = useState(() => new URLSearchParams(window.location.search).get('source') ?? '');
  const [source, setSource] = useState(initial);
  const [applied, setApplied] = useState(initial);
  const [lines, setLines] = useState<LogLine[]>([]);
  const [state, setState] = useState<StreamState>({ kind: 'connecting' });
  const box = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);

  useEffect(() => {
    setLines([]);
    return followLogs(
      { logs: (options) => client.logs(app.name, options) },
      {
        source: applied || undefined,
        onLines: (more) => setLines((old) => [...old, ...more].slice(-MAX_LINES)),
        onState: setState,
        explain: errorText,
        isFinal: (err) => {
          if (err instanceof ApiError && err.status === 401) signIn();
          return err instanceof ApiError && err.status < 500;
        },
      },
    );
  }, [app.name, applied]);

  // Keep the newest line in view unless the reader scrolled up to read.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs after each batch of lines
  useEffect(() => {
    const el = box.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Logs</h2>
      <form
        className="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(source.trim());
        }}
      >
        <label htmlFor={`${id}-src`}>Source</label>
        <input
          id={`${id}-src`}
          value={source}
          placeholder="all (or web.1, build, router)"
          onChange={(e) => setSource(e.target.value)}
        />
        <button type="submit">Filter</button>
      </form>
      <p className={`stream stream-${state.kind}`} role="status">
        {describe(state)}
      </p>
      <div
        ref={box}
        className="log"
        role="log"
        aria-label={`Log lines of ${app.name}`}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: the log scrolls, and must take the focus to scroll with keys
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        {lines.length === 0 && <p className="sub">No lines yet.</p>}
        {lines.map((line, i) => (
          // Lines are only ever appended (and the oldest dropped): the index is stable enough.
          // biome-ignore lint/suspicious/noArrayIndexKey: see above
          <div key={i} className="line">
            <time dateTime={line.time}>{line.time.slice(11, 19)}</time>{' '}
            <span className="src">{line.source}</span> <span className="text">{line.text}</span>
          </div>
        ))}
      </div>
    </section>
  );
}

function describe(state: StreamState): string {
  switch (state.kind) {
    case 'connecting':
      return 'Connecting…';
    case 'live':
      return state.reconnected ? 'Reconnected: live again' : 'Live';
    case 'lost':
      return `Connection lost (${state.reason}); reconnecting in ${Math.round(state.retryInMs / 1000)} s…`;
    case 'failed':
      return `Stopped: ${state.reason}`;
  }
}

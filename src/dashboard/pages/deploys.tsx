// An app's deploys, newest first: status, the release each made, how long it took, why it
// failed; the output of one (build and release lines), live while it runs. A stream that
// drops before the deploy ends says so and is read again from the start.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useId, useState } from 'react';
import { ApiError } from '../../client/errors.js';
import type { App, Deploy, DeployLogEvent } from '../../client/types.js';
import { client, errorText } from '../api.js';
import { exactTime, relativeTime } from '../logic.js';
import { Status } from './apps.js';

export function DeploysTab({ app }: { app: App }) {
  const id = useId();
  const deploys = useQuery({
    queryKey: ['deploys', app.name],
    queryFn: () => client.listDeploys(app.name),
    // A deploy started elsewhere (petri deploy, git push) shows within 2 s.
    refetchInterval: 2_000,
  });
  const [open, setOpen] = useState<string | null>(null);
  // A deploy that starts while the page is open opens by itself, and stays open once it ends.
  const running = deploys.data?.find((d) => !isOver(d))?.id;
  useEffect(() => {
    if (running && open === null) setOpen(running);
  }, [running, open]);
  if (deploys.isPending) return <p className="loading">Loading deploys…</p>;
  if (deploys.isError)
    return (
      <p role="alert" className="error">
        Could not list the deploys: {errorText(deploys.error)}
      </p>
    );
  const shown = open ?? running ?? null;
  const now = Date.now();
  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Deploys</h2>
      {deploys.data.length === 0 ? (
        <p>
          No deploy yet: <code>petri deploy --app {app.name}</code> or <code>git push petri main</code>.
        </p>
      ) : (
        <ol className="releases">
          {deploys.data.map((d) => (
            <li key={d.id}>
              <div className="release-head">
                <strong>{d.id}</strong>
                <Status status={d.status} />
                {d.release && <span>made {d.release}</span>}
                <span className="sub" title={exactTime(d.createdAt)}>
                  {relativeTime(d.createdAt, now)}
                  {d.durationMs !== null && `, took ${(d.durationMs / 1000).toFixed(1)} s`}
                </span>
              </div>
              {d.error && <pre className="error">{d.error}</pre>}
              <button
                type="button"
                aria-expanded={shown === d.id}
                onClick={() => setOpen(shown === d.id ? '' : d.id)}
              >
                {shown === d.id ? 'Hide output' : 'Show output'}
                <span className="visually-hidden"> of {d.id}</span>
              </button>
              {shown === d.id && <DeployOutput app={app.name} deploy={d} />}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function isOver(deploy: Deploy): boolean {
  return deploy.status === 'succeeded' || deploy.status === 'failed';
}

type StreamNote =
  | { kind: 'reading' }
  | { kind: 'done' }
  | { kind: 'lost'; reason: string }
  | { kind: 'failed'; reason: string };

function DeployOutput({ app, deploy }: { app: string; deploy: Deploy }) {
  const queryClient = useQueryClient();
  const [lines, setLines] = useState<DeployLogEvent[]>([]);
  const [note, setNote] = useState<StreamNote>({ kind: 'reading' });
  useEffect(() => {
    const controller = new AbortController();
    const read = async () => {
      for (let attempt = 0; !controller.signal.aborted; attempt++) {
        const got: DeployLogEvent[] = [];
        try {
          for await (const event of client.streamDeploy(app, deploy.id, { signal: controller.signal })) {
            if (event.type === 'end') {
              setLines([...got]);
              setNote({ kind: 'done' });
              void queryClient.invalidateQueries({ queryKey: ['deploys', app] });
              void queryClient.invalidateQueries({ queryKey: ['app', app] });
              return;
            }
            got.push(event);
            setLines([...got]);
          }
          if (controller.signal.aborted) return;
          setNote({ kind: 'lost', reason: 'the stream ended before the deploy did' });
        } catch (err) {
          if (controller.signal.aborted) return;
          if (err instanceof ApiError && err.status < 500) {
            setNote({ kind: 'failed', reason: err.message });
            return;
          }
          setNote({ kind: 'lost', reason: errorText(err) });
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 1_000 * 2 ** attempt)));
        if (!controller.signal.aborted) setNote({ kind: 'reading' });
      }
    };
    void read();
    return () => controller.abort();
  }, [app, deploy.id, queryClient]);
  return (
    <div className="deploy-output">
      <p className={`stream stream-${note.kind === 'reading' ? 'live' : note.kind}`} role="status">
        {note.kind === 'reading' && (isOver(deploy) ? 'Reading the output…' : 'Live: the deploy is running')}
        {note.kind === 'done' && 'The deploy has ended.'}
        {note.kind === 'lost' && `Connection lost (${note.reason}); reading it again…`}
        {note.kind === 'failed' && `Stopped: ${note.reason}`}
      </p>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: the output scrolls, and must take the focus to scroll with keys */}
      <div className="log" role="log" aria-label={`Output of ${deploy.id}`} tabIndex={0}>
        {lines.map((line, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: lines are only appended
          <div key={i} className="line">
            <span className="src">{line.source}</span> <span className="text">{line.text}</span>
          </div>
        ))}
      </div>
    </div>
  );
}

// An app's releases, newest first, each but the serving one with "Roll back to this": a new
// release with that release's build and config, after a confirmation that names both.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import type { App, Release } from '../../client/types.js';
import { client, errorText, useMayChange } from '../api.js';
import { exactTime, relativeTime } from '../logic.js';
import { Status } from './apps.js';

export function ReleasesTab({ app }: { app: App }) {
  const releases = useQuery({
    queryKey: ['releases', app.name],
    queryFn: () => client.listReleases(app.name),
    // A pending release changes by itself: look again until none is.
    refetchInterval: (q) => (q.state.data?.some((r) => r.status === 'pending') ? 1_000 : 10_000),
  });
  const writable = useMayChange(app.team);
  const [asked, setAsked] = useState<string | null>(null);
  const queryClient = useQueryClient();
  const rollback = useMutation({
    mutationFn: (version: string) => client.rollback(app.name, version),
    onSuccess: async () => {
      setAsked(null);
      await queryClient.invalidateQueries({ queryKey: ['releases', app.name] });
      await queryClient.invalidateQueries({ queryKey: ['app', app.name] });
    },
  });
  if (releases.isPending) return <p className="loading">Loading releases…</p>;
  if (releases.isError)
    return (
      <p role="alert" className="error">
        Could not list the releases: {errorText(releases.error)}
      </p>
    );
  const current = releases.data.find((r) => r.current);
  const now = Date.now();
  return (
    <section aria-labelledby="rel-h">
      <h2 id="rel-h">Releases</h2>
      <div aria-live="polite">
        {rollback.isSuccess && (
          <p className="ok">
            Made {rollback.data.version}: {rollback.data.description}. It serves once its processes are up.
          </p>
        )}
        {rollback.isError && (
          <p role="alert" className="error">
            Rolling back to {rollback.variables} failed: {errorText(rollback.error)}
          </p>
        )}
      </div>
      {releases.data.length === 0 ? (
        <p>No release yet: deploy the app first.</p>
      ) : (
        <ol className="releases">
          {releases.data.map((r) => (
            <li key={r.version} className={r.current ? 'current' : undefined}>
              <div className="release-head">
                <strong>{r.version}</strong>
                <Status status={r.status} />
                {r.current && <span className="badge">serving</span>}
                <span>{r.description}</span>
              </div>
              <div className="sub">
                {r.kind} by {r.createdBy},{' '}
                <span title={exactTime(r.createdAt)}>{relativeTime(r.createdAt, now)}</span>
              </div>
              {r.error && <pre className="error">{r.error}</pre>}
              {writable && canRollBackTo(r) && (
                <RollBack
                  release={r}
                  current={current?.version ?? null}
                  asked={asked === r.version}
                  busy={rollback.isPending}
                  onAsk={() => setAsked(r.version)}
                  onCancel={() => setAsked(null)}
                  onConfirm={() => rollback.mutate(r.version)}
                />
              )}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function canRollBackTo(release: Release): boolean {
  return !release.current && release.status === 'succeeded';
}

function RollBack(props: {
  release: Release;
  current: string | null;
  asked: boolean;
  busy: boolean;
  onAsk: () => void;
  onCancel: () => void;
  onConfirm: () => void;
}) {
  const { release } = props;
  if (!props.asked)
    return (
      <button type="button" onClick={props.onAsk}>
        Roll back to this<span className="visually-hidden"> ({release.version})</span>
      </button>
    );
  return (
    <fieldset className="confirm">
      <legend>Roll back to {release.version}?</legend>
      <p>
        Serve {release.version}’s build and config again
        {props.current ? `, in place of ${props.current}` : ''}? This makes a new release.
      </p>
      <button
        type="button"
        className="danger"
        disabled={props.busy}
        onClick={props.onConfirm}
        ref={(el) => el?.focus()}
      >
        {props.busy ? 'Rolling back…' : `Roll back to ${release.version}`}
      </button>
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
    </fieldset>
  );
}

// An app's processes: how many of each type run (scale, for those who may change the app),
// each process with its state, release, uptime, restarts, memory against the limit and CPU
// time, how a crashed one last ended, and Restart (all, or one type).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useId, useState } from 'react';
import type { App, Formation, Process } from '../../client/types.js';
import { client, errorText, useMayChange } from '../api.js';
import { memoryShare } from '../logic.js';
import { appHref, Link } from '../router.js';
import { Status } from './apps.js';

export function ProcessesTab({ app }: { app: App }) {
  const id = useId();
  const writable = useMayChange(app.team);
  const queryClient = useQueryClient();
  const ps = useQuery({
    queryKey: ['ps', app.name],
    queryFn: () => client.listProcesses(app.name),
    refetchInterval: 2_000,
  });
  const refresh = async () => {
    await queryClient.invalidateQueries({ queryKey: ['ps', app.name] });
    await queryClient.invalidateQueries({ queryKey: ['app', app.name] });
  };
  const scale = useMutation({
    mutationFn: (counts: Formation) => client.updateFormation(app.name, counts),
    onSuccess: refresh,
  });
  const restart = useMutation({
    mutationFn: (type: string | undefined) => client.restart(app.name, type),
    onSuccess: refresh,
  });
  if (ps.isPending) return <p className="loading">Loading processes…</p>;
  if (ps.isError)
    return (
      <p role="alert" className="error">
        Could not list the processes: {errorText(ps.error)}
      </p>
    );
  const { formation, processes, sleepingSince } = ps.data;
  return (
    <section aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Processes</h2>
      {sleepingSince && <p>The app sleeps: no process runs until its next request.</p>}
      {writable && (
        <ScaleForm formation={formation} busy={scale.isPending} onScale={(counts) => scale.mutate(counts)} />
      )}
      <div aria-live="polite">
        {scale.isSuccess && (
          <p className="ok">
            Scaled:{' '}
            {Object.entries(scale.data)
              .map(([type, n]) => `${type}=${n}`)
              .join(', ')}
            .
          </p>
        )}
        {scale.isError && (
          <p role="alert" className="error">
            Scaling failed: {errorText(scale.error)}
          </p>
        )}
        {restart.isSuccess && <p className="ok">Restarting {restart.data.join(', ') || 'nothing'}.</p>}
        {restart.isError && (
          <p role="alert" className="error">
            Restarting {restart.variables ?? 'every process'} failed: {errorText(restart.error)}
          </p>
        )}
      </div>
      {writable && processes.length > 0 && (
        <div className="actions">
          <button type="button" disabled={restart.isPending} onClick={() => restart.mutate(undefined)}>
            Restart all
          </button>
          {Object.keys(formation).map((type) => (
            <button
              key={type}
              type="button"
              disabled={restart.isPending}
              onClick={() => restart.mutate(type)}
            >
              Restart {type}
            </button>
          ))}
        </div>
      )}
      {processes.length === 0 ? (
        <p>No process runs.</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
        <section className="scroll" tabIndex={0} aria-label="Processes">
          <table>
            <thead>
              <tr>
                <th scope="col">Process</th>
                <th scope="col">State</th>
                <th scope="col">Release</th>
                <th scope="col">Up for</th>
                <th scope="col">Restarts</th>
                <th scope="col">Memory</th>
                <th scope="col">CPU time</th>
              </tr>
            </thead>
            <tbody>
              {processes.map((p) => (
                <ProcessRow key={p.name} app={app} process={p} />
              ))}
            </tbody>
          </table>
        </section>
      )}
    </section>
  );
}

function ProcessRow({ app, process: p }: { app: App; process: Process }) {
  const memory = memoryShare(p.memoryBytes, app.limits.memoryMiB);
  return (
    <tr>
      <th scope="row">{p.name}</th>
      <td>
        <Status status={p.state} />
        {p.lastExit && <span className="sub">{p.lastExit}</span>}
        {p.state === 'crashed' && (
          <span className="sub">
            <Link href={`${appHref(app.name, 'logs')}?source=${encodeURIComponent(p.name)}`}>
              Its last lines
            </Link>
          </span>
        )}
      </td>
      <td>{p.release}</td>
      <td>{p.uptimeSeconds === null ? '—' : duration(p.uptimeSeconds)}</td>
      <td>{p.restarts}</td>
      <td>
        {memory ? (
          <>
            {memory.text}
            <meter
              min={0}
              max={100}
              value={memory.percent}
              high={85}
              aria-label={`${p.name} memory, share of its limit`}
            />
          </>
        ) : (
          '—'
        )}
      </td>
      <td>{p.cpuSeconds === null ? '—' : `${p.cpuSeconds.toFixed(1)} s`}</td>
    </tr>
  );
}

function ScaleForm({
  formation,
  busy,
  onScale,
}: {
  formation: Formation;
  busy: boolean;
  onScale: (counts: Formation) => void;
}) {
  const id = useId();
  const [counts, setCounts] = useState<Record<string, string>>({});
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const changed: Formation = {};
    for (const [type, text] of Object.entries(counts)) {
      const n = Number(text);
      if (text !== '' && Number.isInteger(n) && n >= 0 && n !== formation[type]) changed[type] = n;
    }
    if (Object.keys(changed).length > 0) onScale(changed);
    setCounts({});
  };
  const types = Object.keys(formation);
  if (types.length === 0) return <p>No process types yet: deploy the app first.</p>;
  return (
    <form className="card" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Scale</h3>
      <div className="row">
        {types.map((type) => (
          <div className="field" key={type}>
            <label htmlFor={`${id}-${type}`}>{type}</label>
            <input
              id={`${id}-${type}`}
              type="number"
              min={0}
              max={100}
              inputMode="numeric"
              value={counts[type] ?? String(formation[type] ?? 0)}
              onChange={(e) => setCounts({ ...counts, [type]: e.target.value })}
            />
          </div>
        ))}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Scaling…' : 'Scale'}
        </button>
      </div>
    </form>
  );
}

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86_400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

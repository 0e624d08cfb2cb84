// The Apps page: every app the person may see, with its status, stage, data class,
// audience, expiry (highlighted inside 14 days), last deploy and requests over 24 hours (a
// sparkline); a search and filters; and "New app", which then shows the commands to deploy it.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, memo, useDeferredValue, useId, useMemo, useState } from 'react';
import type { App } from '../../client/types.js';
import { client, errorText, useWhoami } from '../api.js';
import {
  type AppFilter,
  type AppRow,
  appRows,
  deployCommands,
  EXPIRY_WARNING_DAYS,
  exactTime,
  filterRows,
  NO_FILTER,
  type RowStatus,
  relativeTime,
  sparklineImage,
} from '../logic.js';
import { appHref, Link, useTitle } from '../router.js';

const STATUSES: RowStatus[] = ['running', 'sleeping', 'crashed', 'deploying', 'down', 'new', 'expired'];
const DATA_CLASSES = ['none', 'anonymous', 'personal', 'sensitive'] as const;

export function AppsPage() {
  useTitle('Apps');
  const apps = useQuery({ queryKey: ['apps'], queryFn: () => client.listApps(), refetchInterval: 15_000 });
  // The audience and the last deploy are the inventory's; the list shows without them first.
  const inventory = useQuery({ queryKey: ['inventory', {}], queryFn: () => client.inventory() });
  const [filter, setFilter] = useState<AppFilter>(NO_FILTER);
  const deferred = useDeferredValue(filter);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<App | null>(null);
  const rows = useMemo(
    () => (apps.data ? appRows(apps.data, inventory.data, Date.now()) : []),
    [apps.data, inventory.data],
  );
  const shown = useMemo(() => filterRows(rows, deferred), [rows, deferred]);
  const teams = useMemo(() => [...new Set(rows.map((r) => r.team))].sort(), [rows]);

  return (
    <>
      <div className="heading">
        <h1>Apps</h1>
        <button
          type="button"
          className="primary"
          aria-expanded={creating}
          aria-controls="new-app"
          onClick={() => {
            setCreating(!creating);
            setCreated(null);
          }}
        >
          New app
        </button>
      </div>
      {creating && (
        <NewApp
          onCreated={(app) => {
            setCreated(app);
            setCreating(false);
          }}
        />
      )}
      {created && <DeployCommands app={created} onClose={() => setCreated(null)} />}
      <Filters filter={filter} teams={teams} onChange={setFilter} />
      {apps.isPending && <p className="loading">Loading apps…</p>}
      {apps.isError && (
        <p role="alert" className="error">
          Could not list the apps: {errorText(apps.error)}
        </p>
      )}
      {apps.data && (
        <>
          <p className="count" aria-live="polite">
            {shown.length === rows.length
              ? `${rows.length} app${rows.length === 1 ? '' : 's'}`
              : `${shown.length} of ${rows.length} apps`}
          </p>
          {rows.length === 0 ? <p>No apps yet. Make one with “New app”.</p> : <AppTable rows={shown} />}
        </>
      )}
    </>
  );
}

function Filters({
  filter,
  teams,
  onChange,
}: {
  filter: AppFilter;
  teams: string[];
  onChange: (filter: AppFilter) => void;
}) {
  const id = useId();
  return (
    <search className="filters" aria-label="Filter apps">
      <div className="field">
        <label htmlFor={`${id}-q`}>Search</label>
        <input
          id={`${id}-q`}
          type="search"
          value={filter.search}
          placeholder="name, team or description"
          onChange={(e) => onChange({ ...filter, search: e.target.value })}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-status`}>Status</label>
        <select
          id={`${id}-status`}
          value={filter.status}
          onChange={(e) => onChange({ ...filter, status: e.target.value as RowStatus | '' })}
        >
          <option value="">any</option>
          {STATUSES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-team`}>Team</label>
        <select
          id={`${id}-team`}
          value={filter.team}
          onChange={(e) => onChange({ ...filter, team: e.target.value })}
        >
          <option value="">any</option>
          {teams.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </div>
      <div className="field check">
        <input
          id={`${id}-exp`}
          type="checkbox"
          checked={filter.expiringOnly}
          onChange={(e) => onChange({ ...filter, expiringOnly: e.target.checked })}
        />
        <label htmlFor={`${id}-exp`}>Expiring within {EXPIRY_WARNING_DAYS} days</label>
      </div>
    </search>
  );
}

// memo: typing in the search re-renders the page at once, and the table only when the
// (deferred) filtered rows change: 1,000 rows are not drawn again on every key.
const AppTable = memo(function AppTable({ rows }: { rows: AppRow[] }) {
  const now = Date.now();
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
    <section className="scroll" tabIndex={0} aria-label="Apps">
      <table className="apps">
        <thead>
          <tr>
            <th scope="col">App</th>
            <th scope="col">Status</th>
            <th scope="col">Stage</th>
            <th scope="col">Data</th>
            <th scope="col">Audience</th>
            <th scope="col">Expires</th>
            <th scope="col">Last deploy</th>
            <th scope="col">Requests, 24 h</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.name}>
              <th scope="row">
                <Link href={appHref(row.name)}>{row.name}</Link>
                <span className="sub">{row.team}</span>
              </th>
              <td>
                <Status status={row.status} />
              </td>
              <td>{row.stage}</td>
              <td>{row.dataClass}</td>
              <td>{row.audience ?? '—'}</td>
              <td className={row.expiresSoon ? 'soon' : undefined} title={exactTime(row.expiresAt)}>
                {row.expiresSoon && <span className="visually-hidden">Expires soon: </span>}
                {relativeTime(row.expiresAt, now)}
              </td>
              <td title={exactTime(row.lastDeployAt)}>{relativeTime(row.lastDeployAt, now)}</td>
              <td>
                <Sparkline values={row.requests24h} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
});

/** Requests per hour over 24 hours as a small line, with their total as text (what is read). */
function Sparkline({ values }: { values: number[] | null }) {
  if (!values) return <span className="sub">—</span>;
  return (
    <span className="spark">
      <img src={sparklineImage(values, 64, 18)} width={64} height={18} alt="" loading="lazy" />
      {values.reduce((sum, n) => sum + n, 0)}
    </span>
  );
}

export function Status({ status }: { status: string }) {
  return <span className={`status status-${status}`}>{status}</span>;
}

function NewApp({ onCreated }: { onCreated: (app: App) => void }) {
  const id = useId();
  const queryClient = useQueryClient();
  const whoami = useWhoami();
  // Teams where the person may make an app: those they are a member or admin of.
  const teams = (whoami.data?.teams ?? []).filter((t) => t.role !== 'viewer');
  const [name, setName] = useState('');
  const [chosen, setTeam] = useState<string | null>(null);
  const team = chosen ?? teams.find((t) => t.personal)?.name ?? teams[0]?.name ?? '';
  const [description, setDescription] = useState('');
  const [data, setData] = useState<string>('none');
  const create = useMutation({
    mutationFn: () => client.createApp({ name, team, description, data }),
    onSuccess: async (app) => {
      await queryClient.invalidateQueries({ queryKey: ['apps'] });
      await queryClient.invalidateQueries({ queryKey: ['inventory'] });
      onCreated(app);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <form id="new-app" className="card" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>New app</h2>
      <div className="field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input
          id={`${id}-name`}
          required
          pattern="[a-z][a-z0-9\-]{1,29}"
          aria-describedby={`${id}-name-help`}
          value={name}
          onChange={(e) => setName(e.target.value)}
          autoComplete="off"
        />
        <small id={`${id}-name-help`}>
          2 to 30 lower-case letters, digits and dashes, starting with a letter; it becomes the app’s host
          name.
        </small>
      </div>
      <div className="field">
        <label htmlFor={`${id}-team`}>Team</label>
        <select id={`${id}-team`} value={team} onChange={(e) => setTeam(e.target.value)}>
          {teams.map((t) => (
            <option key={t.name} value={t.name}>
              {t.personal ? `${t.name} (yours)` : t.name}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-desc`}>Description</label>
        <textarea
          id={`${id}-desc`}
          rows={2}
          value={description}
          onChange={(e) => setDescription(e.target.value)}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-data`}>Data it holds</label>
        <select
          id={`${id}-data`}
          value={data}
          onChange={(e) => setData(e.target.value)}
          aria-describedby={`${id}-data-help`}
        >
          {DATA_CLASSES.map((d) => (
            <option key={d}>{d}</option>
          ))}
        </select>
        <small id={`${id}-data-help`}>
          Personal or sensitive data needs a privacy note and a retention: set them with{' '}
          <code>petri apps set</code> or in petri.toml. Sensitive data waits for an admin’s review.
        </small>
      </div>
      <div className="actions">
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? 'Creating…' : 'Create app'}
        </button>
      </div>
      {create.isError && (
        <p role="alert" className="error">
          Could not create {name || 'the app'}: {errorText(create.error)}
        </p>
      )}
    </form>
  );
}

function DeployCommands({ app, onClose }: { app: App; onClose: () => void }) {
  const id = useId();
  return (
    <section className="card done" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`} tabIndex={-1} ref={(el) => el?.focus()}>
        {app.name} is ready to deploy
      </h2>
      <p>
        It will answer at <a href={app.url}>{app.url}</a> once deployed.
      </p>
      {deployCommands(app.name, window.location.origin).map((step) => (
        <div key={step.title}>
          <h3>{step.title}</h3>
          <pre>
            <code>{step.lines.join('\n')}</code>
          </pre>
        </div>
      ))}
      <div className="actions">
        <Link href={appHref(app.name)}>Open {app.name}</Link>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </section>
  );
}

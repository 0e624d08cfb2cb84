// An app: its overview (URL, release, processes, limits, expiry with Renew, stage) and its
// other tabs (deploys, processes, releases, config, add-ons, logs, metrics, network,
// audience, mail, settings). An app the person may not see is "not found", as the API
// answers (it does not say whether the name exists).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useId, useState } from 'react';
import type { App } from '../../client/types.js';
import { client, errorText, isNotFound, useMayChange } from '../api.js';
import { exactTime, expiresSoon, relativeTime } from '../logic.js';
import { APP_TABS, type AppTab, appHref, Link, useTitle } from '../router.js';
import { Status } from './apps.js';
import { ConfigTab } from './config.js';
import { DeploysTab } from './deploys.js';
import { LogsTab } from './logs.js';
import { ProcessesTab } from './processes.js';
import { ReleasesTab } from './releases.js';

const TAB_NAMES: Record<AppTab, string> = {
  overview: 'Overview',
  deploys: 'Deploys',
  processes: 'Processes',
  releases: 'Releases',
  config: 'Config',
  addons: 'Add-ons',
  logs: 'Logs',
  metrics: 'Metrics',
  network: 'Network',
  audience: 'Audience',
  mail: 'Mail',
  settings: 'Settings',
};

// uPlot comes with the Metrics tab, not with the first page; the tabs opened less often come
// when opened too.
const MetricsTab = lazy(() => import('./metrics.js'));
const LAZY_TABS = {
  addons: lazy(() => import('./app-addons.js')),
  network: lazy(() => import('./app-network.js')),
  audience: lazy(() => import('./app-audience.js')),
  mail: lazy(() => import('./app-mail.js')),
  settings: lazy(() => import('./app-settings.js')),
};

export function AppPage({ name, tab }: { name: string; tab: AppTab }) {
  useTitle(`${name} · ${TAB_NAMES[tab]}`);
  const app = useQuery({
    queryKey: ['app', name],
    queryFn: () => client.getApp(name),
    refetchInterval: 5_000,
  });
  if (app.isPending) return <p className="loading">Loading {name}…</p>;
  // A failed refresh keeps the page as last read (a live log keeps its lines and reconnects);
  // only an app never read, or one that is gone, replaces it.
  if (app.isError && (!app.data || isNotFound(app.error))) {
    if (isNotFound(app.error))
      return (
        <>
          <h1>Not found</h1>
          <p role="alert">
            There is no app named <strong>{name}</strong> that you can see.{' '}
            <Link href="/">See your apps</Link>.
          </p>
        </>
      );
    return (
      <p role="alert" className="error">
        Could not load {name}: {errorText(app.error)}
      </p>
    );
  }
  return (
    <>
      {app.isError && (
        <p className="stale" role="status">
          Lost contact with Petri ({errorText(app.error)}); showing {name} as last read, trying again.
        </p>
      )}
      <div className="heading">
        <h1>{name}</h1>
        <Status status={app.data.experiment.expiredAt ? 'expired' : app.data.status} />
      </div>
      <nav aria-label={`${name} sections`} className="tabs">
        {APP_TABS.map((t) => (
          <Link key={t} href={appHref(name, t)} aria-current={t === tab ? 'page' : undefined}>
            {TAB_NAMES[t]}
          </Link>
        ))}
      </nav>
      {tab === 'overview' && <Overview app={app.data} />}
      {tab === 'deploys' && <DeploysTab app={app.data} />}
      {tab === 'processes' && <ProcessesTab app={app.data} />}
      {tab === 'releases' && <ReleasesTab app={app.data} />}
      {tab === 'config' && <ConfigTab app={app.data} />}
      {tab === 'logs' && <LogsTab app={app.data} />}
      {tab === 'metrics' && (
        <Suspense fallback={<p className="loading">Loading…</p>}>
          <MetricsTab app={app.data} />
        </Suspense>
      )}
      {tab in LAZY_TABS && <LazyTab tab={tab as keyof typeof LAZY_TABS} app={app.data} />}
    </>
  );
}

function LazyTab({ tab, app }: { tab: keyof typeof LAZY_TABS; app: App }) {
  const Tab = LAZY_TABS[tab];
  return (
    <Suspense fallback={<p className="loading">Loading…</p>}>
      <Tab app={app} />
    </Suspense>
  );
}

function Overview({ app }: { app: App }) {
  const { experiment, limits } = app;
  const now = Date.now();
  return (
    <div className="grid">
      <section className="card" aria-labelledby="ov-about">
        <h2 id="ov-about">About</h2>
        <dl className="facts">
          <dt>URL</dt>
          <dd>
            <a href={app.url}>{app.url}</a>
          </dd>
          <dt>Release</dt>
          <dd>{app.release ?? 'none yet'}</dd>
          <dt>Team</dt>
          <dd>{app.team}</dd>
          <dt>Owner</dt>
          <dd>{app.owner}</dd>
          <dt>Stage</dt>
          <dd>{experiment.stage}</dd>
          <dt>Data</dt>
          <dd>
            {experiment.dataClass}
            {experiment.awaitsReview && ' (awaits an admin’s review)'}
          </dd>
          {experiment.description && (
            <>
              <dt>Description</dt>
              <dd>{experiment.description}</dd>
            </>
          )}
          {app.sleepingSince && (
            <>
              <dt>Sleeping since</dt>
              <dd>{exactTime(app.sleepingSince)}</dd>
            </>
          )}
        </dl>
      </section>
      <Expiry app={app} now={now} />
      <section className="card" aria-labelledby="ov-ps">
        <h2 id="ov-ps">Processes</h2>
        {app.processes.length === 0 ? (
          <p>No process runs{app.sleepingSince ? ': the app sleeps until its next request' : ''}.</p>
        ) : (
          // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
          <section className="scroll" tabIndex={0} aria-label="Processes">
            <table>
              <thead>
                <tr>
                  <th scope="col">Process</th>
                  <th scope="col">State</th>
                  <th scope="col">Release</th>
                  <th scope="col">Started</th>
                </tr>
              </thead>
              <tbody>
                {app.processes.map((p) => (
                  <tr key={p.name}>
                    <th scope="row">{p.name}</th>
                    <td>
                      <Status status={p.state} />
                      {p.lastExit && <span className="sub">{p.lastExit}</span>}
                    </td>
                    <td>{p.release}</td>
                    <td title={exactTime(p.startedAt)}>{relativeTime(p.startedAt, now)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        )}
      </section>
      <section className="card" aria-labelledby="ov-limits">
        <h2 id="ov-limits">Limits per process</h2>
        <dl className="facts">
          <dt>Memory</dt>
          <dd>{limits.memoryMiB} MiB</dd>
          <dt>CPU</dt>
          <dd>
            {limits.cpus} core{limits.cpus === 1 ? '' : 's'}
          </dd>
          <dt>Processes and threads</dt>
          <dd>{limits.pids}</dd>
          <dt>Disk</dt>
          <dd>{limits.diskMiB} MiB</dd>
        </dl>
      </section>
    </div>
  );
}

const PERIODS = ['30d', '90d', '180d'];

function Expiry({ app, now }: { app: App; now: number }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [period, setPeriod] = useState('90d');
  const renew = useMutation({
    mutationFn: () => client.renewApp(app.name, period),
    onSuccess: (renewal) => {
      queryClient.setQueryData(['app', app.name], renewal.app);
      void queryClient.invalidateQueries({ queryKey: ['apps'] });
    },
  });
  const writable = useMayChange(app.team);
  const { expiresAt, expiredAt, stage } = app.experiment;
  const soon = expiresSoon(expiresAt, now);
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Expiry</h2>
      {expiredAt ? (
        <p className="soon">
          Expired {relativeTime(expiredAt, now)}: its processes are stopped until it is renewed.
        </p>
      ) : expiresAt ? (
        <p className={soon ? 'soon' : undefined}>
          Expires {relativeTime(expiresAt, now)} ({exactTime(expiresAt)}).
        </p>
      ) : (
        <p>Does not expire while {stage}.</p>
      )}
      {stage === 'experiment' && writable && (
        <form
          className="inline"
          onSubmit={(e) => {
            e.preventDefault();
            renew.mutate();
          }}
        >
          <label htmlFor={`${id}-for`}>Renew for</label>
          <select id={`${id}-for`} value={period} onChange={(e) => setPeriod(e.target.value)}>
            {PERIODS.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
          <button type="submit" disabled={renew.isPending}>
            {renew.isPending ? 'Renewing…' : 'Renew'}
          </button>
        </form>
      )}
      <div aria-live="polite">
        {renew.isSuccess && <p className="ok">Renewed: it now expires {exactTime(renew.data.expiresAt)}.</p>}
        {renew.isError && (
          <p role="alert" className="error">
            Renewing {app.name} for {period} failed: {errorText(renew.error)}
          </p>
        )}
      </div>
    </section>
  );
}

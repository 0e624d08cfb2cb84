// The platform's status (GET /v1/status, as `petri status` and the public /status page): the
// promise ("one 9") beside the availability measured over 24 hours, 7 and 30 days, the
// incidents of the last 30 days with their start, end and duration, and public apps' figures.
import { useQuery } from '@tanstack/react-query';
import { client, errorText } from '../../api.js';
import { exactTime } from '../../logic.js';
import { useTitle } from '../../router.js';
import { durationText, keepsPromise, percent } from './ops-logic.js';

const PERIODS = [
  ['h24', 'Last 24 hours'],
  ['d7', 'Last 7 days'],
  ['d30', 'Last 30 days'],
] as const;

export function StatusSection() {
  useTitle('Status');
  const status = useQuery({ queryKey: ['status'], queryFn: () => client.status(), refetchInterval: 60_000 });
  if (status.isPending) return <p className="loading">Loading the status…</p>;
  if (status.isError)
    return (
      <p role="alert" className="error">
        Could not read the status: {errorText(status.error)}
      </p>
    );
  const s = status.data;
  return (
    <>
      <h1>Status</h1>
      <p className="card">
        <strong>{s.promise}</strong>
        <span className="sub">
          Target {percent(s.target)}; measured since {s.measuredSince ? exactTime(s.measuredSince) : 'now'}.
        </span>
      </p>
      <section className="card" aria-labelledby="status-platform">
        <h2 id="status-platform">Platform availability</h2>
        <dl className="facts">
          {PERIODS.map(([key, label]) => (
            <Figure key={key} label={label} share={s.platform[key]} target={s.target} />
          ))}
        </dl>
      </section>
      <section className="card" aria-labelledby="status-incidents">
        <h2 id="status-incidents">Incidents of the last 30 days</h2>
        {s.incidents.length === 0 ? (
          <p>None.</p>
        ) : (
          // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
          <section className="scroll" tabIndex={0} aria-label="Incidents">
            <table>
              <thead>
                <tr>
                  <th scope="col">What</th>
                  <th scope="col">Started</th>
                  <th scope="col">Ended</th>
                  <th scope="col">Duration</th>
                </tr>
              </thead>
              <tbody>
                {s.incidents.map((i) => (
                  <tr key={`${i.kind} ${i.subject} ${i.startedAt}`}>
                    <th scope="row">
                      {i.kind}
                      <span className="sub">{i.subject}</span>
                    </th>
                    <td>{exactTime(i.startedAt)}</td>
                    <td>
                      {i.endedAt ? exactTime(i.endedAt) : <span className="status status-down">ongoing</span>}
                    </td>
                    <td>{durationText(i.durationSeconds)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        )}
      </section>
      {s.apps.length > 0 && (
        <section className="card" aria-labelledby="status-apps">
          <h2 id="status-apps">Public apps</h2>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys */}
          <section className="scroll" tabIndex={0} aria-label="Public apps' availability">
            <table>
              <thead>
                <tr>
                  <th scope="col">App</th>
                  {PERIODS.map(([key, label]) => (
                    <th scope="col" key={key}>
                      {label}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {s.apps.map((a) => (
                  <tr key={a.name}>
                    <th scope="row">{a.name}</th>
                    {PERIODS.map(([key]) => (
                      <td key={key}>{percent(a.availability[key])}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </section>
      )}
    </>
  );
}

function Figure({ label, share, target }: { label: string; share: number | null; target: number }) {
  const kept = keepsPromise(share, target);
  return (
    <>
      <dt>{label}</dt>
      <dd>
        {percent(share)}{' '}
        {kept !== null && (
          <span className={`status status-${kept ? 'up' : 'down'}`}>
            {kept ? 'keeps the promise' : 'below the promise'}
          </span>
        )}
      </dd>
    </>
  );
}

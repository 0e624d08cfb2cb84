// What an app sent through the mail relay (GET /v1/apps/NAME/mail, as `petri mail`): the
// address it sends as, its counts for the last hour, day and month, its limits and a pause,
// and its last messages with their status (and why one was refused or bounced).
import { useQuery } from '@tanstack/react-query';
import type { App, AppMail } from '../../client/types.js';
import { client, errorText } from '../api.js';
import { exactTime, relativeTime } from '../logic.js';
import { Status } from './apps.js';

const COUNTS = ['sent', 'queued', 'deferred', 'bounced', 'refused', 'captured'] as const;

export default function MailTab({ app }: { app: App }) {
  const mail = useQuery({
    queryKey: ['mail', app.name],
    queryFn: () => client.mail(app.name),
    refetchInterval: 30_000,
  });
  if (mail.isPending) return <p className="loading">Loading mail…</p>;
  if (mail.isError)
    return (
      <p role="alert" className="error">
        Could not read the app’s mail: {errorText(mail.error)}
      </p>
    );
  const m = mail.data;
  const now = Date.now();
  const periods: [string, AppMail['hour']][] = [
    ['Last hour', m.hour],
    ['Last day', m.day],
    ['Last 30 days', m.month],
  ];
  return (
    <section aria-labelledby="mail-h">
      <h2 id="mail-h">Mail</h2>
      <dl className="facts">
        <dt>Sends as</dt>
        <dd>
          <code>{m.address}</code>
        </dd>
        <dt>Limits</dt>
        <dd>
          {m.limits.perHour} an hour, {m.limits.perDay} a day, {m.limits.recipients} recipients a message
          {m.limits.restrictToAudience && ', only to its audience'}
        </dd>
        {m.pausedUntil && (
          <>
            <dt>Paused</dt>
            <dd className="soon">until {exactTime(m.pausedUntil)}, after refusals in a row</dd>
          </>
        )}
      </dl>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys */}
      <section className="scroll" tabIndex={0} aria-label="Mail counts">
        <table>
          <thead>
            <tr>
              <th scope="col">Period</th>
              {COUNTS.map((c) => (
                <th key={c} scope="col">
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {periods.map(([label, counts]) => (
              <tr key={label}>
                <th scope="row">{label}</th>
                {COUNTS.map((c) => (
                  <td key={c}>{counts[c]}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <h3>Last messages</h3>
      {m.last.length === 0 ? (
        <p>The app has sent no mail yet.</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
        <section className="scroll" tabIndex={0} aria-label="Last messages">
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">To</th>
                <th scope="col">Subject</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {m.last.map((msg) => (
                <tr key={msg.id}>
                  <td title={exactTime(msg.at)}>{relativeTime(msg.at, now)}</td>
                  <td className="value">{msg.recipients.join(', ')}</td>
                  <td>{msg.subject}</td>
                  <td>
                    <Status status={msg.status} />
                    {msg.reason && <span className="sub">{msg.reason}</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </section>
  );
}

// Whom an app talks to (GET /v1/apps/NAME/egress): the hosts petri.toml declares against the
// ones it tried to reach through the egress proxy, allowed and refused, with counts and when
// last seen; a refused host says why, and whether it was declared.
import { useQuery } from '@tanstack/react-query';
import type { App } from '../../client/types.js';
import { client, errorText } from '../api.js';
import { egressHosts, exactTime, relativeTime } from '../logic.js';

export default function NetworkTab({ app }: { app: App }) {
  const egress = useQuery({
    queryKey: ['egress', app.name],
    queryFn: () => client.egress(app.name),
    refetchInterval: 30_000,
  });
  if (egress.isPending) return <p className="loading">Loading the network…</p>;
  if (egress.isError)
    return (
      <p role="alert" className="error">
        Could not read the app’s egress: {errorText(egress.error)}
      </p>
    );
  const { declared } = egress.data;
  const { hosts, unused } = egressHosts(declared, egress.data.attempts);
  const now = Date.now();
  return (
    <section aria-labelledby="net-h">
      <h2 id="net-h">Network</h2>
      <section className="card" aria-labelledby="net-declared">
        <h3 id="net-declared">Declared in petri.toml</h3>
        {declared.length === 0 ? (
          <p>
            Nothing: the app may reach no outside host. Add <code>[network] egress = ["host:port"]</code> to
            petri.toml to allow one.
          </p>
        ) : (
          <ul className="plain">
            {declared.map((d) => (
              <li key={d}>
                <code>{d}</code>
                {unused.includes(d) && <span className="sub-inline"> — not reached yet</span>}
              </li>
            ))}
          </ul>
        )}
      </section>
      <section className="card" aria-labelledby="net-seen">
        <h3 id="net-seen">Attempted</h3>
        {hosts.length === 0 ? (
          <p>The app has tried to reach no outside host yet.</p>
        ) : (
          // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
          <section className="scroll" tabIndex={0} aria-label="Hosts attempted">
            <table>
              <thead>
                <tr>
                  <th scope="col">Host</th>
                  <th scope="col">Declared</th>
                  <th scope="col">Allowed</th>
                  <th scope="col">Refused</th>
                  <th scope="col">Last seen</th>
                  <th scope="col">Why refused</th>
                </tr>
              </thead>
              <tbody>
                {hosts.map((h) => (
                  <tr key={h.target}>
                    <th scope="row">
                      <code>{h.target}</code>
                    </th>
                    <td>{h.declared ? 'yes' : 'no'}</td>
                    <td>{h.allowed}</td>
                    <td className={h.refused > 0 ? 'refused' : undefined}>{h.refused}</td>
                    <td title={exactTime(h.lastSeen)}>{relativeTime(h.lastSeen, now)}</td>
                    <td>{h.lastReason ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        )}
      </section>
    </section>
  );
}

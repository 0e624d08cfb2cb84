// The database servers behind add-ons (GET /v1/addon-servers): each engine's server, managed
// by Petri or external, where the control plane reaches it, whether it answers now (and why
// not), and how many add-ons live on it. Read again every 15 s while open.
import { useQuery } from '@tanstack/react-query';
import { client, errorText } from '../../api.js';
import { useTitle } from '../../router.js';
import { Status } from '../apps.js';

export function AddonServersSection() {
  useTitle('Add-on servers');
  const servers = useQuery({
    queryKey: ['addon-servers'],
    queryFn: () => client.addonServers(),
    refetchInterval: 15_000,
  });
  return (
    <>
      <h1>Add-on servers</h1>
      {servers.isPending && <p className="loading">Asking each server…</p>}
      {servers.isError && (
        <p role="alert" className="error">
          Could not read the add-on servers: {errorText(servers.error)}
        </p>
      )}
      {servers.data?.length === 0 && <p>This Petri offers no add-ons: every engine is off.</p>}
      {servers.data && servers.data.length > 0 && (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
        <section className="scroll" tabIndex={0} aria-label="Add-on servers">
          <table>
            <thead>
              <tr>
                <th scope="col">Engine</th>
                <th scope="col">Mode</th>
                <th scope="col">Address</th>
                <th scope="col">State</th>
                <th scope="col">Add-ons</th>
              </tr>
            </thead>
            <tbody>
              {servers.data.map((s) => (
                <tr key={s.type}>
                  <th scope="row">{s.type}</th>
                  <td>{s.mode === 'managed' ? 'managed by Petri' : 'external'}</td>
                  <td>{s.address}</td>
                  <td>
                    <Status status={s.state} />
                    {s.state === 'idle' && <span className="sub">starts with its first add-on</span>}
                    {s.error && <span className="sub">{s.error}</span>}
                  </td>
                  <td>{s.addons}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </>
  );
}

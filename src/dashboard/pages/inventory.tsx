// Operators' inventory: every app with its team, stage, data, audience, egress, add-ons,
// use and expiry, with the filters of `petri inventory`, and its CSV as the server writes it.
import { useMutation, useQuery } from '@tanstack/react-query';
import { useId, useState } from 'react';
import type { InventoryQuery } from '../../client/types.js';
import { client, errorText } from '../api.js';
import { csvFileName, exactTime, expiresSoon, relativeTime } from '../logic.js';
import { appHref, Link, useTitle } from '../router.js';

type Filters = Omit<InventoryQuery, 'format'>;

export default function InventoryPage() {
  useTitle('Inventory');
  const id = useId();
  const [draft, setDraft] = useState<Filters>({});
  const [filters, setFilters] = useState<Filters>({});
  const inventory = useQuery({ queryKey: ['inventory', filters], queryFn: () => client.inventory(filters) });
  const csv = useMutation({
    mutationFn: () => client.inventoryCsv(filters),
    onSuccess: (text) => download(text, csvFileName(Date.now())),
  });
  const set = (key: keyof Filters, value: string) =>
    setDraft({ ...draft, [key]: value === '' ? undefined : value });
  const now = Date.now();
  return (
    <>
      <div className="heading">
        <h1>Inventory</h1>
        <button type="button" onClick={() => csv.mutate()} disabled={csv.isPending}>
          {csv.isPending ? 'Exporting…' : 'Export CSV'}
        </button>
      </div>
      {csv.isError && (
        <p role="alert" className="error">
          Export failed: {errorText(csv.error)}
        </p>
      )}
      <search aria-label="Filter the inventory">
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            setFilters(draft);
          }}
        >
          <div className="field">
            <label htmlFor={`${id}-team`}>Team</label>
            <input id={`${id}-team`} value={draft.team ?? ''} onChange={(e) => set('team', e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-stage`}>Stage</label>
            <select
              id={`${id}-stage`}
              value={draft.stage ?? ''}
              onChange={(e) => set('stage', e.target.value)}
            >
              <option value="">any</option>
              {['experiment', 'graduating', 'graduated', 'archived'].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor={`${id}-data`}>Data</label>
            <select id={`${id}-data`} value={draft.data ?? ''} onChange={(e) => set('data', e.target.value)}>
              <option value="">any</option>
              {['none', 'anonymous', 'personal', 'sensitive'].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor={`${id}-exp`}>Expiring within</label>
            <input
              id={`${id}-exp`}
              placeholder="14d"
              value={draft.expiring ?? ''}
              onChange={(e) => set('expiring', e.target.value)}
            />
          </div>
          <button type="submit">Apply</button>
        </form>
      </search>
      {inventory.isPending && <p className="loading">Loading the inventory…</p>}
      {inventory.isError && (
        <p role="alert" className="error">
          Could not read the inventory: {errorText(inventory.error)}
        </p>
      )}
      {inventory.data && (
        <>
          <p className="count" aria-live="polite">
            {inventory.data.length} app{inventory.data.length === 1 ? '' : 's'}
          </p>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys */}
          <section className="scroll" tabIndex={0} aria-label="Inventory">
            <table>
              <thead>
                <tr>
                  <th scope="col">App</th>
                  <th scope="col">Team</th>
                  <th scope="col">Owner</th>
                  <th scope="col">Stage</th>
                  <th scope="col">Data</th>
                  <th scope="col">Audience</th>
                  <th scope="col">Egress</th>
                  <th scope="col">Add-ons</th>
                  <th scope="col">Processes</th>
                  <th scope="col">Requests 7d</th>
                  <th scope="col">Last deploy</th>
                  <th scope="col">Expires</th>
                </tr>
              </thead>
              <tbody>
                {inventory.data.map((row) => (
                  <tr key={row.name}>
                    <th scope="row">
                      <Link href={appHref(row.name)}>{row.name}</Link>
                    </th>
                    <td>{row.team}</td>
                    <td>{row.owner}</td>
                    <td>{row.stage}</td>
                    <td>
                      {row.dataClass}
                      {!row.approved && (row.dataClass === 'personal' || row.dataClass === 'sensitive') && (
                        <span className="sub">not approved</span>
                      )}
                    </td>
                    <td>{row.audience ?? '—'}</td>
                    <td>
                      {row.egressDeclared.join(' ') || '—'}
                      {row.egressRefused > 0 && <span className="sub">{row.egressRefused} refused</span>}
                    </td>
                    <td>{row.addons.map((a) => a.name).join(' ') || '—'}</td>
                    <td>{row.processes}</td>
                    <td>{row.requests7d ?? '—'}</td>
                    <td title={exactTime(row.lastDeployAt)}>{relativeTime(row.lastDeployAt, now)}</td>
                    <td
                      className={expiresSoon(row.expiresAt, now) ? 'soon' : undefined}
                      title={exactTime(row.expiresAt)}
                    >
                      {row.expiredAt
                        ? `expired ${relativeTime(row.expiredAt, now)}`
                        : relativeTime(row.expiresAt, now)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
    </>
  );
}

function download(text: string, name: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// The audit log (GET /v1/audit, as `petri audit`): who did what, to which app or team, when,
// from where and how it ended, newest first, filtered by actor, app, action, time and
// outcome, a page of PAGE_SIZE at a time (older pages by the answer's `next`).
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useId, useState } from 'react';
import type { AuditEvent } from '../../../client/types.js';
import { client, errorText } from '../../api.js';
import { exactTime } from '../../logic.js';
import { useTitle } from '../../router.js';
import { type AuditDraft, auditFilters, EMPTY_AUDIT_DRAFT, plain } from './ops-logic.js';

const PAGE_SIZE = 50;

export function AuditSection() {
  useTitle('Audit log');
  const id = useId();
  const [draft, setDraft] = useState<AuditDraft>(EMPTY_AUDIT_DRAFT);
  const [applied, setApplied] = useState<AuditDraft>(EMPTY_AUDIT_DRAFT);
  // The `before` of each page shown after the first: Newer goes back one.
  const [pages, setPages] = useState<number[]>([]);
  const before = pages.at(-1);
  const filters = { ...auditFilters(applied, PAGE_SIZE), ...(before === undefined ? {} : { before }) };
  const audit = useQuery({
    queryKey: ['audit', filters],
    queryFn: () => client.audit(filters),
    placeholderData: keepPreviousData,
  });
  const field = (key: keyof AuditDraft, label: string, placeholder?: string) => (
    <div className="field">
      <label htmlFor={`${id}-${key}`}>{label}</label>
      <input
        id={`${id}-${key}`}
        value={draft[key]}
        placeholder={placeholder}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
      />
    </div>
  );
  return (
    <>
      <h1>Audit log</h1>
      <search aria-label="Filter the audit log">
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            setApplied(draft);
            setPages([]);
          }}
        >
          {field('user', 'Actor', 'e-mail or name')}
          {field('app', 'App')}
          {field('action', 'Action', 'config.change or config')}
          {field('since', 'Since', '24h, 7d or 2026-12-01')}
          <div className="field">
            <label htmlFor={`${id}-outcome`}>Outcome</label>
            <select
              id={`${id}-outcome`}
              value={draft.outcome}
              onChange={(e) => setDraft({ ...draft, outcome: e.target.value })}
            >
              <option value="">any</option>
              <option>ok</option>
              <option>denied</option>
              <option>failed</option>
            </select>
          </div>
          <button type="submit">Apply</button>
        </form>
      </search>
      {audit.isPending && <p className="loading">Loading the audit log…</p>}
      {audit.isError && (
        <p role="alert" className="error">
          Could not read the audit log: {errorText(audit.error)}
        </p>
      )}
      {audit.data && (
        <>
          <p className="count" aria-live="polite">
            {audit.data.events.length === 0
              ? 'No events match.'
              : `${audit.data.events.length} event${audit.data.events.length === 1 ? '' : 's'}${pages.length > 0 ? `, page ${pages.length + 1}` : ''}, newest first`}
          </p>
          {audit.data.events.length > 0 && (
            // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
            <section className="scroll" tabIndex={0} aria-label="Audit events">
              <table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Who</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    <th scope="col">Outcome</th>
                    <th scope="col">From</th>
                  </tr>
                </thead>
                <tbody>
                  {audit.data.events.map((e) => (
                    <EventRow key={e.id} event={e} />
                  ))}
                </tbody>
              </table>
            </section>
          )}
          <div className="actions">
            {pages.length > 0 && (
              <button type="button" onClick={() => setPages(pages.slice(0, -1))}>
                Newer events
              </button>
            )}
            {audit.data.next !== null && (
              <button type="button" onClick={() => setPages([...pages, audit.data.next as number])}>
                Older events
              </button>
            )}
          </div>
        </>
      )}
    </>
  );
}

function EventRow({ event: e }: { event: AuditEvent }) {
  const detail = Object.keys(e.detail).length > 0 ? JSON.stringify(e.detail, null, 2) : null;
  return (
    <tr>
      <td>{exactTime(e.at)}</td>
      <td>
        {plain(e.actor)}
        <span className="sub">via {e.via}</span>
      </td>
      <td>
        {plain(e.action)}
        {detail && (
          <details>
            <summary>Details</summary>
            <pre>{detail.split('\n').map(plain).join('\n')}</pre>
          </details>
        )}
      </td>
      <td>
        {plain(e.target)}
        {e.team && <span className="sub">team {plain(e.team)}</span>}
      </td>
      <td>
        <span className={`status status-${e.outcome === 'ok' ? 'up' : 'down'}`}>
          {e.outcome === 'ok' || e.status === null ? e.outcome : `${e.outcome} ${e.status}`}
        </span>
      </td>
      <td>{e.ip === null ? '—' : plain(e.ip)}</td>
    </tr>
  );
}

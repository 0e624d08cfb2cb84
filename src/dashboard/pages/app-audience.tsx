// Who may reach an app (issue 15, as `petri audience`): its mode (public, staff, invite) and
// a change of it (public with personal or sensitive data is an admin's approval: the API's
// refusal says so, and admins see the box that gives it); the people invited (add, remove);
// invite links (create with uses and expiry, copy the URL shown once, revoke); the visitors
// who consented to its notice. Readers see the lists, not the forms.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useEffect, useId, useRef, useState } from 'react';
import type { App, Audience, AudienceLinkCreated } from '../../client/types.js';
import { client, errorText, useMayChange, useWhoami } from '../api.js';
import { emailList, exactTime, relativeTime, visitorName } from '../logic.js';
import { Status } from './apps.js';

const MODES = [
  ['public', 'anyone on the internet'],
  ['staff', 'anyone who can sign in to Petri'],
  ['invite', 'only the people invited and invite links'],
] as const;

export default function AudienceTab({ app }: { app: App }) {
  const audience = useQuery({ queryKey: ['audience', app.name], queryFn: () => client.audience(app.name) });
  const writable = useMayChange(app.team);
  if (audience.isPending) return <p className="loading">Loading the audience…</p>;
  if (audience.isError)
    return (
      <p role="alert" className="error">
        Could not read the audience: {errorText(audience.error)}
      </p>
    );
  return (
    <section aria-labelledby="aud-h">
      <h2 id="aud-h">Audience</h2>
      <Mode app={app} audience={audience.data} writable={writable} />
      <Invitees app={app} audience={audience.data} writable={writable} />
      <Links app={app} writable={writable} />
      <Visitors app={app} />
    </section>
  );
}

function Mode({ app, audience, writable }: { app: App; audience: Audience; writable: boolean }) {
  const id = useId();
  const queryClient = useQueryClient();
  const platformAdmin = useWhoami().data?.role === 'admin';
  const [chosen, setChosen] = useState<string>(audience.audience);
  const [approve, setApprove] = useState(false);
  const change = useMutation({
    mutationFn: ({ mode, approve }: { mode: string; approve: boolean }) =>
      client.setAudience(app.name, mode, approve),
    onSuccess: (view) => {
      queryClient.setQueryData(['audience', app.name], view);
      void queryClient.invalidateQueries({ queryKey: ['inventory'] });
    },
  });
  const personal = app.experiment.dataClass === 'personal' || app.experiment.dataClass === 'sensitive';
  const current = MODES.find(([m]) => m === audience.audience);
  if (!writable)
    return (
      <section className="card" aria-labelledby={`${id}-h`}>
        <h3 id={`${id}-h`}>Who may reach it</h3>
        <p>
          <strong>{audience.audience}</strong>: {current?.[1]}.
        </p>
      </section>
    );
  const submit = (event: FormEvent) => {
    event.preventDefault();
    change.mutate({ mode: chosen, approve: approve && chosen === 'public' });
  };
  return (
    <form className="card" onSubmit={submit}>
      <fieldset className="plain">
        <legend>
          <h3>Who may reach it</h3>
        </legend>
        {MODES.map(([mode, text]) => (
          <div key={mode} className="field check">
            <input
              type="radio"
              id={`${id}-${mode}`}
              name={`${id}-mode`}
              value={mode}
              checked={chosen === mode}
              onChange={() => setChosen(mode)}
            />
            <label htmlFor={`${id}-${mode}`}>
              <strong>{mode}</strong>: {text}
              {mode === audience.audience && ' (now)'}
            </label>
          </div>
        ))}
      </fieldset>
      {platformAdmin && personal && chosen === 'public' && (
        <div className="field check">
          <input
            type="checkbox"
            id={`${id}-approve`}
            checked={approve}
            onChange={(e) => setApprove(e.target.checked)}
          />
          <label htmlFor={`${id}-approve`}>
            Approve making an app with {app.experiment.dataClass} data public (audited)
          </label>
        </div>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={change.isPending || chosen === audience.audience}>
          {change.isPending ? 'Changing…' : 'Change audience'}
        </button>
      </div>
      <div aria-live="polite">
        {change.isSuccess && <p className="ok">The audience is {change.data.audience} now.</p>}
        {change.isError && (
          <p role="alert" className="error">
            Making {app.name} {change.variables?.mode} failed: {errorText(change.error)}
          </p>
        )}
      </div>
    </form>
  );
}

function Invitees({ app, audience, writable }: { app: App; audience: Audience; writable: boolean }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [emails, setEmails] = useState('');
  const done = (view: Audience) => queryClient.setQueryData(['audience', app.name], view);
  const invite = useMutation({
    mutationFn: (list: string[]) => client.inviteToAudience(app.name, list),
    onSuccess: (view) => {
      done(view);
      setEmails('');
    },
  });
  const remove = useMutation({
    mutationFn: (email: string) => client.removeFromAudience(app.name, email),
    onSuccess: done,
  });
  const now = Date.now();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const list = emailList(emails);
    if (list.length > 0) invite.mutate(list);
  };
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>People invited</h3>
      {audience.audience !== 'invite' && audience.invitees.length > 0 && (
        <p className="sub">They count once the audience is invite.</p>
      )}
      {audience.invitees.length === 0 ? (
        <p>Nobody is invited yet.</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
        <section className="scroll" tabIndex={0} aria-label="People invited">
          <table>
            <thead>
              <tr>
                <th scope="col">E-mail</th>
                <th scope="col">Invited</th>
                {writable && (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {audience.invitees.map((p) => (
                <tr key={p.email}>
                  <th scope="row" className="value">
                    {p.email}
                  </th>
                  <td title={exactTime(p.invitedAt)}>
                    {relativeTime(p.invitedAt, now)}
                    {p.invitedBy && <span className="sub">by {p.invitedBy}</span>}
                  </td>
                  {writable && (
                    <td>
                      <button
                        type="button"
                        className="danger"
                        aria-label={`Remove ${p.email}`}
                        disabled={remove.isPending}
                        onClick={() => remove.mutate(p.email)}
                      >
                        Remove
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {writable && (
        <form onSubmit={submit} className="row">
          <div className="field grow">
            <label htmlFor={`${id}-emails`}>Invite by e-mail</label>
            <input
              id={`${id}-emails`}
              type="text"
              inputMode="email"
              autoComplete="off"
              value={emails}
              placeholder="ana@example.org, ben@example.org"
              onChange={(e) => setEmails(e.target.value)}
            />
          </div>
          <button type="submit" disabled={invite.isPending}>
            {invite.isPending ? 'Inviting…' : 'Invite'}
          </button>
        </form>
      )}
      <div aria-live="polite">
        {invite.isSuccess && (
          <p className="ok">
            {invite.data.added?.length
              ? `Invited ${invite.data.added.join(', ')}.`
              : 'They were on the list already.'}
          </p>
        )}
        {invite.isError && (
          <p role="alert" className="error">
            Inviting {emailList(emails).join(', ') || 'them'} failed: {errorText(invite.error)}
          </p>
        )}
        {remove.isSuccess && <p className="ok">Removed {remove.variables}.</p>}
        {remove.isError && (
          <p role="alert" className="error">
            Removing {remove.variables} failed: {errorText(remove.error)}
          </p>
        )}
      </div>
    </section>
  );
}

const EXPIRIES = ['1d', '7d', '30d', '90d'];

function Links({ app, writable }: { app: App; writable: boolean }) {
  const id = useId();
  const queryClient = useQueryClient();
  const links = useQuery({
    queryKey: ['audience-links', app.name],
    queryFn: () => client.audienceLinks(app.name),
  });
  const [uses, setUses] = useState('50');
  const [expires, setExpires] = useState('7d');
  const [made, setMade] = useState<AudienceLinkCreated | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['audience-links', app.name] });
  const create = useMutation({
    mutationFn: () => client.createAudienceLink(app.name, { uses: Number(uses), expires }),
    onSuccess: (created) => {
      setMade(created);
      void refresh();
    },
  });
  const revoke = useMutation({
    mutationFn: (linkId: number) => client.revokeAudienceLink(app.name, linkId),
    onSuccess: () => void refresh(),
  });
  const now = Date.now();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Invite links</h3>
      {made && <NewLink created={made} onClose={() => setMade(null)} />}
      {links.isPending && <p className="loading">Loading links…</p>}
      {links.isError && (
        <p role="alert" className="error">
          Could not list the links: {errorText(links.error)}
        </p>
      )}
      {links.data &&
        (links.data.length === 0 ? (
          <p>No invite link yet.</p>
        ) : (
          // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
          <section className="scroll" tabIndex={0} aria-label="Invite links">
            <table>
              <thead>
                <tr>
                  <th scope="col">Link</th>
                  <th scope="col">State</th>
                  <th scope="col">Uses left</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Made</th>
                  {writable && (
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  )}
                </tr>
              </thead>
              <tbody>
                {links.data.map((l) => (
                  <tr key={l.id}>
                    <th scope="row">
                      {l.id}
                      {l.email && <span className="sub">for {l.email}</span>}
                    </th>
                    <td>
                      <Status status={l.state.replace(' ', '-')} />
                    </td>
                    <td>
                      {l.usesLeft} of {l.maxUses}
                    </td>
                    <td title={exactTime(l.expiresAt)}>{relativeTime(l.expiresAt, now)}</td>
                    <td title={exactTime(l.createdAt)}>
                      {relativeTime(l.createdAt, now)}
                      {l.createdBy && <span className="sub">by {l.createdBy}</span>}
                    </td>
                    {writable && (
                      <td>
                        {l.state === 'active' && (
                          <button
                            type="button"
                            className="danger"
                            aria-label={`Revoke link ${l.id}`}
                            disabled={revoke.isPending}
                            onClick={() => revoke.mutate(l.id)}
                          >
                            Revoke
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        ))}
      {writable && (
        <form onSubmit={submit} className="row">
          <div className="field">
            <label htmlFor={`${id}-uses`}>People it lets in</label>
            <input
              id={`${id}-uses`}
              type="number"
              min={1}
              max={10000}
              required
              value={uses}
              onChange={(e) => setUses(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor={`${id}-exp`}>Works for</label>
            <select id={`${id}-exp`} value={expires} onChange={(e) => setExpires(e.target.value)}>
              {EXPIRIES.map((e) => (
                <option key={e}>{e}</option>
              ))}
            </select>
          </div>
          <button type="submit" disabled={create.isPending}>
            {create.isPending ? 'Creating…' : 'Create link'}
          </button>
        </form>
      )}
      <div aria-live="polite">
        {create.isError && (
          <p role="alert" className="error">
            Creating a link for {uses} people, {expires}, failed: {errorText(create.error)}
          </p>
        )}
        {revoke.isSuccess && <p className="ok">Revoked link {revoke.variables}.</p>}
        {revoke.isError && (
          <p role="alert" className="error">
            Revoking link {revoke.variables} failed: {errorText(revoke.error)}
          </p>
        )}
      </div>
    </section>
  );
}

/** The new link's URL, shown once (it is never stored), with Copy. */
function NewLink({ created, onClose }: { created: AudienceLinkCreated; onClose: () => void }) {
  const id = useId();
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<string | null>(null);
  // The URL is shown once: the focus goes to it, so it is read out and can be copied at once.
  useEffect(() => input.current?.focus(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.url);
      setCopied('Copied.');
    } catch {
      // No clipboard (a page over plain HTTP on another host): select it for Ctrl+C.
      input.current?.select();
      setCopied('Selected: press Ctrl+C (⌘C) to copy it.');
    }
  };
  return (
    <div className="card done">
      <div className="field">
        <label htmlFor={`${id}-url`}>New link {created.link.id} (shown only now: copy it)</label>
        <input id={`${id}-url`} ref={input} readOnly value={created.url} onFocus={(e) => e.target.select()} />
      </div>
      <div className="actions">
        <button type="button" className="primary" onClick={() => void copy()}>
          Copy link
        </button>
        <button type="button" onClick={onClose}>
          Done
        </button>
        <span aria-live="polite">{copied}</span>
      </div>
    </div>
  );
}

function Visitors({ app }: { app: App }) {
  const id = useId();
  const visitors = useQuery({
    queryKey: ['audience-visitors', app.name],
    queryFn: () => client.audienceVisitors(app.name),
    refetchInterval: 60_000,
  });
  const now = Date.now();
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Visitors</h3>
      {visitors.isPending && <p className="loading">Loading visitors…</p>}
      {visitors.isError && (
        <p role="alert" className="error">
          Could not list the visitors: {errorText(visitors.error)}
        </p>
      )}
      {visitors.data && (
        <>
          <p className="sub">The notice shown now is version {visitors.data.noticeVersion}.</p>
          {visitors.data.visitors.length === 0 ? (
            <p>Nobody has consented to its notice yet.</p>
          ) : (
            // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
            <section className="scroll" tabIndex={0} aria-label="Visitors">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Visitor</th>
                    <th scope="col">Consented</th>
                    <th scope="col">Notice</th>
                    <th scope="col">Last visit</th>
                    <th scope="col">Withdrawn</th>
                  </tr>
                </thead>
                <tbody>
                  {visitors.data.visitors.map((v) => (
                    <tr key={`${v.visitor} ${v.noticeVersion}`}>
                      <th scope="row" className="value">
                        {visitorName(v.visitor)}
                      </th>
                      <td className="when" title={relativeTime(v.consentedAt, now)}>
                        {exactTime(v.consentedAt)}
                      </td>
                      <td>
                        v{v.noticeVersion}
                        {!v.current && !v.withdrawnAt && <span className="sub">an earlier notice</span>}
                      </td>
                      <td title={exactTime(v.lastVisitAt)}>{relativeTime(v.lastVisitAt, now)}</td>
                      <td>{v.withdrawnAt ? exactTime(v.withdrawnAt) : 'no'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </section>
          )}
        </>
      )}
    </section>
  );
}

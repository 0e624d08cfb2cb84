// An app's add-ons (its databases): each with its engine, config var, size and connections;
// "Add an add-on" (an engine this server offers); and each add-on's backups: take one now,
// download one, restore one after a dialog that names what will be replaced. Readers see the
// lists; the buttons are for those the API lets change the app and read its secrets.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useEffect, useId, useRef, useState } from 'react';
import type { Addon, AddonBackup, App } from '../../client/types.js';
import { client, errorText, useMayChange } from '../api.js';
import { exactTime, relativeTime, restoreQuestion } from '../logic.js';
import { Status } from './apps.js';

export default function AddonsTab({ app }: { app: App }) {
  const addons = useQuery({
    queryKey: ['addons', app.name],
    queryFn: () => client.listAddons(app.name),
    // One being made or destroyed changes by itself: look again until none is.
    refetchInterval: (q) =>
      q.state.data?.addons.some((a) => a.status === 'provisioning' || a.status === 'destroying')
        ? 2_000
        : 30_000,
  });
  const writable = useMayChange(app.team);
  return (
    <section aria-labelledby="addons-h">
      <h2 id="addons-h">Add-ons</h2>
      {addons.isPending && <p className="loading">Loading add-ons…</p>}
      {addons.isError && (
        <p role="alert" className="error">
          Could not list the add-ons: {errorText(addons.error)}
        </p>
      )}
      {addons.data && (
        <>
          {addons.data.addons.length === 0 ? (
            <p>No add-on yet.</p>
          ) : (
            addons.data.addons.map((addon) => (
              <AddonCard key={addon.name} app={app} addon={addon} writable={writable} />
            ))
          )}
          {writable && <CreateAddon app={app} available={addons.data.available} />}
        </>
      )}
    </section>
  );
}

function size(bytes: number | null): string {
  if (bytes === null) return '—';
  if (bytes < 1_048_576) return `${Math.max(1, Math.round(bytes / 1024))} KiB`;
  return `${(bytes / 1_048_576).toFixed(1)} MiB`;
}

function AddonCard({ app, addon, writable }: { app: App; addon: Addon; writable: boolean }) {
  const id = useId();
  const queryClient = useQueryClient();
  const backups = useQuery({
    queryKey: ['backups', app.name, addon.name],
    queryFn: () => client.listAddonBackups(app.name, addon.name),
    enabled: addon.status === 'ready',
    refetchInterval: (q) => (q.state.data?.some((b) => b.status === 'running') ? 2_000 : 30_000),
  });
  const backup = useMutation({
    mutationFn: () => client.backupAddon(app.name, addon.name),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['backups', app.name, addon.name] }),
  });
  const [asked, setAsked] = useState<AddonBackup | null>(null);
  const restore = useMutation({
    mutationFn: (b: AddonBackup) => client.restoreAddon(app.name, addon.name, b.id),
    onSuccess: () => setAsked(null),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ['backups', app.name, addon.name] }),
  });
  const now = Date.now();
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <div className="heading">
        <h3 id={`${id}-h`}>
          {addon.name} <span className="sub-inline">({addon.type})</span>
        </h3>
        <Status status={addon.status} />
      </div>
      <dl className="facts">
        <dt>Config var</dt>
        <dd>
          <code>{addon.envVar}</code>
        </dd>
        <dt>Size</dt>
        <dd>{size(addon.usage.bytes)}</dd>
        <dt>Connections</dt>
        <dd>{addon.usage.connections ?? '—'}</dd>
        <dt>Created</dt>
        <dd title={exactTime(addon.createdAt)}>{relativeTime(addon.createdAt, now)}</dd>
        {addon.usage.error && (
          <>
            <dt>Figures</dt>
            <dd>{addon.usage.error}</dd>
          </>
        )}
      </dl>
      <h4>Backups</h4>
      {writable && addon.status === 'ready' && (
        <div className="actions">
          <button type="button" disabled={backup.isPending} onClick={() => backup.mutate()}>
            {backup.isPending ? 'Backing up…' : `Back up ${addon.name} now`}
          </button>
        </div>
      )}
      <div aria-live="polite">
        {backup.isSuccess && (
          <p className="ok">
            Backed up {addon.name}: {backup.data.id}, {size(backup.data.sizeBytes)}.
          </p>
        )}
        {backup.isError && (
          <p role="alert" className="error">
            Backing up {addon.name} failed: {errorText(backup.error)}
          </p>
        )}
        {restore.isSuccess && (
          <p className="ok">
            Restored {addon.name} from {restore.data.restored}; what it held before is in{' '}
            {restore.data.safetyBackup.id}.
          </p>
        )}
        {restore.isError && (
          <p role="alert" className="error">
            Restoring {addon.name} from {restore.variables?.id} failed: {errorText(restore.error)}
          </p>
        )}
      </div>
      {addon.status !== 'ready' ? (
        <p>Backups are listed once it is ready.</p>
      ) : backups.isPending ? (
        <p className="loading">Loading backups…</p>
      ) : backups.isError ? (
        <p role="alert" className="error">
          Could not list the backups: {errorText(backups.error)}
        </p>
      ) : backups.data.length === 0 ? (
        <p>No backup yet.</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
        <section className="scroll" tabIndex={0} aria-label={`Backups of ${addon.name}`}>
          <table>
            <thead>
              <tr>
                <th scope="col">Backup</th>
                <th scope="col">Taken</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Size</th>
                <th scope="col">By</th>
                {writable && (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {backups.data.map((b) => (
                <tr key={b.id}>
                  <th scope="row">{b.id}</th>
                  <td className="when" title={relativeTime(b.createdAt, now)}>
                    {exactTime(b.createdAt)}
                  </td>
                  <td>{b.kind}</td>
                  <td>
                    <Status status={b.status} />
                    {b.error && <span className="sub">{b.error}</span>}
                  </td>
                  <td>{size(b.sizeBytes)}</td>
                  <td>{b.createdBy}</td>
                  {writable && (
                    <td>
                      {b.status === 'succeeded' && (
                        <div className="row-actions">
                          <a
                            className="button"
                            href={client.backupDownloadUrl(app.name, addon.name, b.id)}
                            download
                            aria-label={`Download ${b.id}`}
                          >
                            Download
                          </a>
                          <button
                            type="button"
                            className="danger"
                            aria-label={`Restore ${addon.name} from ${b.id}`}
                            disabled={restore.isPending}
                            onClick={() => setAsked(b)}
                          >
                            Restore
                          </button>
                        </div>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {asked && (
        <ConfirmDialog
          title={`Restore ${addon.name} from ${asked.id}?`}
          question={restoreQuestion(addon, asked)}
          action={restore.isPending ? 'Restoring…' : `Restore ${addon.name} from ${asked.id}`}
          busy={restore.isPending}
          onConfirm={() => restore.mutate(asked)}
          onCancel={() => setAsked(null)}
        />
      )}
    </section>
  );
}

/** A modal dialog (the browser's own: it keeps the focus inside, Escape cancels it, and the
 * focus goes back to what opened it). */
export function ConfirmDialog(props: {
  title: string;
  question: string;
  action: string;
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const id = useId();
  const ref = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    const opener = document.activeElement;
    if (dialog && !dialog.open) dialog.showModal();
    // The safe choice takes the focus (showModal gives it to the first button, the dangerous
    // one; React keeps autoFocus to itself, so the dialog never sees it).
    cancel.current?.focus();
    return () => {
      dialog?.close();
      // Removed rather than closed, the dialog cannot give the focus back itself.
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby={`${id}-h`}
      aria-describedby={`${id}-q`}
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id={`${id}-h`}>{props.title}</h2>
      <p id={`${id}-q`}>{props.question}</p>
      <div className="actions">
        <button type="button" className="danger" disabled={props.busy} onClick={props.onConfirm}>
          {props.action}
        </button>
        <button type="button" ref={cancel} onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}

function CreateAddon({ app, available }: { app: App; available: string[] }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [type, setType] = useState(available[0] ?? '');
  const [as, setAs] = useState('');
  const create = useMutation({
    mutationFn: () => client.createAddon(app.name, { type, ...(as ? { as } : {}) }),
    onSuccess: async () => {
      setAs('');
      await queryClient.invalidateQueries({ queryKey: ['addons', app.name] });
      await queryClient.invalidateQueries({ queryKey: ['releases', app.name] });
    },
  });
  if (available.length === 0) return <p>This server offers no add-on engine.</p>;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Add an add-on</h3>
      <div className="row">
        <div className="field">
          <label htmlFor={`${id}-type`}>Engine</label>
          <select id={`${id}-type`} value={type} onChange={(e) => setType(e.target.value)}>
            {available.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-as`}>Name (optional)</label>
          <input
            id={`${id}-as`}
            value={as}
            autoComplete="off"
            spellCheck={false}
            aria-describedby={`${id}-as-help`}
            onChange={(e) => setAs(e.target.value)}
          />
        </div>
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? 'Adding…' : 'Add'}
        </button>
      </div>
      <small id={`${id}-as-help`} className="help">
        A name such as CACHE puts the URL in CACHE_URL instead of the engine’s default variable.
      </small>
      <div aria-live="polite">
        {create.isSuccess && (
          <p className="ok">
            Added {create.data.addon.name}: its URL is in {create.data.addon.envVar}
            {create.data.release
              ? `, in release ${create.data.release.version}.`
              : '; the first deploy will take it.'}
          </p>
        )}
        {create.isError && (
          <p role="alert" className="error">
            Adding {type} failed: {errorText(create.error)}
          </p>
        )}
      </div>
    </form>
  );
}

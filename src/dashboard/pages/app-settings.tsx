// An app's settings: its idle period and boot timeout (members of its team change them, as
// `petri apps set`); and what only its team's admins (and platform admins) do: transfer it to
// another team, graduate it (its handoff bundle downloads), destroy it after typing its name.
// Everyone else reads the settings and sees none of the buttons.
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useId, useState } from 'react';
import type { App } from '../../client/types.js';
import { client, errorText, useMayChange, useWhoami } from '../api.js';
import { formatDuration, mayAdminister, parseDuration } from '../logic.js';
import { navigate } from '../router.js';

export default function SettingsTab({ app }: { app: App }) {
  const writable = useMayChange(app.team);
  const admin = mayAdminister(useWhoami().data, app.team);
  return (
    <section aria-labelledby="set-h">
      <h2 id="set-h">Settings</h2>
      {writable ? (
        <Timeouts app={app} />
      ) : (
        <section className="card" aria-labelledby="set-read">
          <h3 id="set-read">Timeouts</h3>
          <dl className="facts">
            <dt>Idle period</dt>
            <dd>{formatDuration(app.settings.idleTimeoutSeconds)}</dd>
            <dt>Boot timeout</dt>
            <dd>{app.settings.bootTimeoutSeconds} s</dd>
          </dl>
          <p className="sub">
            The members of {app.team} change these; its admins transfer and destroy the app.
          </p>
        </section>
      )}
      {admin && (
        <>
          <Transfer app={app} />
          {app.experiment.stage === 'experiment' && <Graduate app={app} />}
          <Destroy app={app} />
        </>
      )}
    </section>
  );
}

function Timeouts({ app }: { app: App }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [idle, setIdle] = useState(formatDuration(app.settings.idleTimeoutSeconds));
  const [boot, setBoot] = useState(String(app.settings.bootTimeoutSeconds));
  const [problem, setProblem] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: (settings: { idleTimeoutSeconds: number | null; bootTimeoutSeconds: number }) =>
      client.updateApp(app.name, { settings }),
    onSuccess: (updated) => {
      queryClient.setQueryData(['app', app.name], updated);
      void queryClient.invalidateQueries({ queryKey: ['apps'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const parsed = parseDuration(idle);
    const seconds = Number(boot);
    const error =
      'error' in parsed
        ? parsed.error
        : !Number.isInteger(seconds) || seconds < 1 || seconds > 3600
          ? 'The boot timeout is 1 to 3600 seconds'
          : null;
    setProblem(error);
    if (error || 'error' in parsed) {
      save.reset();
      return;
    }
    save.mutate({ idleTimeoutSeconds: parsed.seconds, bootTimeoutSeconds: seconds });
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Timeouts</h3>
      <div className="row">
        <div className="field">
          <label htmlFor={`${id}-idle`}>Idle period</label>
          <input
            id={`${id}-idle`}
            value={idle}
            autoComplete="off"
            spellCheck={false}
            aria-describedby={`${id}-idle-help`}
            aria-invalid={problem && 'error' in parseDuration(idle) ? true : undefined}
            onChange={(e) => setIdle(e.target.value)}
          />
          <small id={`${id}-idle-help`}>
            How long without a request before it sleeps: 30m, 2h, 1d, or never.
          </small>
        </div>
        <div className="field">
          <label htmlFor={`${id}-boot`}>Boot timeout (seconds)</label>
          <input
            id={`${id}-boot`}
            type="number"
            min={1}
            max={3600}
            value={boot}
            aria-describedby={`${id}-boot-help`}
            onChange={(e) => setBoot(e.target.value)}
          />
          <small id={`${id}-boot-help`}>How long a new process has to listen before its release fails.</small>
        </div>
      </div>
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending}>
          {save.isPending ? 'Saving…' : 'Save'}
        </button>
      </div>
      <div aria-live="polite">
        {problem && (
          <p role="alert" className="error">
            {problem}
          </p>
        )}
        {save.isSuccess && (
          <p className="ok">
            Saved: idle period {formatDuration(save.data.settings.idleTimeoutSeconds)}, boot timeout{' '}
            {save.data.settings.bootTimeoutSeconds} s.
          </p>
        )}
        {save.isError && (
          <p role="alert" className="error">
            Saving the settings failed: {errorText(save.error)}
          </p>
        )}
      </div>
    </form>
  );
}

function Transfer({ app }: { app: App }) {
  const id = useId();
  const queryClient = useQueryClient();
  const whoami = useWhoami();
  // Teams the person may move it to: those where they may make apps.
  const teams = (whoami.data?.teams ?? []).filter((t) => t.role !== 'viewer' && t.name !== app.team);
  const [team, setTeam] = useState('');
  const chosen = team || teams[0]?.name || '';
  const transfer = useMutation({
    mutationFn: (to: string) => client.transferApp(app.name, to),
    onSuccess: (moved) => {
      queryClient.setQueryData(['app', app.name], moved);
      void queryClient.invalidateQueries({ queryKey: ['apps'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (chosen) transfer.mutate(chosen);
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Transfer to another team</h3>
      {teams.length === 0 ? (
        <p>You are a member of no other team to move it to.</p>
      ) : (
        <div className="row">
          <div className="field">
            <label htmlFor={`${id}-team`}>Team</label>
            <select id={`${id}-team`} value={chosen} onChange={(e) => setTeam(e.target.value)}>
              {teams.map((t) => (
                <option key={t.name} value={t.name}>
                  {t.personal ? `${t.name} (yours)` : t.name}
                </option>
              ))}
            </select>
          </div>
          <button type="submit" disabled={transfer.isPending}>
            {transfer.isPending ? 'Transferring…' : 'Transfer'}
          </button>
        </div>
      )}
      <div aria-live="polite">
        {transfer.isSuccess && (
          <p className="ok">
            {app.name} belongs to {transfer.data.team} now.
          </p>
        )}
        {transfer.isError && (
          <p role="alert" className="error">
            Transferring {app.name} to {transfer.variables} failed: {errorText(transfer.error)}
          </p>
        )}
      </div>
    </form>
  );
}

function Graduate({ app }: { app: App }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [asked, setAsked] = useState(false);
  const [file, setFile] = useState<{ url: string; name: string } | null>(null);
  const graduate = useMutation({
    mutationFn: () => client.graduate(app.name),
    onSuccess: ({ blob, filename }) => {
      setAsked(false);
      const url = URL.createObjectURL(blob);
      setFile({ url, name: filename });
      // The bundle downloads at once, as with `petri graduate`; the link below keeps it.
      const a = document.createElement('a');
      a.href = url;
      a.download = filename;
      a.click();
      void queryClient.invalidateQueries({ queryKey: ['app', app.name] });
    },
  });
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Graduate</h3>
      <p>
        Hands the app off: it stops expiring, every add-on is backed up, and its handoff bundle (code, config
        names, backups, a runbook) downloads.
      </p>
      {!asked ? (
        <button type="button" onClick={() => setAsked(true)}>
          Graduate {app.name}…
        </button>
      ) : (
        <fieldset className="confirm">
          <legend>Graduate {app.name}?</legend>
          <p>It moves to the graduating stage; this may take a while, as every add-on is backed up first.</p>
          <button
            type="button"
            className="danger"
            disabled={graduate.isPending}
            onClick={() => graduate.mutate()}
            ref={(el) => el?.focus()}
          >
            {graduate.isPending ? 'Graduating…' : `Graduate ${app.name}`}
          </button>
          <button type="button" onClick={() => setAsked(false)}>
            Cancel
          </button>
        </fieldset>
      )}
      <div aria-live="polite">
        {file && (
          <p className="ok">
            Graduating: the handoff bundle is downloading.{' '}
            <a href={file.url} download={file.name}>
              Download {file.name} again
            </a>
          </p>
        )}
        {graduate.isError && (
          <p role="alert" className="error">
            Graduating {app.name} failed: {errorText(graduate.error)}
          </p>
        )}
      </div>
    </section>
  );
}

function Destroy({ app }: { app: App }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [typed, setTyped] = useState('');
  const destroy = useMutation({
    mutationFn: () => client.destroyApp(app.name, typed),
    onSuccess: async () => {
      queryClient.removeQueries({ queryKey: ['app', app.name] });
      await queryClient.invalidateQueries({ queryKey: ['apps'] });
      await queryClient.invalidateQueries({ queryKey: ['inventory'] });
      navigate('/');
    },
  });
  const matches = typed === app.name;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    // Only the exact name destroys (the API checks it again).
    if (matches) destroy.mutate();
  };
  return (
    <form className="card danger-zone" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Destroy</h3>
      <p>
        Destroys {app.name} for good: its processes, releases, config and add-ons (each backed up one last
        time first). Type its name to confirm.
      </p>
      <div className="row">
        <div className="field">
          <label htmlFor={`${id}-name`}>Type {app.name} to confirm</label>
          <input
            id={`${id}-name`}
            value={typed}
            autoComplete="off"
            spellCheck={false}
            onChange={(e) => setTyped(e.target.value)}
          />
        </div>
        <button type="submit" className="danger" disabled={!matches || destroy.isPending}>
          {destroy.isPending ? 'Destroying…' : `Destroy ${app.name}`}
        </button>
      </div>
      <div aria-live="polite">
        {destroy.isError && (
          <p role="alert" className="error">
            Destroying {app.name} failed: {errorText(destroy.error)}
          </p>
        )}
      </div>
    </form>
  );
}

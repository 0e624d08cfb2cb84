// An app's config vars: the keys, each value hidden until revealed; set and unset, each
// change a new release. Only people the API lets read the values (members and admins of the
// team, platform admins) see this tab's keys; others are told so.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useId, useState } from 'react';
import { ApiError } from '../../client/errors.js';
import type { App, ConfigChange, Release } from '../../client/types.js';
import { client, errorText, useMayChange } from '../api.js';
import { configEntries, configKeyError } from '../logic.js';

export function ConfigTab({ app }: { app: App }) {
  const config = useQuery({ queryKey: ['config', app.name], queryFn: () => client.getConfig(app.name) });
  const writable = useMayChange(app.team);
  const [revealed, setRevealed] = useState<ReadonlySet<string>>(new Set());
  const queryClient = useQueryClient();
  const [done, setDone] = useState<{ what: string; release: Release | null } | null>(null);
  const change = useMutation({
    mutationFn: ({ change }: { change: ConfigChange; what: string }) => client.updateConfig(app.name, change),
    onSuccess: async (release, { what }) => {
      setDone({ what, release });
      await queryClient.invalidateQueries({ queryKey: ['config', app.name] });
      await queryClient.invalidateQueries({ queryKey: ['releases', app.name] });
      await queryClient.invalidateQueries({ queryKey: ['app', app.name] });
    },
  });
  if (config.isPending)
    return (
      <section aria-labelledby="cfg-h">
        <h2 id="cfg-h">Config</h2>
        <p className="loading">Loading config…</p>
      </section>
    );
  if (config.isError) {
    const forbidden = config.error instanceof ApiError && config.error.status === 403;
    return (
      <section aria-labelledby="cfg-h">
        <h2 id="cfg-h">Config</h2>
        <p role="alert" className={forbidden ? undefined : 'error'}>
          {forbidden ? '' : 'Could not read the config: '}
          {errorText(config.error)}
        </p>
      </section>
    );
  }
  const entries = configEntries(config.data, revealed);
  const toggle = (key: string) => {
    const next = new Set(revealed);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    setRevealed(next);
  };
  return (
    <section aria-labelledby="cfg-h">
      <h2 id="cfg-h">Config</h2>
      <div aria-live="polite">
        {done && (
          <p className="ok">
            {done.what}
            {done.release
              ? `: made release ${done.release.version}; Releases shows when it serves.`
              : ': the first deploy will take it.'}
          </p>
        )}
        {change.isError && (
          <p role="alert" className="error">
            {change.variables?.what} failed: {errorText(change.error)}
          </p>
        )}
      </div>
      {entries.length === 0 ? (
        <p>No config vars yet.</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys
        <section className="scroll" tabIndex={0} aria-label="Config vars">
          <table className="config">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Value</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {entries.map(({ key, shown }) => (
                <tr key={key}>
                  <th scope="row">
                    <code>{key}</code>
                  </th>
                  <td>
                    {shown === null ? (
                      <span>
                        <span aria-hidden="true">••••••</span>
                        <span className="visually-hidden">hidden</span>
                      </span>
                    ) : (
                      <code className="value">{shown}</code>
                    )}
                  </td>
                  <td>
                    <div className="row-actions">
                      <button
                        type="button"
                        onClick={() => toggle(key)}
                        aria-label={`${shown === null ? 'Reveal' : 'Hide'} ${key}`}
                      >
                        {shown === null ? 'Reveal' : 'Hide'}
                      </button>
                      {writable && (
                        <button
                          type="button"
                          className="danger"
                          disabled={change.isPending}
                          aria-label={`Unset ${key}`}
                          onClick={() => change.mutate({ change: { unset: [key] }, what: `Unset ${key}` })}
                        >
                          Unset
                        </button>
                      )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
      {writable && (
        <SetVar
          busy={change.isPending}
          onSet={(key, value) => change.mutate({ change: { set: { [key]: value } }, what: `Set ${key}` })}
        />
      )}
    </section>
  );
}

function SetVar({ busy, onSet }: { busy: boolean; onSet: (key: string, value: string) => void }) {
  const id = useId();
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const problem = configKeyError(key);
    setError(problem);
    if (problem) return;
    onSet(key, value);
    setValue('');
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>Set a config var</h3>
      <div className="row">
        <div className="field">
          <label htmlFor={`${id}-key`}>Key</label>
          <input
            id={`${id}-key`}
            value={key}
            autoComplete="off"
            spellCheck={false}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? `${id}-err` : undefined}
            onChange={(e) => setKey(e.target.value)}
          />
        </div>
        <div className="field grow">
          <label htmlFor={`${id}-value`}>Value</label>
          <input
            id={`${id}-value`}
            type="password"
            value={value}
            autoComplete="off"
            onChange={(e) => setValue(e.target.value)}
          />
        </div>
        <button type="submit" className="primary" disabled={busy}>
          Set
        </button>
      </div>
      {error && (
        <p id={`${id}-err`} className="error">
          {error}
        </p>
      )}
    </form>
  );
}

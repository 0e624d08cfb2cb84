// Each team's quotas (apps, memory of instances, add-ons) against what it uses, as `petri
// quotas TEAM` shows them; admins set a team's own limits or put the server's default back
// (PATCH /v1/teams/NAME/quotas, as `petri quotas TEAM --apps N --memory 8G --addons N`).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState } from 'react';
import type { QuotaFigure, QuotaUpdate, TeamQuotas, TeamSummary } from '../../../client/types.js';
import { client, errorText } from '../../api.js';
import { Link, useTitle } from '../../router.js';
import { formatMiB, opsHref, quotaUpdate } from './ops-logic.js';
import { useTeamFilter } from './team-filter.js';

/** Rows read at once: each is a request; a search narrows a long list. */
const MOST_ROWS = 100;

export function QuotasSection({ writable }: { writable: boolean }) {
  useTitle('Quotas');
  const teams = useQuery({ queryKey: ['teams'], queryFn: () => client.listTeams() });
  const { matching, filters } = useTeamFilter(teams.data);
  const shown = matching.slice(0, MOST_ROWS);
  return (
    <>
      <h1>Quotas</h1>
      <p>
        Memory counts every instance a team’s apps want running (sleeping apps too), each at its app’s memory
        limit.
      </p>
      {writable && teams.data && <SetQuotas teams={teams.data} />}
      {filters}
      {teams.isPending && <p className="loading">Loading the teams…</p>}
      {teams.isError && (
        <p role="alert" className="error">
          Could not list the teams: {errorText(teams.error)}
        </p>
      )}
      {teams.data && (
        <>
          <p className="count" aria-live="polite">
            {matching.length > shown.length
              ? `The first ${shown.length} of ${matching.length} teams: search to narrow`
              : `${shown.length} of ${teams.data.length} teams`}
          </p>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys */}
          <section className="scroll" tabIndex={0} aria-label="Quotas of each team">
            <table>
              <thead>
                <tr>
                  <th scope="col">Team</th>
                  <th scope="col">Apps</th>
                  <th scope="col">Memory</th>
                  <th scope="col">Add-ons</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((t) => (
                  <QuotaRow key={t.name} team={t} />
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
    </>
  );
}

function QuotaRow({ team }: { team: TeamSummary }) {
  // The team's page reads the same answer: a change shows on both.
  const detail = useQuery({ queryKey: ['team', team.name], queryFn: () => client.getTeam(team.name) });
  const q = detail.data?.quotas;
  return (
    <tr>
      <th scope="row">
        <Link href={opsHref('teams', team.name)}>{team.name}</Link>
      </th>
      {q ? (
        <>
          <Figure figure={q.apps} show={String} />
          <Figure figure={q.memoryMiB} show={formatMiB} />
          <Figure figure={q.addons} show={String} />
        </>
      ) : (
        <td colSpan={3} className={detail.isError ? 'error' : 'sub'}>
          {detail.isError ? `Could not read: ${errorText(detail.error)}` : 'Loading…'}
        </td>
      )}
    </tr>
  );
}

/** "3 of 20": over the limit in the danger colour; the limit says whose it is. */
function Figure({ figure, show }: { figure: QuotaFigure; show: (n: number) => string }) {
  return (
    <td className={figure.used > figure.limit ? 'error' : undefined}>
      {show(figure.used)} of {show(figure.limit)}
      <span className="sub">{figure.custom ? 'the team’s own limit' : 'the default'}</span>
    </td>
  );
}

/** One team's quotas as a table of its own (the team's page). */
export function QuotaTable({ quotas }: { quotas: TeamQuotas }) {
  const rows: [string, QuotaFigure, (n: number) => string][] = [
    ['Apps', quotas.apps, String],
    ['Memory', quotas.memoryMiB, formatMiB],
    ['Add-ons', quotas.addons, String],
  ];
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Quota</th>
          <th scope="col">Used of limit</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([name, figure, show]) => (
          <tr key={name}>
            <th scope="row">{name}</th>
            <Figure figure={figure} show={show} />
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function SetQuotas({ teams }: { teams: TeamSummary[] }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [team, setTeam] = useState('');
  const [draft, setDraft] = useState({ apps: '', memory: '', addons: '' });
  const [invalid, setInvalid] = useState<string | null>(null);
  const set = useMutation({
    mutationFn: (args: { team: string; update: QuotaUpdate }) => client.setQuotas(args.team, args.update),
    onSuccess: async (q) => {
      setDraft({ apps: '', memory: '', addons: '' });
      await queryClient.invalidateQueries({ queryKey: ['team', q.team] });
    },
  });
  const chosen = team || teams.find((t) => !t.personal)?.name || teams[0]?.name || '';
  const field = (key: keyof typeof draft, label: string, hint: string) => (
    <div className="field">
      <label htmlFor={`${id}-${key}`}>{label}</label>
      <input
        id={`${id}-${key}`}
        value={draft[key]}
        aria-describedby={`${id}-${key}-hint`}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
      />
      <small id={`${id}-${key}-hint`}>{hint}</small>
    </div>
  );
  return (
    <form
      className="card"
      aria-labelledby={`${id}-h`}
      onSubmit={(e) => {
        e.preventDefault();
        const made = quotaUpdate(draft);
        setInvalid('error' in made ? made.error : null);
        // What was said of the last change no longer stands beside a new try.
        set.reset();
        if ('error' in made) return;
        set.mutate({ team: chosen, update: made.update });
      }}
    >
      <h2 id={`${id}-h`}>Set a team’s quotas</h2>
      <div className="row">
        <div className="field">
          <label htmlFor={`${id}-team`}>Team</label>
          <select id={`${id}-team`} value={chosen} onChange={(e) => setTeam(e.target.value)}>
            {teams.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
                {t.personal ? ' (personal)' : ''}
              </option>
            ))}
          </select>
        </div>
        {field('apps', 'Apps', 'e.g. 30, or default')}
        {field('memory', 'Memory', 'e.g. 12G or 512M')}
        {field('addons', 'Add-ons', 'e.g. 10, or default')}
        <button type="submit" className="primary" disabled={set.isPending}>
          {set.isPending ? 'Setting…' : 'Set quotas'}
        </button>
      </div>
      <div aria-live="polite">
        {invalid && (
          <p role="alert" className="error">
            {invalid}
          </p>
        )}
        {set.isSuccess && (
          <p className="ok">
            Set {set.data.team}’s quotas: {set.data.apps.limit} apps, {formatMiB(set.data.memoryMiB.limit)},{' '}
            {set.data.addons.limit} add-ons.
          </p>
        )}
        {set.isError && (
          <p role="alert" className="error">
            Setting {set.variables.team}’s quotas failed: {errorText(set.error)}
          </p>
        )}
      </div>
    </form>
  );
}

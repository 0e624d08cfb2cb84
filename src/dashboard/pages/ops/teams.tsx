// Teams (GET /v1/teams, as `petri teams`) and one team's members, apps and quotas (GET
// /v1/teams/NAME, as `petri teams info`). Admins add a person with a role or change it
// (`petri teams add`) and take one out after a confirmation (`petri teams remove`).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState } from 'react';
import type { TeamDetail, TeamMember, TeamRole } from '../../../client/types.js';
import { client, errorText, isNotFound } from '../../api.js';
import { exactTime } from '../../logic.js';
import { appHref, Link, useTitle } from '../../router.js';
import { opsHref } from './ops-logic.js';
import { QuotaTable } from './quotas.js';
import { useTeamFilter } from './team-filter.js';

const ROLES: readonly TeamRole[] = ['member', 'viewer', 'admin'];

export function TeamsSection({ team, writable }: { team?: string; writable: boolean }) {
  return team === undefined ? <TeamList /> : <Team key={team} name={team} writable={writable} />;
}

function TeamList() {
  useTitle('Teams');
  const teams = useQuery({ queryKey: ['teams'], queryFn: () => client.listTeams() });
  const { matching: shown, filters } = useTeamFilter(teams.data);
  return (
    <>
      <h1>Teams</h1>
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
            {shown.length} of {teams.data.length} teams
          </p>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys */}
          <section className="scroll" tabIndex={0} aria-label="Teams">
            <table>
              <thead>
                <tr>
                  <th scope="col">Team</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Members</th>
                  <th scope="col">Apps</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((t) => (
                  <tr key={t.name}>
                    <th scope="row">
                      <Link href={opsHref('teams', t.name)}>{t.name}</Link>
                    </th>
                    <td>{t.personal ? `personal (${t.personalOf ?? '?'})` : 'shared'}</td>
                    <td>{t.members}</td>
                    <td>{t.apps}</td>
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

function Team({ name, writable }: { name: string; writable: boolean }) {
  useTitle(`Team ${name}`);
  const team = useQuery({ queryKey: ['team', name], queryFn: () => client.getTeam(name) });
  if (team.isPending) return <p className="loading">Loading {name}…</p>;
  if (team.isError)
    return isNotFound(team.error) ? (
      <>
        <h1>Not found</h1>
        <p>
          There is no team named <strong>{name}</strong>. <Link href={opsHref('teams')}>See the teams</Link>.
        </p>
      </>
    ) : (
      <p role="alert" className="error">
        Could not load the team {name}: {errorText(team.error)}
      </p>
    );
  const t = team.data;
  return (
    <>
      <p>
        <Link href={opsHref('teams')}>All teams</Link>
      </p>
      <h1>Team {t.name}</h1>
      <dl className="facts">
        <dt>Kind</dt>
        <dd>{t.personal ? `personal team of ${t.personalOf ?? '?'}` : 'shared'}</dd>
        <dt>Created</dt>
        <dd>{exactTime(t.createdAt)}</dd>
        <dt>Apps</dt>
        <dd>
          {t.apps.length === 0
            ? 'none'
            : t.apps.map((a, i) => (
                <span key={a}>
                  {i > 0 && ', '}
                  <Link href={appHref(a)}>{a}</Link>
                </span>
              ))}
        </dd>
      </dl>
      <Members team={t} writable={writable} />
      <section className="card" aria-labelledby="team-quotas">
        <h2 id="team-quotas">Quotas</h2>
        <QuotaTable quotas={t.quotas} />
        <p>
          <Link href={opsHref('quotas')}>{writable ? 'Change the quotas' : 'Every team’s quotas'}</Link>
        </p>
      </section>
    </>
  );
}

type MemberAction = { kind: 'add'; email: string; role: TeamRole } | { kind: 'remove'; email: string };

function Members({ team, writable }: { team: TeamDetail; writable: boolean }) {
  const id = useId();
  const queryClient = useQueryClient();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<TeamRole>('member');
  const [asked, setAsked] = useState<string | null>(null);
  const change = useMutation({
    mutationFn: async (action: MemberAction): Promise<string> => {
      if (action.kind === 'remove') {
        await client.removeTeamMember(team.name, action.email);
        return `Removed ${action.email} from ${team.name}.`;
      }
      const done = await client.setTeamMember(team.name, action.email, action.role);
      const who = done.member.email ?? done.member.name;
      if (done.previousRole === null) return `Added ${who} to ${team.name} as ${done.member.role}.`;
      if (done.previousRole === done.member.role)
        return `${who} already is ${done.member.role} of ${team.name}.`;
      return `${who} is now ${done.member.role} of ${team.name} (was ${done.previousRole}).`;
    },
    onSuccess: async (_message, action) => {
      setAsked(null);
      if (action.kind === 'add') setEmail('');
      await queryClient.invalidateQueries({ queryKey: ['team', team.name] });
      await queryClient.invalidateQueries({ queryKey: ['teams'] });
    },
  });
  const failed = change.variables && (change.variables.kind === 'add' ? 'Adding' : 'Removing');
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Members</h2>
      <div aria-live="polite">
        {change.isSuccess && <p className="ok">{change.data}</p>}
        {change.isError && (
          <p role="alert" className="error">
            {failed} {change.variables.email} failed: {errorText(change.error)}
          </p>
        )}
      </div>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys */}
      <section className="scroll" tabIndex={0} aria-label={`Members of ${team.name}`}>
        <table>
          <thead>
            <tr>
              <th scope="col">Member</th>
              <th scope="col">Role</th>
              <th scope="col">Kind</th>
              {writable && <th scope="col">Change</th>}
            </tr>
          </thead>
          <tbody>
            {team.members.map((m) => (
              <tr key={m.name}>
                <th scope="row">
                  {m.email ?? m.name}
                  {m.email && m.email !== m.name && <span className="sub">{m.name}</span>}
                  {m.disabled && <span className="sub">disabled</span>}
                </th>
                <td>{m.role}</td>
                <td>{m.kind}</td>
                {writable && (
                  <td>
                    <RemoveMember
                      member={m}
                      team={team.name}
                      asked={asked === memberKey(m)}
                      busy={change.isPending}
                      onAsk={() => setAsked(memberKey(m))}
                      onCancel={() => setAsked(null)}
                      onConfirm={() => change.mutate({ kind: 'remove', email: memberKey(m) })}
                    />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {writable && (
        <form
          className="row"
          aria-label={`Add a member to ${team.name}`}
          onSubmit={(e) => {
            e.preventDefault();
            if (email.trim() !== '') change.mutate({ kind: 'add', email: email.trim(), role });
          }}
        >
          <div className="field grow">
            <label htmlFor={`${id}-email`}>E-mail (a bot: its name)</label>
            <input
              id={`${id}-email`}
              value={email}
              required
              autoComplete="off"
              onChange={(e) => setEmail(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor={`${id}-role`}>Role</label>
            <select id={`${id}-role`} value={role} onChange={(e) => setRole(e.target.value as TeamRole)}>
              {ROLES.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          </div>
          <button type="submit" disabled={change.isPending}>
            Add or change role
          </button>
        </form>
      )}
    </section>
  );
}

/** How the API names a member: their e-mail, or a bot's name. */
function memberKey(m: TeamMember): string {
  return m.email ?? m.name;
}

function RemoveMember(props: {
  member: TeamMember;
  team: string;
  asked: boolean;
  busy: boolean;
  onAsk: () => void;
  onCancel: () => void;
  onConfirm: () => void;
}) {
  const who = memberKey(props.member);
  if (!props.asked)
    return (
      // Named in full by aria-label: a visually hidden span would escape the table's scrolling box.
      <button type="button" onClick={props.onAsk} aria-label={`Remove ${who}`}>
        Remove
      </button>
    );
  return (
    <fieldset className="confirm">
      <legend>
        Remove {who} from {props.team}?
      </legend>
      <p>They lose access to the team’s apps at once.</p>
      <button
        type="button"
        className="danger"
        disabled={props.busy}
        onClick={props.onConfirm}
        ref={(el) => el?.focus()}
      >
        {props.busy ? 'Removing…' : `Remove ${who}`}
      </button>
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
    </fieldset>
  );
}

// People and bots (GET /v1/users, as `petri users`): platform role, kind, how they sign in,
// when they were last seen, their apps, disabled or not. Admins change a person's platform
// role, disable (after a confirmation: every token and session of theirs ends at once) and
// enable them again.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useId, useState } from 'react';
import type { UserInfo } from '../../../client/types.js';
import { client, errorText } from '../../api.js';
import { exactTime, relativeTime } from '../../logic.js';
import { useTitle } from '../../router.js';

type Change = { who: string; action: 'disable' | 'enable' };

export function UsersSection({ writable }: { writable: boolean }) {
  useTitle('Users');
  const users = useQuery({ queryKey: ['users'], queryFn: () => client.listUsers() });
  const [asked, setAsked] = useState<string | null>(null);
  const queryClient = useQueryClient();
  const change = useMutation({
    mutationFn: async ({ who, action }: Change) => {
      if (action === 'disable') {
        const done = await client.disableUser(who);
        return `Disabled ${who}; revoked ${done.tokensRevoked} token${done.tokensRevoked === 1 ? '' : 's'} and sessions.`;
      }
      await client.enableUser(who);
      return `Enabled ${who}; they sign in again.`;
    },
    onSuccess: async () => {
      setAsked(null);
      await queryClient.invalidateQueries({ queryKey: ['users'] });
    },
  });
  const now = Date.now();
  return (
    <>
      <h1>Users</h1>
      <div aria-live="polite">
        {change.isSuccess && <p className="ok">{change.data}</p>}
        {change.isError && (
          <p role="alert" className="error">
            {change.variables.action === 'disable' ? 'Disabling' : 'Enabling'} {change.variables.who} failed:{' '}
            {errorText(change.error)}
          </p>
        )}
      </div>
      {writable && users.data && <ChangeRole users={users.data} />}
      {users.isPending && <p className="loading">Loading the users…</p>}
      {users.isError && (
        <p role="alert" className="error">
          Could not list the users: {errorText(users.error)}
        </p>
      )}
      {users.data && (
        <>
          <p className="count">
            {users.data.length} user{users.data.length === 1 ? '' : 's'},{' '}
            {users.data.filter((u) => u.disabled).length} disabled
          </p>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take the focus to scroll with keys */}
          <section className="scroll" tabIndex={0} aria-label="Users">
            <table>
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Role</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Signs in with</th>
                  <th scope="col">Last seen</th>
                  <th scope="col">Apps</th>
                  <th scope="col">State</th>
                  {writable && <th scope="col">Change</th>}
                </tr>
              </thead>
              <tbody>
                {users.data.map((u) => (
                  <tr key={u.name}>
                    <th scope="row">
                      {u.email ?? u.name}
                      {u.email && u.email !== u.name && <span className="sub">{u.name}</span>}
                    </th>
                    <td>{u.role}</td>
                    <td>{u.kind}</td>
                    <td>{u.provider}</td>
                    <td title={exactTime(u.lastSeenAt)}>
                      {u.lastSeenAt === null ? 'never' : relativeTime(u.lastSeenAt, now)}
                    </td>
                    <td>{u.apps}</td>
                    <td>
                      {u.disabled ? (
                        <span className="status status-down" title={exactTime(u.disabledAt)}>
                          disabled
                        </span>
                      ) : (
                        <span className="status status-up">active</span>
                      )}
                    </td>
                    {writable && (
                      <td>
                        <UserChange
                          user={u}
                          asked={asked === userKey(u)}
                          busy={change.isPending}
                          onAsk={() => setAsked(userKey(u))}
                          onCancel={() => setAsked(null)}
                          onChange={(action) => change.mutate({ who: userKey(u), action })}
                        />
                      </td>
                    )}
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

/** How the API names a user: their e-mail, or a bot's name. */
function userKey(u: UserInfo): string {
  return u.email ?? u.name;
}

function UserChange(props: {
  user: UserInfo;
  asked: boolean;
  busy: boolean;
  onAsk: () => void;
  onCancel: () => void;
  onChange: (action: 'disable' | 'enable') => void;
}) {
  const who = userKey(props.user);
  if (props.user.disabled)
    return (
      // Named in full by aria-label: a visually hidden span would escape the table's scrolling box.
      <button
        type="button"
        disabled={props.busy}
        onClick={() => props.onChange('enable')}
        aria-label={`Enable ${who}`}
      >
        Enable
      </button>
    );
  if (!props.asked)
    return (
      <button type="button" onClick={props.onAsk} aria-label={`Disable ${who}`}>
        Disable
      </button>
    );
  return (
    <fieldset className="confirm">
      <legend>Disable {who}?</legend>
      <p>Every token and session of theirs stops working at once.</p>
      <button
        type="button"
        className="danger"
        disabled={props.busy}
        onClick={() => props.onChange('disable')}
        ref={(el) => el?.focus()}
      >
        {props.busy ? 'Disabling…' : `Disable ${who}`}
      </button>
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
    </fieldset>
  );
}

const PLATFORM_ROLES = ['member', 'auditor', 'admin'] as const;
type PlatformRole = (typeof PLATFORM_ROLES)[number];

/** `petri users role EMAIL ROLE`: a person's platform role (the API keeps the last admin). */
function ChangeRole({ users }: { users: UserInfo[] }) {
  const id = useId();
  const queryClient = useQueryClient();
  const people = users.filter((u) => u.kind === 'person' && !u.disabled);
  const [who, setWho] = useState('');
  const [role, setRole] = useState<PlatformRole>('auditor');
  const chosen = who || (people[0] ? userKey(people[0]) : '');
  const change = useMutation({
    mutationFn: (args: { who: string; role: PlatformRole }) => client.setUserRole(args.who, args.role),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: ['users'] });
    },
  });
  return (
    <form
      className="card"
      aria-labelledby={`${id}-h`}
      onSubmit={(e) => {
        e.preventDefault();
        if (chosen) change.mutate({ who: chosen, role });
      }}
    >
      <h2 id={`${id}-h`}>Change a platform role</h2>
      <div className="row">
        <div className="field">
          <label htmlFor={`${id}-who`}>Person</label>
          <select id={`${id}-who`} value={chosen} onChange={(e) => setWho(e.target.value)}>
            {people.map((u) => (
              <option key={u.name} value={userKey(u)}>
                {userKey(u)} ({u.role})
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-role`}>New role</label>
          <select id={`${id}-role`} value={role} onChange={(e) => setRole(e.target.value as PlatformRole)}>
            {PLATFORM_ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </div>
        <button type="submit" disabled={change.isPending || !chosen}>
          Change role
        </button>
      </div>
      <div aria-live="polite">
        {change.isSuccess && (
          <p className="ok">
            {userKey(change.data)} is now {change.data.role}.
          </p>
        )}
        {change.isError && (
          <p role="alert" className="error">
            Making {change.variables.who} {change.variables.role} failed: {errorText(change.error)}
          </p>
        )}
      </div>
    </form>
  );
}

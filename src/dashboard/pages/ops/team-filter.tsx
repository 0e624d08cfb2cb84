// The teams' search and "personal teams too" box, shared by the Teams and Quotas pages.
import { type ReactNode, useId, useState } from 'react';
import type { TeamSummary } from '../../../client/types.js';

/** The teams that match what is typed (name, or the person a personal team is of), personal
 * ones only when asked for, and the form that asks. */
export function useTeamFilter(teams: readonly TeamSummary[] | undefined): {
  matching: TeamSummary[];
  filters: ReactNode;
} {
  const id = useId();
  const [search, setSearch] = useState('');
  const [personal, setPersonal] = useState(false);
  const words = search.trim().toLowerCase();
  const matching = (teams ?? []).filter(
    (t) =>
      (personal || !t.personal) &&
      (words === '' || `${t.name} ${t.personalOf ?? ''}`.toLowerCase().includes(words)),
  );
  const filters = (
    <search aria-label="Filter the teams" className="filters">
      <div className="field">
        <label htmlFor={`${id}-q`}>Search</label>
        <input id={`${id}-q`} type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
      </div>
      <div className="field check">
        <input
          id={`${id}-personal`}
          type="checkbox"
          checked={personal}
          onChange={(e) => setPersonal(e.target.checked)}
        />
        <label htmlFor={`${id}-personal`}>Personal teams too</label>
      </div>
    </search>
  );
  return { matching, filters };
}

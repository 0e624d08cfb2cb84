// The operators' pages under /ops (admins and auditors): the audit log, users, teams and
// their members, quotas, add-on servers, and the platform's status and incidents. Loaded
// when opened. A member who opens one is told it is not for them (the API would refuse most
// of it anyway); auditors read everything here and see no button that changes anything.
import { useQuery } from '@tanstack/react-query';
import { client } from '../../api.js';
import { Link, useTitle } from '../../router.js';
import { AddonServersSection } from './addon-servers.js';
import { AuditSection } from './audit.js';
import {
  OPS_SECTIONS,
  type OpsSection,
  opsAccess,
  opsHref,
  parseOpsPath,
  SECTION_NAMES,
} from './ops-logic.js';
import { QuotasSection } from './quotas.js';
import { StatusSection } from './status.js';
import { TeamsSection } from './teams.js';
import { UsersSection } from './users.js';

export default function OpsPage({ pathname }: { pathname: string }) {
  // The shell has read the session already: this is its answer from the cache.
  const session = useQuery({ queryKey: ['session'], queryFn: () => client.session(), staleTime: 60_000 });
  const route = parseOpsPath(pathname);
  const access = opsAccess(session.data?.user.role);
  if (access === 'none') return <NotAllowed />;
  if (route.section === 'missing') return <MissingSection />;
  const writable = access === 'change';
  return (
    <>
      <nav aria-label="Operators" className="tabs">
        {OPS_SECTIONS.map((s) => (
          <Link key={s} href={opsHref(s)} aria-current={s === route.section ? 'page' : undefined}>
            {SECTION_NAMES[s]}
          </Link>
        ))}
      </nav>
      <Section section={route.section} team={route.team} writable={writable} />
    </>
  );
}

function Section({ section, team, writable }: { section: OpsSection; team?: string; writable: boolean }) {
  switch (section) {
    case 'audit':
      return <AuditSection />;
    case 'users':
      return <UsersSection writable={writable} />;
    case 'teams':
      return <TeamsSection team={team} writable={writable} />;
    case 'quotas':
      return <QuotasSection writable={writable} />;
    case 'addons':
      return <AddonServersSection />;
    case 'status':
      return <StatusSection />;
  }
}

function NotAllowed() {
  useTitle('Not allowed');
  return (
    <>
      <h1>Not allowed</h1>
      <p>
        The operators’ pages are for platform admins and auditors; your role is member. Ask an admin if you
        need to see them. <Link href="/">See your apps</Link>.
      </p>
    </>
  );
}

function MissingSection() {
  useTitle('Not found');
  return (
    <>
      <h1>Not found</h1>
      <p>
        There is no operators’ page here. <Link href={opsHref('audit')}>See the audit log</Link>.
      </p>
    </>
  );
}

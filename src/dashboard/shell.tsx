// The frame of every page: who is signed in, the navigation, sign out, and the page itself.
// Nobody signed in (GET /v1/session answers 401): the sign-in page, coming back here after.
import { useQuery } from '@tanstack/react-query';
import { lazy, Suspense } from 'react';
import type { WebSessionInfo } from '../client/browser.js';
import { client, errorText } from './api.js';
import { AppPage } from './pages/app.js';
import { AppsPage } from './pages/apps.js';
import { Link, parseRoute, usePathname, useTitle } from './router.js';

// Operators' pages are loaded when opened: most people never see them.
const InventoryPage = lazy(() => import('./pages/inventory.js'));
const OpsPage = lazy(() => import('./pages/ops/index.js'));

export function Shell() {
  const session = useQuery({ queryKey: ['session'], queryFn: () => client.session(), staleTime: 60_000 });
  const pathname = usePathname();
  if (session.isPending) return <p className="loading">Loading…</p>;
  if (session.isError && !session.data)
    return (
      <main className="page">
        <p role="alert" className="error">
          {errorText(session.error)}
        </p>
      </main>
    );
  const route = parseRoute(pathname);
  const operator = session.data.user.role === 'admin' || session.data.user.role === 'auditor';
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <nav aria-label="Main" className="mainnav">
          <Link href="/" className="brand">
            Petri
          </Link>
          <Link href="/" aria-current={route.page === 'apps' || route.page === 'app' ? 'page' : undefined}>
            Apps
          </Link>
          {operator && (
            <Link href="/inventory" aria-current={route.page === 'inventory' ? 'page' : undefined}>
              Inventory
            </Link>
          )}
          {operator && (
            <Link href="/ops" aria-current={route.page === 'ops' ? 'page' : undefined}>
              Operators
            </Link>
          )}
        </nav>
        <UserMenu session={session.data} />
      </header>
      <main id="main" className="page" tabIndex={-1}>
        {route.page === 'apps' && <AppsPage />}
        {route.page === 'app' && <AppPage key={route.name} name={route.name} tab={route.tab} />}
        {route.page === 'inventory' && (
          <Suspense fallback={<p className="loading">Loading…</p>}>
            <InventoryPage />
          </Suspense>
        )}
        {route.page === 'ops' && (
          <Suspense fallback={<p className="loading">Loading…</p>}>
            <OpsPage pathname={route.path} />
          </Suspense>
        )}
        {route.page === 'missing' && <Missing />}
      </main>
    </>
  );
}

function UserMenu({ session }: { session: WebSessionInfo }) {
  const { user } = session;
  // A plain form: signing out works without script, and the server checks where it came from.
  return (
    <form className="user" method="post" action="/logout">
      <span title={user.email ?? undefined}>
        {user.name}
        {user.role !== 'member' && <span className="badge">{user.role}</span>}
      </span>
      <button type="submit">Sign out</button>
    </form>
  );
}

function Missing() {
  useTitle('Not found');
  return (
    <>
      <h1>Not found</h1>
      <p>
        There is no page here. <Link href="/">See your apps</Link>.
      </p>
    </>
  );
}

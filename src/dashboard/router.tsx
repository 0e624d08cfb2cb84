// A few pages need no router library: the path is the state, links push it, Back pops it.
// The server answers index.html for each of these paths (src/api/routes/dashboard.ts).
import { type AnchorHTMLAttributes, type MouseEvent, useEffect, useSyncExternalStore } from 'react';

export type Route =
  | { page: 'apps' }
  | { page: 'app'; name: string; tab: AppTab }
  | { page: 'inventory' }
  | { page: 'ops'; path: string }
  | { page: 'missing' };

export const APP_TABS = [
  'overview',
  'deploys',
  'processes',
  'releases',
  'config',
  'addons',
  'logs',
  'metrics',
  'network',
  'audience',
  'mail',
  'settings',
] as const;
export type AppTab = (typeof APP_TABS)[number];

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '/apps' || pathname === '/apps/') return { page: 'apps' };
  if (pathname === '/inventory') return { page: 'inventory' };
  // The operators' pages read the rest of the path themselves (pages/ops/ops-logic.ts).
  if (pathname === '/ops' || pathname.startsWith('/ops/')) return { page: 'ops', path: pathname };
  const match = /^\/apps\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(pathname);
  if (match) {
    const tab = (match[2] ?? 'overview') as AppTab;
    if (!APP_TABS.includes(tab)) return { page: 'missing' };
    return { page: 'app', name: decodeURIComponent(match[1]!), tab };
  }
  return { page: 'missing' };
}

export function appHref(name: string, tab: AppTab = 'overview'): string {
  const base = `/apps/${encodeURIComponent(name)}`;
  return tab === 'overview' ? base : `${base}/${tab}`;
}

const listeners = new Set<() => void>();
function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('popstate', listener);
  };
}

export function navigate(href: string): void {
  window.history.pushState(null, '', href);
  for (const listener of listeners) listener();
  window.scrollTo(0, 0);
}

export function usePathname(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

/** A link that changes the page without reloading it (a modified click opens a tab as usual). */
export function Link({
  href,
  onClick: also,
  ...rest
}: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    also?.(event);
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} {...rest} onClick={onClick} />;
}

/** Sets the document's title (what a screen reader announces on a page change). */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Petri`;
  }, [title]);
}

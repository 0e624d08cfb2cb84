// The dashboard's one client of /v1 (client/browser.ts: same origin, the session cookie, the
// CSRF token) and its TanStack Query cache. An answer of 401 anywhere means the session has
// ended: the page goes to the sign-in page, which brings the person back here afterwards.
import { QueryCache, QueryClient, useQuery } from '@tanstack/react-query';
import { BrowserClient } from '../client/browser.js';
import { ApiError } from '../client/errors.js';
import { loginUrl, mayChange } from './logic.js';

export const client = new BrowserClient();

export function signIn(): void {
  window.location.assign(loginUrl(window.location));
}

function onError(err: unknown): void {
  if (err instanceof ApiError && err.status === 401) signIn();
}

export const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  defaultOptions: {
    queries: {
      // A 401, 403 or 404 will not change by asking again; a dropped connection may.
      retry: (count, err) => !(err instanceof ApiError && err.status < 500) && count < 2,
      staleTime: 5_000,
      refetchOnWindowFocus: true,
    },
    mutations: { onError },
  },
});

/** The message to show beside what was tried: the API's own when it sent one. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof TypeError) return 'Could not reach Petri: check your connection and try again';
  return err instanceof Error ? err.message : String(err);
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.status === 404;
}

/** The signed-in person with their teams and role in each (GET /v1/whoami). */
export function useWhoami() {
  return useQuery({ queryKey: ['whoami'], queryFn: () => client.whoami(), staleTime: 60_000 });
}

/** Whether the person may change apps of `team`; false until known. */
export function useMayChange(team: string): boolean {
  return mayChange(useWhoami().data, team);
}

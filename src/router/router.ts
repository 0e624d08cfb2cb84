// The seam between the reconciler and the edge router. Routes are plain data computed
// from the store; the HAProxy implementation makes them so without dropping connections.

export interface RouteServer {
  /** Stable per instance, [a-z0-9.-]. */
  id: string;
  address: string;
  port: number;
}

export interface RouteSpec {
  /** Lower-case host name without port, e.g. "myapp.petri.localhost". */
  host: string;
  app: string;
  /** Healthy instances to balance across. Empty: the app is down and gets the 503 page. */
  servers: RouteServer[];
  /** What the router answers itself instead of passing requests to the app's servers (an
   * expired or archived experiment, a graduated one that moved). */
  answer?: RouteAnswer;
  /** The audience gate: only visitors with the app's gate cookie, signed with this key, reach
   * its servers (staff, invite, or awaiting review). Undefined: public, no check at all. */
  gate?: RouteGate;
}

/** How the router checks an app's visitors (the gate cookie: an HS256 JWT, src/gate/cookie.ts). */
export interface RouteGate {
  /** The app's current cookie key, base64url text used as the HMAC secret as is: a new key
   * (a new key version) refuses every cookie signed with the old one on the next request. */
  key: string;
}

/** An answer the router gives on the app's behalf, with what its page says. */
export type RouteAnswer =
  /** 410, naming the experiment, its owner and how to renew. */
  | { kind: 'expired'; owner: string; since: string }
  /** 410: archived, the name reserved to its team. */
  | { kind: 'archived'; owner: string; since: string }
  /** 308 to the graduated app's new home (an absolute http(s) URL, see redirectLocation). */
  | { kind: 'redirect'; location: string };

export interface Router {
  /** Starts the router process, or adopts the one a previous control plane left running. */
  start(): Promise<void>;
  /** Makes the router serve exactly these routes. Idempotent; never drops a connection. */
  apply(routes: RouteSpec[]): Promise<void>;
  /** True once the router sends nothing more to this server and holds no request on it: it
   * is no longer routed (or is in maintenance) and has no current session. */
  drained(serverId: string): Promise<boolean>;
  /** Seconds since each app's last request (-1: none since the router's worker started),
   * keyed by app name: how a router names its backends is its own business. */
  lastRequests(): Promise<Map<string, number>>;
  /** Stops the router process (shutdown of the whole platform, tests). */
  stop(): Promise<void>;
  /** Serves this certificate to clients that ask for `name` by SNI (a host name), or to any
   * other (`_default`). `pem`: the chain, leaf first, then its private key. Idempotent; no
   * reload, no dropped connection; kept across reloads and restarts. */
  setCertificate(name: string, pem: string): Promise<void>;
  /** Stops serving the host's own certificate (the default one then answers). */
  removeCertificate(name: string): Promise<void>;
  /** Answers GET `path` (/.well-known/acme-challenge/TOKEN or /.well-known/petri-domain/ID)
   * on every host, over HTTP and HTTPS, with 200 text/plain `body`, before any redirect or
   * gate. Idempotent; kept across reloads and restarts. */
  setWellKnown(path: string, body: string): Promise<void>;
  deleteWellKnown(path: string): Promise<void>;
}

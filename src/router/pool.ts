// Host routing through a map and a pool of spare backends (issue 16): a serving app gets one
// of N generic backends (pool_0001 ...), and the host map (`HOST BACKEND`) sends its hosts
// there. Adding or removing an app is then a map entry and its servers, changed through the
// runtime API: no reload. The config changes only when the pool must grow (fewer than
// POOL_SPARE free backends would remain), by POOL_STEP at once, so a burst of new apps
// costs one reload per POOL_STEP apps. Apps the router answers for (expired, archived,
// moved) keep a backend of their own in the config, as their answers are config lines.
// Pure, so assignment and plans are unit-tested apart from HAProxy.
import type { AppRoute } from './routes.js';

export const POOL_PREFIX = 'pool_';
/** How many backends the pool grows by at once. */
export const POOL_STEP = 50;
/** Fewer free backends than this after an apply: the pool grows (one reload). */
export const POOL_SPARE = 10;

export function poolBackend(index: number): string {
  return `${POOL_PREFIX}${String(index).padStart(4, '0')}`;
}

export interface Pool {
  /** Pool backends in the config: pool_0001 .. pool_<size>. */
  size: number;
  /** App name -> its pool backend, for every app without an answer of its own. */
  slots: Map<string, string>;
}

/**
 * Keeps every app that stays where it is, gives each new app the lowest free backend, and
 * grows the pool (never shrinks it: a smaller config would be a reload for nothing) when
 * fewer than POOL_SPARE would remain free.
 */
export function assignPool(
  apps: readonly AppRoute[],
  current: ReadonlyMap<string, string>,
  size: number,
): Pool {
  const pooled = apps.filter((a) => a.answer === undefined).map((a) => a.app);
  let poolSize = size;
  if (poolSize - pooled.length < POOL_SPARE) {
    poolSize = Math.ceil((pooled.length + POOL_SPARE) / POOL_STEP) * POOL_STEP;
  }
  const slots = new Map<string, string>();
  const taken = new Set<string>();
  const valid = (backend: string) => {
    const index = Number(backend.slice(POOL_PREFIX.length));
    return backend.startsWith(POOL_PREFIX) && Number.isInteger(index) && index >= 1 && index <= poolSize;
  };
  for (const app of pooled) {
    const backend = current.get(app);
    if (backend !== undefined && valid(backend) && !taken.has(backend)) {
      slots.set(app, backend);
      taken.add(backend);
    }
  }
  let next = 1;
  for (const app of pooled) {
    if (slots.has(app)) continue;
    while (taken.has(poolBackend(next))) next++;
    slots.set(app, poolBackend(next));
    taken.add(poolBackend(next));
  }
  return { size: poolSize, slots };
}

/** The apps with their backend: a pool backend, or their own (app_NAME) for an answer. */
export function placeApps(apps: readonly AppRoute[], pool: Pool): AppRoute[] {
  return apps.map((app) => {
    const slot = pool.slots.get(app.app);
    return slot === undefined ? app : { ...app, backend: slot };
  });
}

/** Every pool backend no app holds, as an app with no servers: its leftover servers go. */
export function idleBackends(pool: Pool): AppRoute[] {
  const held = new Set(pool.slots.values());
  const idle: AppRoute[] = [];
  for (let i = 1; i <= pool.size; i++) {
    const backend = poolBackend(i);
    if (!held.has(backend)) idle.push({ app: '', backend, hosts: [], servers: [] });
  }
  return idle;
}

/** host -> backend for every host of every app. */
export function hostMapEntries(placed: readonly AppRoute[]): Map<string, string> {
  const entries = new Map<string, string>();
  for (const app of placed) for (const host of app.hosts) entries.set(host, app.backend);
  return entries;
}

/** App -> pool backend, read back from the host map (what runs, or what is on disk). */
export function slotsFromHostMap(
  apps: readonly AppRoute[],
  hostMap: ReadonlyMap<string, string>,
): Map<string, string> {
  const slots = new Map<string, string>();
  for (const app of apps) {
    for (const host of app.hosts) {
      const backend = hostMap.get(host);
      if (backend?.startsWith(POOL_PREFIX)) {
        slots.set(app.app, backend);
        break;
      }
    }
  }
  return slots;
}

/** The map file: `HOST VALUE` lines, sorted, after a comment line. */
export function renderMap(what: string, entries: ReadonlyMap<string, string>): string {
  const lines = [`# Rendered by Petri (src/router/): ${what}.`];
  for (const [key, value] of [...entries].sort(([a], [b]) => a.localeCompare(b)))
    lines.push(`${key} ${value}`);
  return `${lines.join('\n')}\n`;
}

/** A map file's entries (comments and blank lines skipped). */
export function parseMapFile(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const [key, value] = line.trim().split(/\s+/);
    if (key && value) entries.set(key, value);
  }
  return entries;
}

/** `show backend`: one name a line after a `# name` header. */
export function parsePoolSize(text: string): number {
  let size = 0;
  for (const line of text.split('\n')) {
    const name = line.trim();
    if (name.startsWith(POOL_PREFIX)) size = Math.max(size, Number(name.slice(POOL_PREFIX.length)) || 0);
  }
  return size;
}

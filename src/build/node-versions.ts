// Which Node.js an app gets: the newest version on offer that satisfies its package.json's
// engines.node (a semver range, read as npm reads it), or the newest LTS on offer when it
// asks for none. Pure: the offer is data (build/node-runtimes.ts gets it from the registry),
// so every choice and every refusal is checked without a network.
import semver from 'semver';
import { UserError } from '../lib/errors.js';
import { compareVersions, NODE_VERSION } from '../lib/runtime-cache.js';

export interface NodeOffer {
  /** Exact versions that can be installed (or are), oldest first. */
  versions: string[];
  /** The registry's list, or only what is installed (the registry could not be reached). */
  source: 'registry' | 'installed';
  /** When each version was published, as the registry says (to tell LTS lines). */
  time?: Record<string, string>;
  /** Why the registry could not be asked (source 'installed'). */
  registryError?: string;
  /** The build's npm and the Node.js versions it runs on, which bound the offer. */
  npm?: { version: string; node: string };
  /** Versions the registry has that the build's npm cannot run on (for the error message). */
  excluded?: string[];
}

/** Longest engines.node taken: a range is a few dozen characters; this bounds the work. */
const MAX_RANGE_CHARS = 256;
/** How long after its first release an even-numbered major becomes LTS (Node.js moves the
 * April release to LTS in late October; a week early is the error chosen over weeks late). */
const LTS_AFTER_MS = 168 * 24 * 3_600_000;

/** engines.node of a package.json, checked: undefined when absent, else a valid range. */
export function enginesNodeRange(engines: unknown): string | undefined {
  if (engines === undefined || engines === null) return undefined;
  if (typeof engines !== 'object' || Array.isArray(engines)) {
    throw new UserError('build_failed', 'engines in package.json must be an object like { "node": "22.x" }');
  }
  const value = (engines as Record<string, unknown>).node;
  if (value === undefined) return undefined;
  const shown = JSON.stringify(value)?.slice(0, 80);
  if (
    typeof value !== 'string' ||
    value.trim() === '' ||
    value.length > MAX_RANGE_CHARS ||
    semver.validRange(value) === null
  ) {
    throw new UserError(
      'build_failed',
      `engines.node in package.json must be a version range like "22.x", "^24.1" or ">=22", got ${shown}`,
    );
  }
  return value.trim();
}

/** The registry's versions that Petri offers: exact releases (no prereleases) that the
 * build's npm runs on. */
export function offerable(
  versions: readonly string[],
  npmNode?: string,
): { versions: string[]; excluded: string[] } {
  const releases = versions.filter((v) => NODE_VERSION.test(v)).sort(compareVersions);
  if (!npmNode || semver.validRange(npmNode) === null) return { versions: releases, excluded: [] };
  const ok = (v: string) => semver.satisfies(v, npmNode);
  return { versions: releases.filter(ok), excluded: releases.filter((v) => !ok(v)) };
}

/** The LTS majors among the offer: even-numbered ones that a newer major followed, or whose
 * first release is old enough to have become LTS (see LTS_AFTER_MS). */
export function ltsMajors(offer: Pick<NodeOffer, 'versions' | 'time'>, now: Date): number[] {
  const majors = [...new Set(offer.versions.map((v) => Number(v.split('.')[0])))].sort((a, b) => a - b);
  const newest = majors.at(-1) ?? 0;
  return majors.filter((major) => {
    if (major % 2 !== 0 || major === 0) return false;
    if (major < newest) return true;
    const first = firstRelease(offer.time, major);
    // Without dates (the registry unreachable), the newest even major counts: it is what
    // an operator installed, and the best guess there is.
    return first === undefined || now.getTime() - first >= LTS_AFTER_MS;
  });
}

function firstRelease(time: Record<string, string> | undefined, major: number): number | undefined {
  if (!time) return undefined;
  let first: number | undefined;
  for (const [version, at] of Object.entries(time)) {
    if (!NODE_VERSION.test(version) || Number(version.split('.')[0]) !== major) continue;
    const t = Date.parse(at);
    if (Number.isFinite(t) && (first === undefined || t < first)) first = t;
  }
  return first;
}

export interface NodeChoice {
  version: string;
  /** Why this one, for the build output: 'engines.node "22.x"' or 'the newest LTS'. */
  reason: string;
}

/** The version an app gets. Undefined only when the app asks for none and nothing is on
 * offer at all (registry unreachable, nothing installed): the caller falls back to the
 * host's Node.js. Otherwise a choice, or a build error that names what is on offer. */
export function chooseNodeVersion(
  range: string | undefined,
  offer: NodeOffer,
  now: Date = new Date(),
): NodeChoice | undefined {
  if (range === undefined) {
    if (offer.versions.length === 0) return undefined;
    const lts = ltsMajors(offer, now);
    const major = lts.at(-1);
    const pick =
      major === undefined
        ? offer.versions.at(-1)
        : offer.versions.filter((v) => Number(v.split('.')[0]) === major).at(-1);
    return pick
      ? { version: pick, reason: major === undefined ? 'the newest on offer' : 'the newest LTS' }
      : undefined;
  }
  const version = semver.maxSatisfying(offer.versions, range);
  if (version) return { version, reason: `engines.node ${JSON.stringify(range)}` };
  throw new UserError('build_failed', unsatisfiable(range, offer, now));
}

function unsatisfiable(range: string, offer: NodeOffer, now: Date): string {
  const shown = JSON.stringify(range);
  if (offer.source === 'installed') {
    const installed = offer.versions.length > 0 ? offer.versions.join(', ') : 'none';
    return (
      `no installed Node.js satisfies engines.node ${shown} in package.json (installed: ${installed}), ` +
      `and the npm registry could not be asked for more (${offer.registryError ?? 'unreachable'}); ` +
      'deploy again once the registry is reachable, or ask for an installed version'
    );
  }
  const npmOnly = (offer.excluded ?? []).filter((v) => semver.satisfies(v, range));
  const why =
    npmOnly.length > 0 && offer.npm
      ? ` (${npmOnly.at(-1)} is in the registry, but the build's npm ${offer.npm.version} runs on Node.js ${offer.npm.node} only)`
      : '';
  return (
    `no Node.js on offer satisfies engines.node ${shown} in package.json${why}; ` +
    `on offer: ${describeOffer(offer)}. Set engines.node to one of them, e.g. "${suggestion(offer, now)}"`
  );
}

/** The newest version of each of the last majors on offer, and where the offer starts. */
export function describeOffer(offer: Pick<NodeOffer, 'versions'>): string {
  if (offer.versions.length === 0) return 'none';
  const newestOf = new Map<number, string>();
  for (const v of offer.versions) newestOf.set(Number(v.split('.')[0]), v);
  const newest = [...newestOf.values()].slice(-8);
  return `${newest.join(', ')} (the newest of each major, of ${offer.versions.length} versions from ${offer.versions[0]} on)`;
}

function suggestion(offer: NodeOffer, now: Date): string {
  const lts = ltsMajors(offer, now).at(-1);
  return `${lts ?? offer.versions.at(-1)?.split('.')[0] ?? '24'}.x`;
}

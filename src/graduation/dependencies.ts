// An app's dependencies as its lockfile (or, without one, its manifest) states them, for
// HANDOFF.md: the direct ones with the versions the build installed, and how many there are
// in all. Pure: the service reads the files from the slug and hands their text in.
import { parse as parseToml } from 'smol-toml';

export interface Dependency {
  name: string;
  /** The locked (installed) version, or the range asked for when nothing is locked. */
  version: string;
  /** Needed only to build or test (devDependencies). */
  dev?: boolean;
}

export interface Dependencies {
  /** Which file they come from: package-lock.json, requirements.txt ... ; null: none found. */
  source: string | null;
  direct: Dependency[];
  /** Every package installed, the direct ones' own dependencies included; null: unknown. */
  total: number | null;
  /** What the reader should know: no lockfile, a file that could not be read. */
  notes: string[];
  /** Python: the requirements (as written) that Petri's host satisfied, not the virtualenv. */
  hostProvided?: string[];
}

/** Node.js: package-lock.json (v1 to v3) with package.json; package.json alone otherwise. */
export function nodeDependencies(packageJson: string | null, lockfile: string | null): Dependencies {
  const notes: string[] = [];
  const manifest = packageJson === null ? undefined : parseJson(packageJson, 'package.json', notes);
  const ranges = {
    ...stringMap(manifest?.dependencies),
  };
  const devRanges = stringMap(manifest?.devDependencies);
  const lock = lockfile === null ? undefined : parseJson(lockfile, 'package-lock.json', notes);
  if (!lock) {
    if (manifest) notes.push('no package-lock.json: the versions are the ranges package.json asks for');
    const direct = [
      ...Object.entries(ranges).map(([name, version]) => ({ name, version })),
      ...Object.entries(devRanges).map(([name, version]) => ({ name, version, dev: true })),
    ];
    return { source: manifest ? 'package.json' : null, direct: sortByName(direct), total: null, notes };
  }
  const packages = objectOf(lock.packages);
  const legacy = objectOf(lock.dependencies);
  const locked = (name: string): string | undefined => {
    const entry = packages ? objectOf(packages[`node_modules/${name}`]) : objectOf(legacy?.[name]);
    return typeof entry?.version === 'string' ? entry.version : undefined;
  };
  const direct: Dependency[] = [];
  for (const [names, dev] of [
    [ranges, false],
    [devRanges, true],
  ] as const) {
    for (const [name, range] of Object.entries(names)) {
      const version = locked(name);
      direct.push({ name, version: version ?? `${range} (not in the lockfile)`, ...(dev && { dev }) });
    }
  }
  const total = packages
    ? Object.keys(packages).filter((k) => k.startsWith('node_modules/')).length
    : legacy
      ? Object.keys(legacy).length
      : null;
  return { source: 'package-lock.json', direct: sortByName(direct), total, notes };
}

/** Python: requirements.txt or pyproject.toml's [project] dependencies, with the versions
 * the virtualenv holds (`installed`: name -> version, from its *.dist-info directories). */
export function pythonDependencies(
  requirements: string | null,
  pyproject: string | null,
  installed: Map<string, string>,
): Dependencies {
  const notes: string[] = [];
  let source: string | null = null;
  let asked: string[] = [];
  if (requirements !== null) {
    source = 'requirements.txt';
    asked = requirements
      .split('\n')
      .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
      .filter((l) => l !== '' && !l.startsWith('-'));
  } else if (pyproject !== null) {
    source = 'pyproject.toml';
    try {
      const doc = parseToml(pyproject) as { project?: { dependencies?: unknown } };
      const deps = doc.project?.dependencies;
      if (Array.isArray(deps)) asked = deps.filter((d): d is string => typeof d === 'string');
    } catch {
      notes.push('pyproject.toml could not be read as TOML');
    }
  }
  const hostProvided: string[] = [];
  const direct = asked.map((requirement) => {
    const name = requirementName(requirement);
    const version = installed.get(normalizePythonName(name));
    if (version === undefined) hostProvided.push(requirement);
    return {
      name,
      version:
        version ??
        `${requirement.slice(name.length).trim() || 'any'} (provided by Petri's host, not the virtualenv)`,
    };
  });
  if (hostProvided.length > 0)
    notes.push(
      "Petri's virtualenv sees the host's Python packages: a requirement the host satisfied is not in it; the Dockerfile installs those with pip",
    );
  return { source, direct: sortByName(direct), total: installed.size, notes, hostProvided };
}

/** PEP 503: names compare in lower case with runs of -, _ and . as one -. */
export function normalizePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** The distribution name at the start of a requirement (`flask>=3`, `Django[argon2]==5.0`). */
export function requirementName(requirement: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*/.exec(requirement.trim())?.[0] ?? requirement.trim();
}

/** `Flask-3.0.3.dist-info` -> ['flask', '3.0.3'] (the version is what follows the last '-'). */
export function distInfoEntry(dirName: string): [string, string] | undefined {
  const m = /^(.+)-([^-]+)\.dist-info$/.exec(dirName);
  return m ? [normalizePythonName(m[1] as string), m[2] as string] : undefined;
}

function parseJson(text: string, file: string, notes: string[]): Record<string, unknown> | undefined {
  try {
    return objectOf(JSON.parse(text));
  } catch {
    notes.push(`${file} is not valid JSON`);
    return undefined;
  }
}

function objectOf(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(objectOf(value) ?? {})) if (typeof v === 'string') out[k] = v;
  return out;
}

function sortByName(list: Dependency[]): Dependency[] {
  return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

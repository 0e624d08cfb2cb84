// What a push asks for, decided from the pre-receive hook's input: which ref deploys,
// which are only stored. Pure, so the hook stays a thin shell around it. Heroku's rule:
// only main or master builds; other branches and tags are accepted and kept, not built.

export const DEPLOY_REFS = ['refs/heads/main', 'refs/heads/master'] as const;
const ZERO = /^0+$/;
const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export interface RefUpdate {
  oldId: string;
  newId: string;
  ref: string;
}

export type RefAction =
  | { kind: 'deploy'; update: RefUpdate }
  | { kind: 'skip'; update: RefUpdate; message: string };

/** Parses the `old new ref` lines git writes to pre-receive's stdin. */
export function parseHookInput(text: string): RefUpdate[] {
  const updates: RefUpdate[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [oldId, newId, ref, ...rest] = line.trim().split(' ');
    if (!oldId || !newId || !ref || rest.length > 0 || !OBJECT_ID.test(oldId) || !OBJECT_ID.test(newId)) {
      throw new Error(`unexpected pre-receive input line: ${JSON.stringify(line.slice(0, 200))}`);
    }
    updates.push({ oldId, newId, ref });
  }
  return updates;
}

export function isDeletion(update: RefUpdate): boolean {
  return ZERO.test(update.newId);
}

/** One action per ref: at most one deploy per push (main if both main and master came). */
export function planPush(updates: RefUpdate[]): RefAction[] {
  const candidates = updates.filter(
    (u) => (DEPLOY_REFS as readonly string[]).includes(u.ref) && !isDeletion(u),
  );
  const chosen = candidates.find((u) => u.ref === 'refs/heads/main') ?? candidates[0];
  return updates.map((update): RefAction => {
    if (update === chosen) return { kind: 'deploy', update };
    const name = shortRef(update.ref);
    if (isDeletion(update)) return { kind: 'skip', update, message: `${name} deleted; nothing to build` };
    if (update.ref.startsWith('refs/tags/'))
      return { kind: 'skip', update, message: `tag ${name} stored; tags are not built` };
    if ((DEPLOY_REFS as readonly string[]).includes(update.ref)) {
      return {
        kind: 'skip',
        update,
        message: `${name} stored but not built: ${shortRef(chosen?.ref ?? '')} is built from this push`,
      };
    }
    return {
      kind: 'skip',
      update,
      message: `Pushed to branch other than [main, master], skipping build of ${name}`,
    };
  });
}

export function shortRef(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, '');
}

/** What the control plane streams back to the hook, one JSON object a line. */
export type HookEvent =
  | { type: 'log'; source: string; text: string }
  | { type: 'end'; ok: boolean; message: string };

// Wide enough for `release`, as `petri deploy` prints them, so both read alike.
const SOURCE_WIDTH = 7;

/** The terminal lines for one event; git prefixes each with `remote: `. */
export function eventLines(event: HookEvent): string[] {
  if (event.type === 'log') return [`${event.source.padEnd(SOURCE_WIDTH)} | ${clean(event.text)}`];
  const lines = event.message.split('\n').map(clean);
  return event.ok ? lines : lines.map((l) => ` !     ${l}`);
}

/** Build output is the app's: keep escape sequences it may print from reaching the terminal raw. */
function clean(text: string): string {
  return text.replace(
    /[\x00-\x08\x0b-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

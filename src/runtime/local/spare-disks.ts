// App disks made ahead of a start: when an instance stops (an app going to sleep among
// others), a clone of its release's template image is made and mounted aside, so the next
// start of that release (the wake) only renames it into its work dir instead of copying an
// image and mounting it (two forks of the control plane, 30-50 ms of a wake).
//
// A spare is what cloneAppDisk would make at the start, made earlier: a fresh copy of the
// template that no sandbox has seen, root's only (its parent is 0700) until it becomes one
// instance's /app, used once, and removed with that instance's files. The most recently
// made `max` are kept (each is a loop device and a mount); older ones go. They outlive the
// control plane like the instances' disks; the platform's teardown removes them. One being
// made is a dot-directory (.<name>.<random>) until it is whole: one left by a control plane
// that died meanwhile is removed before the next one makes any. At most MAX_FILLS are made
// at once (many stops together: a deploy replacing instances, many apps put to sleep).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { cloneAppDisk, mountCount, removeAppDisk } from './app-disk.js';

/** How long after the stop that asks for one a spare is made: at once (a start that comes
 * meanwhile waits for it), on a timer only so that close() can call it off. */
const MAKE_DELAY_MS = 0;

/** Spares made at once: each is a copy of an image and a mount, forks of the control plane. */
const MAX_FILLS = 2;

export class SpareDisks {
  /** Spares being made, by name: a start of that template waits for it. */
  private readonly making = new Map<string, Promise<void>>();
  /** Asked for and waiting for a fill slot (a start does not wait for those). */
  private readonly queued = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The dot-directories this object is using: those of spares being made or evicted. */
  private readonly asides = new Set<string>();
  /** Half-made spares of an earlier control plane removed, once, before the first make. */
  private swept: Promise<void> | undefined;
  private fills = 0;
  private readonly waiting: (() => void)[] = [];
  private closed = false;

  constructor(
    /** Root's only: the spares hold apps' code. */
    private readonly dir: string,
    private readonly max: number,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** The /app of `workDir` from a spare of `template`, or undefined when there is none (or
   * the work dir exists already: an earlier run's, which the caller replaces as before). */
  async take(template: string, workDir: string): Promise<string | undefined> {
    // Never over a directory (rename would replace an empty one, with its mode).
    if (this.max === 0 || existsSync(workDir)) return undefined;
    const name = spareName(template);
    await this.making.get(name)?.catch(() => {});
    const spare = path.join(this.dir, name);
    // A reboot keeps the image and drops the mount: such a spare is no use.
    if ((await mountCount(path.join(spare, 'app'))) === 0) return undefined;
    await mkdir(path.dirname(workDir), { recursive: true });
    try {
      // Atomic: of two starts of one release, one gets it. The mount moves with its parent.
      await rename(spare, workDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Taken meanwhile, a work dir that exists, or another filesystem: the normal path.
      if (code === 'ENOENT' || code === 'EEXIST' || code === 'ENOTEMPTY' || code === 'EXDEV')
        return undefined;
      throw err;
    }
    return path.join(workDir, 'app');
  }

  /** A spare of `template` made soon, unless there is one. */
  makeSoon(template: string): void {
    if (this.max === 0 || this.closed || this.queued.has(spareName(template))) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.make(template).catch(this.onError);
    }, MAKE_DELAY_MS);
    timer.unref();
    this.timers.add(timer);
  }

  /** Makes no more spares; those made stay for the next driver. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    // Those waiting for a slot see `closed` and make nothing.
    for (const go of this.waiting.splice(0)) go();
  }

  /** Removes every spare (platform shutdown). */
  async removeAll(): Promise<void> {
    this.close();
    await Promise.allSettled(this.making.values());
    // Those being made when a control plane died too.
    for (const name of await readdir(this.dir).catch(() => [] as string[])) await this.remove(name);
  }

  private async make(template: string): Promise<void> {
    const name = spareName(template);
    if (this.closed || this.making.has(name) || this.queued.has(name)) return;
    this.queued.add(name);
    let done: () => void;
    try {
      done = await this.slot();
    } finally {
      this.queued.delete(name);
    }
    if (this.closed || this.making.has(name)) return done();
    const spare = path.join(this.dir, name);
    const made = (async () => {
      this.swept ??= this.sweep();
      await this.swept;
      if ((await mountCount(path.join(spare, 'app'))) > 0) return;
      await this.remove(name); // a reboot's unmounted leftover
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      // Made aside and renamed into place: a spare that exists is a complete one.
      const aside = this.aside(name);
      try {
        await cloneAppDisk(template, path.join(this.dir, aside));
        await rename(path.join(this.dir, aside), spare);
      } finally {
        await this.remove(aside).catch(() => {});
        this.asides.delete(aside);
      }
      await this.evict(name);
    })().finally(() => {
      this.making.delete(name);
      done();
    });
    this.making.set(name, made);
    await made;
  }

  /** Waits for one of the MAX_FILLS; the function returned gives it back. */
  private async slot(): Promise<() => void> {
    if (this.fills >= MAX_FILLS && !this.closed) await new Promise<void>((go) => this.waiting.push(go));
    this.fills++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.fills--;
      this.waiting.shift()?.();
    };
  }

  /** A fresh dot-name for `name`, known to this object until it lets it go. */
  private aside(name: string): string {
    const aside = `.${name}.${randomBytes(4).toString('hex')}`;
    this.asides.add(aside);
    return aside;
  }

  /** Removes the spares an earlier control plane left half made or half evicted (a clone
   * mounted at a dot-name: a loop device, a mount and an image of an app's code each). */
  private async sweep(): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const n of names) {
      if (n.startsWith('.') && !this.asides.has(n)) await this.remove(n).catch(this.onError);
    }
  }

  /** Keeps the `max` most recently made spares. */
  private async evict(keep: string): Promise<void> {
    const names = (await this.names()).filter((n) => n !== keep);
    if (names.length < this.max) return;
    const dated = await Promise.all(
      names.map(async (n) => ({
        n,
        at: (await stat(path.join(this.dir, n)).catch(() => undefined))?.ctimeMs ?? 0,
      })),
    );
    dated.sort((a, b) => a.at - b.at);
    for (const { n } of dated.slice(0, names.length - (this.max - 1))) {
      if (this.making.has(n)) continue;
      // Renamed aside first, atomically: a start taking it at once either gets it whole (this
      // rename then finds nothing) or finds none, never a spare being unmounted under it.
      const aside = this.aside(n);
      try {
        await rename(path.join(this.dir, n), path.join(this.dir, aside));
        await this.remove(aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      } finally {
        this.asides.delete(aside);
      }
    }
  }

  private async names(): Promise<string[]> {
    return (await readdir(this.dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
  }

  /** Unmounted first: rm would otherwise walk into the mounted disk. */
  private async remove(name: string): Promise<void> {
    const spare = path.join(this.dir, name);
    await removeAppDisk(spare);
    await rm(spare, { recursive: true, force: true });
  }
}

/** One spare per template image. */
function spareName(template: string): string {
  return createHash('sha256').update(template).digest('hex').slice(0, 24);
}

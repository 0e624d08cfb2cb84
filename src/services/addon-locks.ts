// One engine operation at a time per add-on (a backup never races a restore, a rotation never
// races a destroy), and a count of what runs or waits, so upkeep leaves a busy add-on alone.
export class AddonLocks {
  private readonly locks = new Map<number, Promise<unknown>>();
  /** Operations running or queued per add-on. */
  private readonly pending = new Map<number, number>();

  /** Runs `fn` once the add-on's operations before it have ended (failed ones included). */
  locked<T>(addonId: number, fn: () => Promise<T>): Promise<T> {
    // Counted from the call, not from the start: upkeep must see an operation that waits.
    this.hold(addonId, +1);
    const previous = this.locks.get(addonId) ?? Promise.resolve();
    const run = previous
      .catch(() => {})
      .then(fn)
      .finally(() => this.hold(addonId, -1));
    const tail = run.catch(() => {});
    this.locks.set(addonId, tail);
    void tail.then(() => {
      if (this.locks.get(addonId) === tail) this.locks.delete(addonId);
    });
    return run;
  }

  /** Marks the add-on busy (+1) or done (-1) outside a lock: across the rounds of an app's
   * destroy, between which it is unlocked. */
  hold(addonId: number, delta: 1 | -1): void {
    const count = (this.pending.get(addonId) ?? 0) + delta;
    if (count > 0) this.pending.set(addonId, count);
    else this.pending.delete(addonId);
  }

  /** How many operations on the add-on run or wait in this process. */
  count(addonId: number): number {
    return this.pending.get(addonId) ?? 0;
  }
}

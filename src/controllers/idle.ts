// Puts idle apps to sleep. The router counts requests anyway: every few seconds this reads
// how long ago each app's backend last had one, keeps that time in the store (coarsely, so
// it survives restarts of the router and of the control plane), and marks an app whose
// idle period has passed as sleeping; the instance reconciler then stops its processes.
import type { Logger } from 'pino';
import { awakeServingApps, idleTimeoutMs, recordActivity, rollingOut, sleepApp } from '../domain/apps.js';
import type { PetriConfig } from '../lib/config.js';
import { Loop, type PassOutcome } from '../lib/loop.js';
import type { LogStore } from '../logs/log-store.js';
import type { Router } from '../router/router.js';
import type { Store } from '../store/db.js';
import type { App } from '../store/schema.js';

/** Nudges closer together than this wait (see Loop's nudgeGapMs). */
const NUDGE_GAP_MS = 1000;
/** The stored last-request time is rewritten at most this often per app (it only matters
 * after a restart, when the router's own counters start again). */
const PERSIST_EVERY_MS = 30_000;
/** Passes back off to this far apart while no awake app is within it of its idle period (a
 * host whose apps sleep, or idle after 30 min, looks once a minute, not every 10 s); a wake
 * or a change of an app's idle period nudges a pass. */
const QUIET_MAX_MS = 60_000;

export class IdleSleeper {
  private readonly loop: Loop;

  constructor(
    private readonly deps: {
      db: Store;
      router: Pick<Router, 'lastRequests'>;
      config: PetriConfig;
      logs: LogStore;
      logger: Logger;
      nudge: () => void;
    },
  ) {
    this.loop = new Loop({
      what: 'looking for idle apps',
      pass: () => this.pass(),
      intervalMs: deps.config.idleCheckMs,
      quietMaxMs: QUIET_MAX_MS,
      // Nudged by every API write: at most one pass a second however many come.
      nudgeGapMs: NUDGE_GAP_MS,
      logger: deps.logger,
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  tick(): Promise<void> {
    return this.loop.runNow();
  }

  /** An app woke, or its idle period changed: a look soon, at the interval again. */
  nudge(): void {
    this.loop.nudge();
  }

  /** Quiet when no awake app can reach its idle period before a quiet pass's longest wait. */
  private async pass(): Promise<PassOutcome | undefined> {
    const { db, router, config } = this.deps;
    const serving = await awakeServingApps(db);
    if (serving.length === 0) return 'quiet';
    const seconds = await router.lastRequests();
    const now = Date.now();
    // A rollout under way ends soon, and nothing says so here: no backing off meanwhile.
    let soonest = serving.some(rollingOut) ? 0 : Number.POSITIVE_INFINITY;
    for (const app of serving.filter((a) => !rollingOut(a))) {
      const ago = seconds.get(app.name);
      const seen = ago !== undefined && ago >= 0 ? now - ago * 1000 : undefined;
      const stored = time(app.active_at);
      const last = Math.max(seen ?? 0, stored);
      const idle = idleTimeoutMs(app, config.idleTimeoutMs);
      if (last === 0) {
        // Never seen a request: the idle period counts from now.
        await this.remember(app, now);
        if (idle !== undefined) soonest = Math.min(soonest, idle);
        continue;
      }
      if (seen !== undefined && seen - stored >= Math.min(PERSIST_EVERY_MS, (idle ?? PERSIST_EVERY_MS) / 2)) {
        await this.remember(app, seen);
      }
      if (idle === undefined) continue;
      if (now - last >= idle) await this.sleep(app, now - last);
      else soonest = Math.min(soonest, last + idle - now);
    }
    return soonest > QUIET_MAX_MS ? 'quiet' : undefined;
  }

  private async remember(app: App, at: number): Promise<void> {
    await recordActivity(this.deps.db, app.id, new Date(at));
  }

  private async sleep(app: App, idleMs: number): Promise<void> {
    const why = `no request for ${formatMs(idleMs)}`;
    await sleepApp(this.deps.db, { name: 'petri' }, app, why);
    this.deps.logs.append(app.name, 'petri', `going to sleep: ${why}; the next request wakes it\n`);
    this.deps.nudge();
  }
}

function time(iso: string | null): number {
  return iso === null ? 0 : Date.parse(iso);
}

function formatMs(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

// What one app's instances should become, computed from rows alone (pure, unit-tested):
// which instances to start, which the router sends traffic to, whether the desired release
// now takes over, and which instances to retire. The reconciler then applies it.
import type { App, Instance } from '../store/schema.js';

export interface FormationEntry {
  quantity: number;
  generation: number;
}

export interface AppPlanInput {
  app: Pick<App, 'desired_release_id' | 'serving_release_id'>;
  /** Process types of the desired release (type -> command). */
  desiredTypes: Record<string, string>;
  formation: Map<string, FormationEntry>;
  rows: Instance[];
  /** False while the desired release's release command has not succeeded yet. */
  releasePhaseDone: boolean;
  /** The app sleeps: nothing of it runs (its formation is kept for when it wakes). */
  sleeping?: boolean;
}

export interface AppPlan {
  launch: { type: string; idx: number; generation: number }[];
  /** Up web instances to route to. */
  servers: Instance[];
  /** The desired release serves from now on. */
  switchToDesired: boolean;
  retire: Instance[];
}

export function planApp(input: AppPlanInput): AppPlan {
  const { app, desiredTypes, formation, releasePhaseDone } = input;
  // Asleep with nothing left running and no new release to take over: nothing to do. Most
  // apps of a crowded host, every pass; this is what the steps below come to for them.
  if (input.sleeping && input.rows.length === 0 && app.desired_release_id === app.serving_release_id) {
    return { launch: [], servers: [], switchToDesired: false, retire: [] };
  }
  const rows = input.rows.filter((r) => r.state !== 'stopping');
  const desired = app.desired_release_id;
  const serving = app.serving_release_id;
  const wanted = (type: string) =>
    desired !== null && desiredTypes[type] && !input.sleeping ? (formation.get(type)?.quantity ?? 0) : 0;
  const isCurrent = (r: Instance) =>
    r.release_id === desired &&
    r.generation === (formation.get(r.type)?.generation ?? 0) &&
    r.idx <= wanted(r.type);

  const launch: AppPlan['launch'] = [];
  if (desired !== null && (releasePhaseDone || desired === serving)) {
    for (const [type, entry] of formation) {
      for (let idx = 1; idx <= wanted(type); idx++) {
        if (!rows.some((r) => isCurrent(r) && r.type === type && r.idx === idx)) {
          launch.push({ type, idx, generation: entry.generation });
        }
      }
    }
  }

  const typeComplete = (type: string) => {
    for (let idx = 1; idx <= wanted(type); idx++) {
      if (!rows.some((r) => isCurrent(r) && r.type === type && r.idx === idx && r.state === 'up'))
        return false;
    }
    return true;
  };
  const types = new Set([...formation.keys(), ...rows.map((r) => r.type)]);
  const upWeb = (filter: (r: Instance) => boolean) =>
    rows.filter((r) => r.type === 'web' && r.state === 'up' && filter(r));
  const retire = new Set<Instance>(rows.filter((r) => r.release_id !== desired && r.release_id !== serving));

  if (desired !== null && desired !== serving) {
    // A new release takes over all at once, when every instance it wants is up; until
    // then the serving release keeps every request.
    const complete =
      releasePhaseDone &&
      [...types].every(typeComplete) &&
      [...formation.values()].some((f) => f.quantity > 0);
    if (complete) {
      for (const r of rows) if (!isCurrent(r)) retire.add(r);
      return { launch, servers: upWeb(isCurrent), switchToDesired: true, retire: [...retire] };
    }
    return {
      launch,
      servers: upWeb((r) => r.release_id === serving),
      switchToDesired: false,
      retire: [...retire],
    };
  }

  // Steady state, a restart or a scale: per process type, old instances go once every
  // wanted one of that type is up.
  let servers: Instance[] = [];
  for (const type of types) {
    const ofType = rows.filter((r) => r.type === type && r.release_id === serving);
    if (typeComplete(type)) {
      for (const r of ofType) if (!isCurrent(r)) retire.add(r);
      if (type === 'web') servers = upWeb(isCurrent);
    } else if (type === 'web') {
      servers = upWeb((r) => r.release_id === serving);
    }
  }
  return { launch, servers, switchToDesired: false, retire: [...retire] };
}

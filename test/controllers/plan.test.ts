// The reconciler's pure plan, as a table of store states against the plan they make: what
// to launch, what the router sends traffic to, whether the desired release takes over, what
// retires. Each row is a moment of a deploy, a switch, a drain, a crash, a sleep or a scale.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AppPlanInput, type FormationEntry, planApp } from '../../src/controllers/plan.js';
import type { Instance, InstanceState } from '../../src/store/schema.js';

/** An instance row: `web.1@v2 up` style, generation 0 unless given. */
function row(type: string, idx: number, release: number, state: InstanceState, generation = 0): Instance {
  return {
    id: `${type}.${idx}@v${release}g${generation}`,
    app_id: 1,
    release_id: release,
    type,
    idx,
    port: 5000 + idx,
    state,
    started_at: '2026-01-01T00:00:00.000Z',
    ready_at: state === 'up' ? '2026-01-01T00:00:01.000Z' : null,
    restarts: 0,
    exit_code: null,
    exit_reason: null,
    next_start_at: state === 'crashed' ? '2026-01-01T00:00:02.000Z' : null,
    stop_deadline: null,
    generation,
    signalled_at: null,
    address: null,
  };
}

function formation(entries: Record<string, number | [number, number]>): Map<string, FormationEntry> {
  return new Map(
    Object.entries(entries).map(([type, e]) => [
      type,
      typeof e === 'number' ? { quantity: e, generation: 0 } : { quantity: e[0], generation: e[1] },
    ]),
  );
}

interface Case {
  name: string;
  desired: number | null;
  serving: number | null;
  rows: Instance[];
  formation?: Map<string, FormationEntry>;
  types?: Record<string, string>;
  releasePhaseDone?: boolean;
  sleeping?: boolean;
  expect: { launch: string[]; servers: string[]; switchToDesired: boolean; retire: string[] };
}

const WEB = { web: 'node server.js' };
const WEB_WORKER = { web: 'node server.js', worker: 'node worker.js' };

const cases: Case[] = [
  // First deploy
  {
    name: 'first deploy, nothing runs: launch the formation',
    desired: 1,
    serving: null,
    rows: [],
    expect: { launch: ['web.1 g0'], servers: [], switchToDesired: false, retire: [] },
  },
  {
    name: 'first deploy, release command not done: launch nothing yet',
    desired: 1,
    serving: null,
    rows: [],
    releasePhaseDone: false,
    expect: { launch: [], servers: [], switchToDesired: false, retire: [] },
  },
  {
    name: 'first deploy, web.1 starting: wait, nothing routed',
    desired: 1,
    serving: null,
    rows: [row('web', 1, 1, 'starting')],
    expect: { launch: [], servers: [], switchToDesired: false, retire: [] },
  },
  {
    name: 'first deploy, web.1 up: the release takes over and is routed',
    desired: 1,
    serving: null,
    rows: [row('web', 1, 1, 'up')],
    expect: { launch: [], servers: ['web.1@v1g0'], switchToDesired: true, retire: [] },
  },
  // Switch
  {
    name: 'switch: v2 launches beside v1, v1 keeps every request',
    desired: 2,
    serving: 1,
    rows: [row('web', 1, 1, 'up')],
    expect: { launch: ['web.1 g0'], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'switch: v2 starting, v1 still serves',
    desired: 2,
    serving: 1,
    rows: [row('web', 1, 1, 'up'), row('web', 1, 2, 'starting')],
    expect: { launch: [], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'switch: only part of v2 up (web up, worker starting): still v1',
    desired: 2,
    serving: 1,
    types: WEB_WORKER,
    formation: formation({ web: 1, worker: 1 }),
    rows: [
      row('web', 1, 1, 'up'),
      row('worker', 1, 1, 'up'),
      row('web', 1, 2, 'up'),
      row('worker', 1, 2, 'starting'),
    ],
    expect: { launch: [], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'switch: all of v2 up: it takes over at once and all of v1 retires',
    desired: 2,
    serving: 1,
    types: WEB_WORKER,
    formation: formation({ web: 1, worker: 1 }),
    rows: [
      row('web', 1, 1, 'up'),
      row('worker', 1, 1, 'up'),
      row('web', 1, 2, 'up'),
      row('worker', 1, 2, 'up'),
    ],
    expect: {
      launch: [],
      servers: ['web.1@v2g0'],
      switchToDesired: true,
      retire: ['web.1@v1g0', 'worker.1@v1g0'],
    },
  },
  {
    name: 'switch: a release command still running holds v2 back',
    desired: 2,
    serving: 1,
    rows: [row('web', 1, 1, 'up')],
    releasePhaseDone: false,
    expect: { launch: [], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'an instance of neither the desired nor the serving release retires',
    desired: 3,
    serving: 2,
    rows: [row('web', 1, 1, 'up'), row('web', 1, 2, 'up')],
    expect: { launch: ['web.1 g0'], servers: ['web.1@v2g0'], switchToDesired: false, retire: ['web.1@v1g0'] },
  },
  // Drain
  {
    name: 'drain: a stopping instance is neither routed, launched again nor retired again',
    desired: 2,
    serving: 2,
    rows: [row('web', 1, 1, 'stopping'), row('web', 1, 2, 'up')],
    expect: { launch: [], servers: ['web.1@v2g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'drain: a stopping instance of the current release is replaced',
    desired: 2,
    serving: 2,
    rows: [row('web', 1, 2, 'stopping')],
    expect: { launch: ['web.1 g0'], servers: [], switchToDesired: false, retire: [] },
  },
  // Crash backoff
  {
    name: 'crash: a crashed instance is not launched anew (the reconciler restarts it after its backoff)',
    desired: 1,
    serving: 1,
    rows: [row('web', 1, 1, 'crashed')],
    expect: { launch: [], servers: [], switchToDesired: false, retire: [] },
  },
  {
    name: 'crash: of two web instances, the one up keeps serving while the other waits out its backoff',
    desired: 1,
    serving: 1,
    formation: formation({ web: 2 }),
    rows: [row('web', 1, 1, 'up'), row('web', 2, 1, 'crashed')],
    expect: { launch: [], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  // Sleeping
  {
    name: 'sleeping: every instance retires, nothing is routed or launched',
    desired: 1,
    serving: 1,
    sleeping: true,
    types: WEB_WORKER,
    formation: formation({ web: 2, worker: 1 }),
    rows: [row('web', 1, 1, 'up'), row('web', 2, 1, 'up'), row('worker', 1, 1, 'up')],
    expect: {
      launch: [],
      servers: [],
      switchToDesired: false,
      retire: ['web.1@v1g0', 'web.2@v1g0', 'worker.1@v1g0'],
    },
  },
  {
    name: 'sleeping: a crashed instance retires too (it is not restarted)',
    desired: 1,
    serving: 1,
    sleeping: true,
    rows: [row('web', 1, 1, 'crashed')],
    expect: { launch: [], servers: [], switchToDesired: false, retire: ['web.1@v1g0'] },
  },
  {
    name: 'woken: the formation launches again',
    desired: 1,
    serving: 1,
    rows: [],
    expect: { launch: ['web.1 g0'], servers: [], switchToDesired: false, retire: [] },
  },
  // Scale
  {
    name: 'scale up: the new instance launches, the one up keeps serving',
    desired: 1,
    serving: 1,
    formation: formation({ web: 3 }),
    rows: [row('web', 1, 1, 'up')],
    expect: { launch: ['web.2 g0', 'web.3 g0'], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'scale up: once all are up, all are routed',
    desired: 1,
    serving: 1,
    formation: formation({ web: 2 }),
    rows: [row('web', 1, 1, 'up'), row('web', 2, 1, 'up')],
    expect: { launch: [], servers: ['web.1@v1g0', 'web.2@v1g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'scale down: the instances past the quantity retire',
    desired: 1,
    serving: 1,
    formation: formation({ web: 1 }),
    rows: [row('web', 1, 1, 'up'), row('web', 2, 1, 'up'), row('web', 3, 1, 'starting')],
    expect: {
      launch: [],
      servers: ['web.1@v1g0'],
      switchToDesired: false,
      retire: ['web.2@v1g0', 'web.3@v1g0'],
    },
  },
  {
    name: 'scale to zero: the worker retires, web is untouched',
    desired: 1,
    serving: 1,
    types: WEB_WORKER,
    formation: formation({ web: 1, worker: 0 }),
    rows: [row('web', 1, 1, 'up'), row('worker', 1, 1, 'up')],
    expect: { launch: [], servers: ['web.1@v1g0'], switchToDesired: false, retire: ['worker.1@v1g0'] },
  },
  {
    name: 'a process type the release lacks is not launched',
    desired: 1,
    serving: 1,
    types: WEB,
    formation: formation({ web: 1, worker: 1 }),
    rows: [row('web', 1, 1, 'up')],
    expect: { launch: [], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  // Restart (petri ps restart: a new generation)
  {
    name: 'restart: a new generation launches beside the old, which serves until it is up',
    desired: 1,
    serving: 1,
    formation: formation({ web: [1, 1] }),
    rows: [row('web', 1, 1, 'up', 0)],
    expect: { launch: ['web.1 g1'], servers: ['web.1@v1g0'], switchToDesired: false, retire: [] },
  },
  {
    name: 'restart: the new generation up takes the traffic and the old one retires',
    desired: 1,
    serving: 1,
    formation: formation({ web: [1, 1] }),
    rows: [row('web', 1, 1, 'up', 0), row('web', 1, 1, 'up', 1)],
    expect: { launch: [], servers: ['web.1@v1g1'], switchToDesired: false, retire: ['web.1@v1g0'] },
  },
  // Nothing to run
  {
    name: 'no release yet: nothing at all',
    desired: null,
    serving: null,
    rows: [],
    expect: { launch: [], servers: [], switchToDesired: false, retire: [] },
  },
];

describe('planApp', () => {
  for (const c of cases) {
    test(c.name, () => {
      const input: AppPlanInput = {
        app: { desired_release_id: c.desired, serving_release_id: c.serving },
        desiredTypes: c.types ?? WEB,
        formation: c.formation ?? formation({ web: 1 }),
        rows: c.rows,
        releasePhaseDone: c.releasePhaseDone ?? true,
        sleeping: c.sleeping,
      };
      const plan = planApp(input);
      assert.deepEqual(
        {
          launch: plan.launch.map((l) => `${l.type}.${l.idx} g${l.generation}`).sort(),
          servers: plan.servers.map((r) => r.id).sort(),
          switchToDesired: plan.switchToDesired,
          retire: plan.retire.map((r) => r.id).sort(),
        },
        c.expect,
      );
    });
  }
});

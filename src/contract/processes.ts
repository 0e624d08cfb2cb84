// `petri ps`: the formation (how many of each process type should run) and every process
// with its state, uptime, restarts, memory and CPU; scaling and restarting.
import { type Static, Type } from '@sinclair/typebox';
import { ProcessState } from './apps.js';
import { Nullable } from './common.js';

/** How many processes of each type should run, e.g. {web: 2, worker: 0}. */
export const Formation = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));
export type Formation = Static<typeof Formation>;

export const FormationEnvelope = Type.Object({ formation: Formation });

/** A running (or crashed) process of an app. */
export const Process = Type.Object({
  name: Type.String({ description: 'process type and index, e.g. web.1' }),
  type: Type.String(),
  release: Type.String(),
  state: ProcessState,
  startedAt: Nullable(Type.String()),
  uptimeSeconds: Nullable(Type.Number()),
  restarts: Type.Integer(),
  memoryBytes: Nullable(Type.Number()),
  cpuSeconds: Nullable(Type.Number()),
  port: Nullable(Type.Integer(), { description: 'web processes only' }),
  address: Nullable(Type.String(), { description: 'where the router reaches it' }),
  lastExit: Nullable(Type.String(), { description: 'how it last ended, when it did' }),
  lastLines: Type.Array(Type.String(), { description: 'its last lines of output when it crashed' }),
});
export type Process = Static<typeof Process>;

export const ProcessList = Type.Object({
  formation: Formation,
  processes: Type.Array(Process),
  sleepingSince: Nullable(Type.String(), {
    description: 'while the app sleeps: no process runs until the next request (the formation is kept)',
  }),
});
export type ProcessList = Static<typeof ProcessList>;

export const RestartBody = Type.Object(
  { type: Type.Optional(Type.String({ description: 'only this process type' })) },
  { additionalProperties: false },
);
export type RestartBody = Static<typeof RestartBody>;

export const Restarting = Type.Object({ restarting: Type.Array(Type.String()) });
export type Restarting = Static<typeof Restarting>;

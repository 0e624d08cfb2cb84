// An app as the API shows it (status, serving release, limits, settings, processes), and
// what creating, changing and destroying one takes.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';
import { Experiment, ExperimentCreateFields } from './experiments.js';

export const Limits = Type.Object({
  memoryMiB: Type.Integer({ minimum: 16, maximum: 1_048_576, description: 'memory limit per instance, MiB' }),
  cpus: Type.Number({ minimum: 0.01, maximum: 1024, description: 'CPU cores per instance' }),
  pids: Type.Integer({ minimum: 8, maximum: 1_000_000, description: 'process/thread limit per instance' }),
  diskMiB: Type.Integer({
    minimum: 16,
    maximum: 1_048_576,
    description: 'size of /app and of /tmp per instance, MiB',
  }),
});
export type Limits = Static<typeof Limits>;

export const PROCESS_STATES = ['starting', 'up', 'crashed', 'stopping'] as const;
export const ProcessState = StringEnum([...PROCESS_STATES]);
export type ProcessState = Static<typeof ProcessState>;

/** A process of the serving release (or one starting), as `petri apps info` shows it. */
export const AppProcess = Type.Object({
  name: Type.String({ description: 'process type and index, e.g. web.1' }),
  release: Type.String({ description: 'the release it runs, e.g. v3' }),
  state: ProcessState,
  port: Nullable(Type.Integer()),
  startedAt: Nullable(Type.String()),
  restarts: Type.Integer(),
  lastExit: Nullable(Type.String({ description: 'how it last ended, when it did' })),
});
export type AppProcess = Static<typeof AppProcess>;

export const AppStatus = StringEnum(['new', 'deploying', 'running', 'crashed', 'down', 'sleeping'], {
  description:
    'new: never deployed; down: no instance serves; sleeping: idle (or put to sleep), its processes stopped, woken by the next request',
});
export type AppStatus = Static<typeof AppStatus>;

/** Per-app settings people change with `petri apps set`. */
export const AppSettings = Type.Object({
  bootTimeoutSeconds: Type.Number({
    description: 'how long a new process has to listen on its port before its release fails',
  }),
  idleTimeoutSeconds: Nullable(Type.Number(), {
    description: 'how long without a request before the app sleeps; null: it never does',
  }),
});
export type AppSettings = Static<typeof AppSettings>;

export const App = Type.Object(
  {
    name: Type.String(),
    url: Type.String(),
    owner: Type.String(),
    team: Type.String({
      description: "the team the app belongs to: its members' roles decide who may do what",
    }),
    createdAt: Type.String(),
    status: AppStatus,
    sleepingSince: Nullable(Type.String(), { description: 'when the app went to sleep; null while awake' }),
    release: Nullable(Type.String(), {
      description: 'the release serving now, e.g. v3; null before the first',
    }),
    limits: Limits,
    settings: AppSettings,
    processes: Type.Array(AppProcess),
    experiment: Experiment,
  },
  { $id: 'App' },
);
export type App = Static<typeof App>;

export const AppList = Type.Object({ apps: Type.Array(App) });
export type AppList = Static<typeof AppList>;

/** The answer of sleep and wake. */
export const AppEnvelope = Type.Object({ app: App });

export const CreateAppBody = Type.Object(
  {
    name: Type.String({ description: 'must match ^[a-z][a-z0-9-]{1,29}$' }),
    team: Type.Optional(
      Type.String({
        maxLength: 100,
        description: 'the team it belongs to (you must be a member or admin); default: your personal team',
      }),
    ),
    ...ExperimentCreateFields,
  },
  { additionalProperties: false },
);
export type CreateAppBody = Static<typeof CreateAppBody>;

export const AppUpdate = Type.Object(
  {
    limits: Type.Optional(Type.Partial(Limits)),
    settings: Type.Optional(
      Type.Object(
        {
          bootTimeoutSeconds: Type.Optional(Type.Number({ minimum: 1, maximum: 3600 })),
          idleTimeoutSeconds: Type.Optional(
            Nullable(Type.Integer({ minimum: 1 }), {
              description: 'seconds without a request before the app sleeps; null: never',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type AppUpdate = Static<typeof AppUpdate>;

export const DestroyAppQuery = Type.Object({
  confirm: Type.Optional(Type.String({ description: 'must equal the app name' })),
});

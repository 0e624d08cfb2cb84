// JSON schemas of the API (TypeBox), used for validation and the OpenAPI document.
import { Type } from '@sinclair/typebox';

export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'Error' },
);

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

export const Process = Type.Object({
  name: Type.String({ description: 'process type and index, e.g. web.1' }),
  release: Type.String(),
  state: Type.Union([
    Type.Literal('starting'),
    Type.Literal('up'),
    Type.Literal('crashed'),
    Type.Literal('stopping'),
  ]),
  port: Type.Union([Type.Integer(), Type.Null()]),
  startedAt: Type.Union([Type.String(), Type.Null()]),
  restarts: Type.Integer(),
  lastExit: Type.Union([Type.String(), Type.Null()]),
});

export const App = Type.Object(
  {
    name: Type.String(),
    url: Type.String(),
    owner: Type.String(),
    createdAt: Type.String(),
    status: Type.Union(
      ['new', 'deploying', 'running', 'crashed', 'down', 'sleeping'].map((s) => Type.Literal(s)),
      {
        description:
          'new: never deployed; down: no instance serves; sleeping: idle, woken by the next request',
      },
    ),
    sleepingSince: Type.Union([Type.String(), Type.Null()]),
    release: Type.Union([Type.String(), Type.Null()]),
    limits: Limits,
    settings: Type.Object({
      bootTimeoutSeconds: Type.Number(),
      idleTimeoutSeconds: Type.Union([Type.Number(), Type.Null()], { description: 'null: never sleeps' }),
    }),
    processes: Type.Array(Process),
  },
  { $id: 'App' },
);

export const Deploy = Type.Object(
  {
    id: Type.String(),
    app: Type.String(),
    status: Type.Union(
      ['queued', 'building', 'releasing', 'succeeded', 'failed'].map((s) => Type.Literal(s)),
    ),
    release: Type.Union([Type.String(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
    finishedAt: Type.Union([Type.String(), Type.Null()]),
    durationMs: Type.Union([Type.Integer(), Type.Null()]),
    url: Type.String(),
  },
  { $id: 'Deploy' },
);

export const Release = Type.Object(
  {
    version: Type.String({ description: 'v1, v2 ...' }),
    status: Type.Union(['pending', 'succeeded', 'failed'].map((s) => Type.Literal(s))),
    kind: Type.Union(['deploy', 'config', 'rollback', 'addon'].map((s) => Type.Literal(s))),
    description: Type.String(),
    current: Type.Boolean({ description: 'serving now' }),
    error: Type.Union([Type.String(), Type.Null()]),
    createdBy: Type.String(),
    createdAt: Type.String(),
  },
  { $id: 'Release' },
);

export const AppNameParams = Type.Object({ name: Type.String({ description: 'app name' }) });
export const DeployParams = Type.Object({ name: Type.String(), id: Type.String() });

export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
};

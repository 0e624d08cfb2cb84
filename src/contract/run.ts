// `petri run` over a WebSocket (GET /v1/apps/:name/run with Upgrade): the messages both
// sides send. Not in the OpenAPI document's schemas (it has no WebSocket type); the route's
// description there states this protocol in words.
import { type Static, Type } from '@sinclair/typebox';
import { ErrorBody, Nullable, StringEnum } from './common.js';

/** The first byte of each binary message from the server: which stream its bytes are from. */
export const CHANNEL_STDOUT = 1;
export const CHANNEL_STDERR = 2;

/** The signals a client may send to its command. */
export const RUN_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;
export type RunSignal = (typeof RUN_SIGNALS)[number];

/** The client's first message: what to run. */
export const RunStart = Type.Object({
  command: Type.Union([Type.Array(Type.String()), Type.String()], {
    description: "argv, or a string run with 'sh -c'; 64 KiB at most",
  }),
  tty: Type.Boolean(),
  cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
});
export type RunStart = Static<typeof RunStart>;

/** The client's later text messages. */
export const RunControl = Type.Union([
  Type.Object({ type: Type.Literal('eof') }),
  Type.Object({
    type: Type.Literal('resize'),
    cols: Type.Integer({ minimum: 1, maximum: 10_000 }),
    rows: Type.Integer({ minimum: 1, maximum: 10_000 }),
  }),
  Type.Object({ type: Type.Literal('signal'), signal: StringEnum([...RUN_SIGNALS]) }),
]);
export type RunControl = Static<typeof RunControl>;

/** The server's last text message when the command ended. */
export const RunExitMessage = Type.Object({
  type: Type.Literal('exit'),
  code: Nullable(Type.Integer()),
  signal: Nullable(Type.String()),
});
export type RunExitMessage = Static<typeof RunExitMessage>;

/** The server's text message when the run was refused or failed (then it closes). */
export const RunErrorMessage = Type.Object({
  type: Type.Literal('error'),
  error: ErrorBody.properties.error,
});
export type RunErrorMessage = Static<typeof RunErrorMessage>;

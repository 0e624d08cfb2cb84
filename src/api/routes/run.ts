// /v1/apps/:name/run: `petri run` over a WebSocket. The client's first message says what to
// run; afterwards its binary frames are stdin and its text frames control messages; ours are
// the command's output, one channel byte before the bytes, and finally how it exited.
import { AsyncResource } from 'node:async_hooks';
import { finished } from 'node:stream/promises';
import '@fastify/websocket';
import type { FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import {
  AppNameParams,
  CHANNEL_STDERR,
  CHANNEL_STDOUT,
  errorResponses,
  RUN_SIGNALS,
  type RunControl,
  type RunErrorMessage,
  type RunExitMessage,
} from '../../contract/index.js';
import { recordAudit } from '../../domain/audit.js';
import { recheckGrants, type StreamGrant } from '../../domain/stream-access.js';
import { isUserError, UserError } from '../../lib/errors.js';
import type { App } from '../../store/schema.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext, OneOffProcess, OneOffRequest } from '../context.js';
import { type OpenStreams, openStreams } from '../open-streams.js';

export const MAX_COMMAND_BYTES = 64 * 1024;
/** WebSocket close codes: 1000 done, 1008 a request we refuse, 1011 our own failure. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_POLICY = 1008;
export const CLOSE_INTERNAL = 1011;
/** Output is paused above this much unsent data and resumed below LOW_WATER: a slow client
 * slows the command down (its pipe fills) instead of growing our memory. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
/** Unwritten stdin above which we stop reading the client's messages. */
const STDIN_HIGH_WATER = 4 * 1024 * 1024;
/** After the client went away: SIGHUP (what a closed terminal sends), then SIGKILL. */
const HANGUP_GRACE_MS = 5000;
/** How long a session waits for its first message (what to run): a socket let in by the
 * access check is not kept idle, holding a decision that may no longer hold. A setting
 * rather than a constant only so that tests need not wait the whole time. */
export const runTimeouts = { firstMessageMs: 30_000 };

const PROTOCOL = `WebSocket (send Upgrade: websocket; a plain GET answers 400).
Client → server: first a text message {"command": ["argv", ...] | "string run with sh -c", "tty": bool, "cols"?: n, "rows"?: n};
then binary messages are stdin bytes, and text messages {"type":"eof"} (close stdin), {"type":"resize","cols":n,"rows":n},
{"type":"signal","signal":"SIGINT"|"SIGTERM"|"SIGHUP"|"SIGQUIT"}.
Server → client: binary messages whose first byte is the channel (1 stdout, 2 stderr) followed by output bytes;
finally the text message {"type":"exit","code":n|null,"signal":s|null} and close 1000.
Errors: {"type":"error","error":{"code","message"}} then close 1008 (refused) or 1011.
Closing the socket early sends SIGHUP to the command, then SIGKILL.
The first message must arrive within 30 seconds. Access is decided again right before the command starts,
and the session ends (error, close 1008, the command hung up on) when the caller's access ends: account disabled,
token revoked or expired, taken out of the app's team or made a viewer, the app destroyed or moved to another team.`;

export function runRoutes(api: Api, ctx: ApiContext): void {
  const streams = openStreams(api, ctx);
  api.route({
    method: 'GET',
    url: '/v1/apps/:name/run',
    // A one-off runs with the app's config and can change its data: a member's to do.
    // The access hook answers before the upgrade: a missing app is a plain 404, as on every route.
    config: { access: 'app.write' },
    schema: {
      summary: "Run a one-off command in the app's sandbox with its current release and config",
      description: PROTOCOL,
      params: AppNameParams,
      response: errorResponses,
    },
    handler: async () => {
      throw new UserError(
        'bad_request',
        'this route speaks WebSocket: connect with Upgrade: websocket (petri run does)',
      );
    },
    wsHandler: (socket, req) => {
      new RunSession(socket, targetApp(req), ctx, req, streams).listen();
    },
  });
}

/** The first message, validated: argv of strings without NUL, 64 KiB at most. */
export function parseRunRequest(text: string): OneOffRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new UserError('bad_request', 'the first message must be JSON: {"command": [...], "tty": false}');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new UserError('bad_request', 'the first message must be a JSON object with a command');
  }
  const { command, tty, cols, rows } = body as Record<string, unknown>;
  const argv = typeof command === 'string' ? ['sh', '-c', command] : command;
  if (!Array.isArray(argv) || argv.length === 0 || (typeof command === 'string' && command.trim() === '')) {
    throw new UserError(
      'bad_request',
      "command must be a non-empty array of strings or a string run with 'sh -c'",
    );
  }
  let bytes = 0;
  for (const arg of argv) {
    if (typeof arg !== 'string')
      throw new UserError('bad_request', 'every command argument must be a string');
    if (arg.includes('\0')) throw new UserError('bad_request', 'command arguments must not contain NUL');
    bytes += Buffer.byteLength(arg) + 1;
  }
  if (bytes > MAX_COMMAND_BYTES) {
    throw new UserError('bad_request', `command must be at most ${MAX_COMMAND_BYTES} bytes, got ${bytes}`);
  }
  if (tty !== undefined && typeof tty !== 'boolean')
    throw new UserError('bad_request', 'tty must be true or false');
  const request: OneOffRequest = { command: argv as string[], tty: tty === true };
  if (cols !== undefined || rows !== undefined) {
    request.cols = terminalDimension('cols', cols);
    request.rows = terminalDimension('rows', rows);
  }
  return request;
}

export function parseControl(text: string): RunControl {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new UserError('bad_request', 'control messages must be JSON objects with a type');
  }
  switch (body?.type) {
    case 'eof':
      return { type: 'eof' };
    case 'resize':
      return {
        type: 'resize',
        cols: terminalDimension('cols', body.cols),
        rows: terminalDimension('rows', body.rows),
      };
    case 'signal': {
      const signal = RUN_SIGNALS.find((s) => s === body.signal);
      if (!signal) throw new UserError('bad_request', `signal must be one of ${RUN_SIGNALS.join(', ')}`);
      return { type: 'signal', signal };
    }
    default:
      throw new UserError('bad_request', 'control message type must be eof, resize or signal');
  }
}

function terminalDimension(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 10_000) {
    throw new UserError('bad_request', `${name} must be an integer from 1 to 10000`);
  }
  return value;
}

/** One connection: the command's life from the first message to the exit message. */
class RunSession {
  private proc: OneOffProcess | undefined;
  private starting = false;
  /** Messages that arrived while the command was starting, applied once it runs. */
  private readonly early: Array<{ data: RawData; isBinary: boolean }> = [];
  private exited = false;
  private hungUp = false;
  private outputPaused = false;
  /** Why the caller's access ended (open-streams.ts), once it did: nothing starts after. */
  private accessEnded: UserError | undefined;

  constructor(
    private readonly socket: WebSocket,
    private readonly app: App,
    private readonly ctx: ApiContext,
    private readonly req: FastifyRequest,
    private readonly streams: OpenStreams,
  ) {}

  /** Who the session runs for, and as what: decided again before the start and while open. */
  private get grant(): StreamGrant {
    return {
      userId: this.req.user.id,
      tokenId: this.req.token?.id ?? null,
      appId: this.app.id,
      appName: this.app.name,
      access: 'app.write',
    };
  }

  listen(): void {
    // The session lasts as long as the caller's access: ended when it ends, at once.
    const done = this.streams.add(
      { ...this.grant, end: (reason) => this.endAccess(reason) },
      this.app.team_id,
    );
    const idle = setTimeout(
      () =>
        this.fail(
          new UserError(
            'request_timeout',
            `no command arrived within ${runTimeouts.firstMessageMs / 1000} seconds; send the request as the first message`,
          ),
        ),
      runTimeouts.firstMessageMs,
    );
    // Bound to the request's context: the socket's events come from outside it, and the
    // run's audit event names the request it belongs to (api/audit-hooks.ts).
    this.socket.on(
      'message',
      AsyncResource.bind((data: RawData, isBinary: boolean) => {
        if (this.proc) this.apply(this.proc, data, isBinary);
        else if (this.starting) this.early.push({ data, isBinary });
        else {
          clearTimeout(idle);
          this.starting = true;
          void this.start(data, isBinary);
        }
      }),
    );
    this.socket.on('close', () => {
      clearTimeout(idle);
      done();
      this.hangUp();
    });
  }

  private async start(data: RawData, isBinary: boolean): Promise<void> {
    let request: OneOffRequest;
    let proc: OneOffProcess;
    try {
      if (isBinary) throw new UserError('bad_request', 'the first message must be text: the JSON request');
      request = parseRunRequest(rawText(data));
      // Decided again right before the command starts with the app's release and secrets:
      // the socket may have been opened long ago, by someone who has since lost access.
      const check = (await recheckGrants(this.ctx.db, [this.grant]))[0]!;
      if (!check.ok) throw check.reason;
      if (this.accessEnded) throw this.accessEnded;
      proc = await this.ctx.runOneOff(this.app, request);
    } catch (err) {
      return this.fail(err);
    }
    this.proc = proc;
    // Not the command line: it may carry a secret typed by hand.
    await recordAudit(this.ctx.db, { name: this.req.user.name, ip: this.req.ip }, 'app.run', this.app.name, {
      program: request.command[0],
      tty: request.tty,
    }).catch((err: unknown) => this.req.log.error({ err }, 'recording the audit event failed'));
    // Access ended while the command was starting: it is hung up on as soon as it runs.
    if (this.accessEnded) return this.hangUp();
    this.pipeOutput(proc);
    for (const message of this.early.splice(0)) this.apply(proc, message.data, message.isBinary);
    if (this.socket.readyState !== this.socket.OPEN) this.hangUp();

    const result = await proc.wait().catch((err: unknown) => {
      this.req.log.error({ err, app: this.app.name }, 'one-off failed');
      return undefined;
    });
    this.exited = true;
    if (!result) return this.close(CLOSE_INTERNAL);
    // All output before the exit message.
    await Promise.all([finished(proc.stdout), finished(proc.stderr)].map((p) => p.catch(() => {})));
    const exit: RunExitMessage = { type: 'exit', code: result.exitCode, signal: result.signal };
    this.send(JSON.stringify(exit));
    this.close(CLOSE_NORMAL);
  }

  private apply(proc: OneOffProcess, data: RawData, isBinary: boolean): void {
    if (isBinary) {
      if (proc.stdin.writableEnded) return; // after eof: nowhere to go
      proc.stdin.write(rawBuffer(data));
      // A command that reads slowly slows the client: stop reading the socket until stdin
      // drains. Only past a generous buffer, because a paused socket also holds back the
      // control messages (a signal for a command that stopped reading is the usual case).
      if (proc.stdin.writableLength > STDIN_HIGH_WATER && !this.socket.isPaused) {
        this.socket.pause();
        const resume = () => {
          proc.stdin.off('drain', resume).off('close', resume);
          this.socket.resume();
        };
        proc.stdin.on('drain', resume).on('close', resume);
      }
      return;
    }
    let message: RunControl;
    try {
      message = parseControl(rawText(data));
    } catch (err) {
      // A bad control message is reported and ignored: the command runs on.
      this.send(JSON.stringify(errorMessageBody(err)));
      return;
    }
    if (message.type === 'eof') proc.stdin.end();
    else if (message.type === 'resize') proc.resize(message.cols, message.rows);
    else proc.signal(message.signal);
  }

  private pipeOutput(proc: OneOffProcess): void {
    const streams = [proc.stdout, proc.stderr];
    const resume = () => {
      if (this.outputPaused && this.socket.bufferedAmount < LOW_WATER) {
        this.outputPaused = false;
        for (const s of streams) s.resume();
      }
    };
    streams.forEach((stream, i) => {
      const channel = i === 0 ? CHANNEL_STDOUT : CHANNEL_STDERR;
      stream.on('data', (chunk: Buffer | string) => {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        if (this.socket.readyState !== this.socket.OPEN) return;
        this.socket.send(Buffer.concat([Buffer.from([channel]), bytes]), { binary: true }, resume);
        if (this.socket.bufferedAmount > HIGH_WATER) {
          this.outputPaused = true;
          for (const s of streams) s.pause();
        }
      });
      stream.on('error', (err) => this.req.log.warn({ err }, 'reading one-off output failed'));
    });
  }

  /** The caller's access ended (disabled, token revoked, out of the team, app gone): the
   * client is told why, the socket closed, and a running command hung up on. */
  private endAccess(reason: UserError): void {
    this.accessEnded = reason;
    this.send(JSON.stringify(errorMessageBody(reason)));
    this.close(CLOSE_POLICY);
    this.hangUp();
  }

  /** The client went away before the command ended: hang up on it like a closed terminal. */
  private hangUp(): void {
    const proc = this.proc;
    if (!proc || this.exited || this.hungUp) return;
    this.hungUp = true;
    // Nobody reads the output any more: let it flow so the command never blocks on a pipe.
    for (const s of [proc.stdout, proc.stderr]) s.resume();
    proc.stdin.end();
    proc.signal('SIGHUP');
    const timer = setTimeout(() => proc.signal('SIGKILL'), HANGUP_GRACE_MS);
    void proc.wait().finally(() => clearTimeout(timer));
  }

  private fail(err: unknown): void {
    if (!isUserError(err)) this.req.log.error({ err, app: this.app.name }, 'starting a one-off failed');
    this.send(JSON.stringify(errorMessageBody(err)));
    this.close(isUserError(err) ? CLOSE_POLICY : CLOSE_INTERNAL);
  }

  private send(text: string): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(text);
  }

  private close(code: number): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(code);
  }
}

function errorMessageBody(err: unknown): RunErrorMessage {
  if (isUserError(err)) return { type: 'error', error: { code: err.code, message: err.message } };
  return {
    type: 'error',
    error: { code: 'internal', message: 'internal error; the server log has the details' },
  };
}

function rawBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function rawText(data: RawData): string {
  return rawBuffer(data).toString('utf8');
}

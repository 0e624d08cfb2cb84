// `petri run` over the API's WebSocket (/v1/apps/NAME/run): send what to run, then stdin
// and control messages; receive output on two channels and, last, how the command exited.
// Knows nothing about terminals: the CLI decides what stdin is and where output goes.
import WebSocket from 'ws';
import {
  CHANNEL_STDERR,
  CHANNEL_STDOUT,
  type RunErrorMessage,
  type RunExitMessage,
  type RunSignal,
  type RunStart,
} from '../contract/index.js';
import { ERROR_CODES } from '../lib/errors.js';
import { ApiError, apiErrorFrom, ConnectionError, networkErrorCode } from './errors.js';

export { CHANNEL_STDERR, CHANNEL_STDOUT, type RunSignal };

export interface RunLogin {
  /** Where the API listens, e.g. http://127.0.0.1:7070 (a path prefix is kept). */
  url: string;
  token: string;
  userAgent?: string;
}

/** What to run (the protocol's first message) in which app. */
export interface RunRequest extends RunStart {
  app: string;
}

export type RunExit = Omit<RunExitMessage, 'type'>;

export interface RunHandlers {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
  /** The command ended; the connection closes after this. */
  exit(result: RunExit): void;
  /** The run failed or could not start (ApiError, ConnectionError); no exit follows. */
  error(err: Error): void;
}

export interface RunSession {
  writeStdin(chunk: Buffer | Uint8Array | string): void;
  /** Closes the command's stdin. */
  eof(): void;
  resize(cols: number, rows: number): void;
  signal(signal: RunSignal): void;
  /** Drops the connection: the server hangs up on the command (SIGHUP, then SIGKILL). */
  close(): void;
  /** Resolves once the connection is closed, whichever way. */
  closed: Promise<void>;
}

/** Opens the run; everything after comes through the handlers, each outcome exactly once. */
export function openRun(login: RunLogin, request: RunRequest, handlers: RunHandlers): RunSession {
  const base = login.url.replace(/\/+$/, '');
  const wsUrl = `${base.replace(/^http/, 'ws')}/v1/apps/${encodeURIComponent(request.app)}/run`;
  const socket = new WebSocket(wsUrl, {
    headers: { authorization: `Bearer ${login.token}`, 'user-agent': login.userAgent ?? 'petri-client' },
  });
  let settled = false;
  const settle = (outcome: () => void) => {
    if (settled) return;
    settled = true;
    outcome();
  };
  const fail = (err: Error) => settle(() => handlers.error(err));
  // Frames the caller sends before the socket opens wait here, after the request.
  const queue: Array<Buffer | string> = [];
  const send = (data: Buffer | string) => {
    if (socket.readyState === WebSocket.CONNECTING) queue.push(data);
    else if (socket.readyState === WebSocket.OPEN) socket.send(data);
  };

  socket.on('open', () => {
    const { app: _app, ...first } = request;
    socket.send(JSON.stringify(first));
    for (const data of queue.splice(0)) socket.send(data);
  });
  // The server refused the upgrade: its answer is a normal API error (401, 404 ...).
  socket.on('unexpected-response', (_req, res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      body += chunk;
    });
    res.on('end', () => {
      fail(apiErrorFrom(res.statusCode ?? 0, body, base));
      socket.terminate();
    });
    res.on('error', (err) => fail(new ConnectionError(base, errorCode(err), { cause: err })));
  });
  socket.on('message', (data, isBinary) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      const channel = bytes[0];
      if (channel === CHANNEL_STDOUT) handlers.stdout(bytes.subarray(1));
      else if (channel === CHANNEL_STDERR) handlers.stderr(bytes.subarray(1));
      return;
    }
    // Read defensively (fields may be missing): what a server of another version sends.
    let message: Partial<RunExitMessage> | Partial<RunErrorMessage>;
    try {
      message = JSON.parse(bytes.toString('utf8'));
    } catch {
      return; // not ours to understand; the protocol only sends JSON text
    }
    if (message.type === 'exit') {
      settle(() => handlers.exit({ code: message.code ?? null, signal: message.signal ?? null }));
    } else if (message.type === 'error') {
      const code = message.error?.code ?? 'internal';
      const status = (ERROR_CODES as Record<string, number>)[code] ?? 500;
      fail(new ApiError(status, code, message.error?.message ?? 'the run failed'));
    }
  });
  socket.on('error', (err) => fail(new ConnectionError(base, errorCode(err), { cause: err })));
  const closed = new Promise<void>((resolve) => {
    socket.on('close', (code, reason) => {
      fail(
        new ConnectionError(
          base,
          `the connection closed before the command ended (${code}${reason.length ? ` ${reason}` : ''})`,
        ),
      );
      resolve();
    });
  });

  return {
    writeStdin: (chunk) => send(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)),
    eof: () => send(JSON.stringify({ type: 'eof' })),
    resize: (cols, rows) => send(JSON.stringify({ type: 'resize', cols, rows })),
    signal: (signal) => send(JSON.stringify({ type: 'signal', signal })),
    close: () => {
      if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
      else socket.close(1000);
    },
    closed,
  };
}

function errorCode(err: unknown): string {
  return networkErrorCode(err) ?? (err instanceof Error ? err.message : String(err));
}

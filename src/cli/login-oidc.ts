// `petri login` with the organisation's single sign-on: in a browser (the provider redirects
// to a listener of ours on 127.0.0.1 on a random port, RFC 8252), or with `--device`, a code
// typed on the provider's page from any device. The server is the OIDC client; the CLI
// carries the redirect's code to it with a secret only this process knows, so a code seen
// by someone else (the browser's history, another local process) signs no one in.
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PetriClient } from '../client/index.js';
import type { SignedIn } from '../client/types.js';
import { UserError } from '../lib/errors.js';
import { escapeHtml } from '../lib/html.js';
import { type Context, newClient, USER_AGENT } from './context.js';
import { browserCommand, launch } from './open.js';
import { UsageError } from './output.js';

export interface OidcLogin {
  url: string;
  token: string;
  user: SignedIn['user'];
}

/** How long the browser sign-in may take before the CLI gives up. */
export const BROWSER_TIMEOUT_MS = 5 * 60_000;
const CALLBACK_PATH = '/callback';

/** A secret for the flow, and the hash the server keeps of it. */
function flowSecret(): { secret: string; secretHash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, secretHash: createHash('sha256').update(secret).digest('hex') };
}

function anonymousClient(url: string): Promise<PetriClient> {
  return newClient({ url, token: '', userAgent: USER_AGENT });
}

interface Callback {
  params: URLSearchParams;
  /** Answers the browser's tab (once the sign-in is done or failed). */
  answer(status: number, title: string, text: string): void;
}

export async function loginWithBrowser(
  ctx: Context,
  url: string,
  opts: { timeoutMs?: number } = {},
): Promise<OidcLogin> {
  const client = await anonymousClient(url);
  const { secret, secretHash } = flowSecret();
  let resolveCallback!: (cb: Callback) => void;
  const callback = new Promise<Callback>((resolve) => {
    resolveCallback = resolve;
  });
  let handled = false;
  /** The state of the sign-in in progress (from the authorize URL): only its answer counts. */
  let expectedState: string | null = null;
  // Imported here, not with the CLI: importing node:http costs every command ~70 ms (Node.js
  // loads its copy of undici for the module's WebSocket exports).
  const { createServer } = await import('node:http');
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const at = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || at.pathname !== CALLBACK_PATH) {
      page(res, 404, 'Not found', 'This is Petri’s sign-in listener; nothing else is here.');
      return;
    }
    if (handled) {
      page(res, 409, 'Already used', 'This sign-in was already answered; look at your terminal.');
      return;
    }
    // Anything else reaching the listener (a page in the browser calling it, a guess) is
    // turned away without ending the sign-in it does not belong to.
    if (expectedState === null || at.searchParams.get('state') !== expectedState) {
      page(res, 400, 'Not this sign-in', 'This answer does not belong to the sign-in in progress.');
      return;
    }
    handled = true;
    resolveCallback({
      params: at.searchParams,
      answer: (status, title, text) => page(res, status, title, text),
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const timeoutMs = opts.timeoutMs ?? BROWSER_TIMEOUT_MS;
  const cancel = cancellation(
    ctx,
    timeoutMs,
    `the sign-in did not finish in the browser within ${Math.max(1, Math.round(timeoutMs / 60_000))} minutes; run 'petri login' again`,
  );
  try {
    const started = await client.oidcStart({
      redirectUri: `http://127.0.0.1:${port}${CALLBACK_PATH}`,
      secretHash,
    });
    expectedState = new URL(started.authorizeUrl).searchParams.get('state');
    ctx.out.note(
      `Opening your browser to sign in; if it does not open, visit:\n\n  ${started.authorizeUrl}\n`,
    );
    const command = browserCommand(ctx.io.env, started.authorizeUrl);
    if (command) {
      const failure = await launch(command);
      if (failure) ctx.out.warn(`could not start ${command[0]} (${failure}); open the URL above yourself`);
    }
    ctx.out.note('Waiting for the sign-in to finish in the browser (Ctrl-C to cancel) ...');
    const cb = await Promise.race([callback, cancel.promise]);
    const { params } = cb;
    const error = params.get('error');
    if (error) {
      const why = params.get('error_description') ?? error;
      cb.answer(400, 'Sign-in failed', `The sign-in provider said: ${why}. Look at your terminal.`);
      throw new UserError('unauthorized', `the sign-in provider refused the sign-in: ${why}`);
    }
    const code = params.get('code');
    const state = params.get('state') ?? '';
    if (!code) {
      cb.answer(400, 'Sign-in failed', 'The sign-in provider sent no code. Look at your terminal.');
      throw new UserError(
        'unauthorized',
        "the sign-in provider answered without a code; run 'petri login' again",
      );
    }
    const iss = params.get('iss');
    try {
      const done = await client.oidcFinish({
        flow: started.flow,
        state,
        code,
        secret,
        ...(iss ? { iss } : {}),
      });
      cb.answer(
        200,
        'Signed in',
        `Signed in to Petri as ${done.user.email ?? done.user.name}. You can close this tab.`,
      );
      return { url, token: done.token, user: done.user };
    } catch (err) {
      cb.answer(400, 'Sign-in failed', `${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  } finally {
    cancel.dispose();
    server.closeAllConnections();
    server.close();
  }
}

export async function loginWithDevice(ctx: Context, url: string): Promise<OidcLogin> {
  const client = await anonymousClient(url);
  const { secret, secretHash } = flowSecret();
  const started = await client.deviceStart({ secretHash });
  const where = started.verificationUriComplete ?? started.verificationUri;
  ctx.out.note(
    `To sign in, open ${started.verificationUri} on any device and enter the code\n\n  ${started.userCode}\n` +
      (started.verificationUriComplete ? `\n(or open ${where})\n` : ''),
  );
  const deadline = Date.now() + started.expiresIn * 1000;
  const expired = "the code expired before it was entered; run 'petri login --device' again";
  const cancel = cancellation(ctx, started.expiresIn * 1000, expired);
  let interval = started.interval;
  let waited = 0;
  const sleeping = new AbortController();
  try {
    for (;;) {
      await Promise.race([sleep(interval * 1000, undefined, { signal: sleeping.signal }), cancel.promise]);
      const answer = await client.devicePoll({ flow: started.flow, secret });
      if (answer.status === 'done' && answer.token && answer.user) {
        return { url, token: answer.token, user: answer.user };
      }
      interval = answer.interval ?? interval;
      waited++;
      if (Date.now() >= deadline) break;
      if (waited % 6 === 1)
        ctx.out.note(
          `Waiting for the code to be entered (expires in ${Math.ceil((deadline - Date.now()) / 1000)} s) ...`,
        );
    }
  } finally {
    sleeping.abort();
    cancel.dispose();
  }
  throw new UserError('request_timeout', expired);
}

/** Rejects on Ctrl-C, when stdout closes, or after `ms`; dispose() removes the handlers. */
function cancellation(
  ctx: Context,
  ms: number,
  timeout: string,
): { promise: Promise<never>; dispose: () => void } {
  let reject!: (err: Error) => void;
  const promise = new Promise<never>((_, r) => {
    reject = r;
  });
  promise.catch(() => {}); // raced: whoever loses must not become an unhandled rejection
  const onSigint = () => reject(new UsageError('sign-in cancelled'));
  const onAbort = () => reject(new UsageError('sign-in cancelled'));
  const timer = setTimeout(() => reject(new UserError('request_timeout', timeout)), ms);
  process.once('SIGINT', onSigint);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  return {
    promise,
    dispose: () => {
      clearTimeout(timer);
      process.removeListener('SIGINT', onSigint);
      ctx.signal.removeEventListener('abort', onAbort);
    },
  };
}

function page(res: ServerResponse, status: number, title: string, text: string): void {
  const html = escapeHtml;
  const body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Petri: ${html(title)}</title></head><body style="font-family:sans-serif;margin:3em auto;max-width:36em"><h1>${html(title)}</h1><p>${html(text)}</p></body></html>\n`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(body);
}

// The pages HAProxy answers with itself: unknown host (404), app down (503), API down (503),
// an app's own answer (expired or archived: 410), and the gate's refusal of a request that is
// not a GET (401).
// Pure: file name -> content. HAProxy reads them when it loads a config, so they are written
// before the config that names them is validated.
import type { RouteAnswer } from './router.js';
import type { AppRoute } from './routes.js';

export interface PageOptions {
  apiHost: string;
  domain: string;
}

/** Seconds a client should wait before retrying a down app: about one instance start. */
export const RETRY_AFTER_SECONDS = 5;

export const NOT_FOUND_PAGE = '404.html';
export const API_DOWN_PAGE = '503-api.http';
/** The gate's pages (/.petri/... on an app's host) while the control plane is down. */
export const GATE_DOWN_PAGE = '503-gate.http';

/** A pool backend's 503 (pool.ts), while no instance and no waker answers: names no app, as
 * the pool backend is anyone's. */
export const POOL_DOWN_PAGE = '503-app.http';

export function appDownPage(app: string): string {
  return `503-app-${app}.http`;
}

/** The body HAProxy answers for an app with an answer of its own (see answerStatus). */
export function appAnswerPage(app: string): string {
  return `answer-${app}.html`;
}

/** The gate's answer to a request without a valid cookie that a redirect would lose (a POST,
 * a fetch): 401, asking to reload. */
export const GATE_REFUSED_PAGE = '401-gate.html';

/** The status of a page answer: 410, an experiment that ended. */
export function answerStatus(_answer: Exclude<RouteAnswer, { kind: 'redirect' }>): number {
  return 410;
}

export function renderPages(opts: PageOptions, apps: readonly AppRoute[]): Map<string, string> {
  const pages = new Map<string, string>();
  pages.set(
    NOT_FOUND_PAGE,
    html(
      'No app here',
      `<p>There is no app at this address on <strong>${escapeHtml(opts.domain)}</strong>.</p>
<p>Check the spelling of the URL, or list your apps with <code>petri apps</code>.</p>`,
    ),
  );
  pages.set(
    API_DOWN_PAGE,
    errorResponse(
      html(
        'Petri is restarting',
        `<p>The Petri control plane at <strong>${escapeHtml(opts.apiHost)}</strong> is not answering.</p>
<p>Apps keep serving; try again in a few seconds.</p>`,
      ),
    ),
  );
  pages.set(
    GATE_DOWN_PAGE,
    errorResponse(
      html(
        'Sign-in is briefly unavailable',
        `<p>Petri, which shows this experiment's notice and signs its visitors in, is not answering right now.</p>
<p>Try again in a few seconds. If you have been here before today, the experiment itself may still open.</p>`,
      ),
    ),
  );
  pages.set(
    GATE_REFUSED_PAGE,
    html(
      'Please reload the page',
      `<p>This experiment lets in only the visitors it was made for, and your pass to it has expired or is not valid.</p>
<p>Reload the page to sign in again (what you sent was not kept).</p>`,
    ),
  );
  pages.set(
    POOL_DOWN_PAGE,
    errorResponse(
      html(
        'App not running',
        `<p>This app on ${escapeHtml(opts.domain)} is not running right now (it is down, stopped or starting).</p>
<p>Try again in a few seconds. If you own it, see <code>petri ps</code> and <code>petri logs</code>.</p>`,
      ),
    ),
  );
  // Pages of their own only for the apps the router answers for: any other app's page would
  // change the fingerprint, and so reload, whenever an app comes or goes.
  for (const app of apps) {
    if (app.answer === undefined) continue;
    pages.set(appDownPage(app.app), errorResponse(appDownHtml(opts, app.app)));
    if (app.answer.kind !== 'redirect')
      pages.set(appAnswerPage(app.app), answerHtml(opts, app.app, app.answer));
  }
  return pages;
}

/** The page of an experiment that ended (HAProxy's answer, and the waker's). */
export function answerHtml(
  opts: PageOptions,
  app: string,
  answer: Exclude<RouteAnswer, { kind: 'redirect' }>,
): string {
  const name = `<strong>${escapeHtml(app)}</strong>`;
  const owner = `<strong>${escapeHtml(answer.owner)}</strong>`;
  const where = escapeHtml(opts.domain);
  const code = (text: string) => `<code>${escapeHtml(text)}</code>`;
  if (answer.kind === 'expired') {
    return html(
      'This experiment has ended',
      `<p>The experiment ${name} on ${where}, owned by ${owner}, expired on ${escapeHtml(readableTime(answer.since))} and is stopped.</p>
<p>Its data is kept. If you own it or are in its team, ${code(`petri apps renew ${app}`)} brings it back as it was; otherwise, ask ${owner}.</p>`,
    );
  }
  return html(
    'This experiment was archived',
    `<p>The experiment ${name} on ${where}, owned by ${owner}, expired and was archived on ${escapeHtml(readableTime(answer.since))}: it no longer runs here.</p>
<p>Its name stays with its team. Ask ${owner} if you need what it did.</p>`,
  );
}

/** 2027-03-01 00:00 UTC: what a visitor reads, from a stored ISO time. */
function readableTime(iso: string): string {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? iso : `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** The page of an app that is not running (HAProxy's errorfile, and the waker's answer). */
export function appDownHtml(opts: PageOptions, app: string): string {
  return html(
    'App not running',
    `<p>The app <strong>${escapeHtml(app)}</strong> on ${escapeHtml(opts.domain)} is not running right now (it is down, stopped or starting).</p>
<p>Try again in a few seconds. If you own it, see <code>petri ps -a ${escapeHtml(app)}</code> and <code>petri logs -a ${escapeHtml(app)}</code>.</p>`,
  );
}

/** The waker's answer when a sleeping app did not become healthy in time. */
export function wakingHtml(opts: PageOptions, app: string): string {
  return html(
    'Waking up',
    `<p>The experiment <strong>${escapeHtml(app)}</strong> on ${escapeHtml(opts.domain)} was asleep and is waking up, or failing to: it did not answer in time.</p>
<p>Try again in a few seconds. If you own it, <code>petri logs -a ${escapeHtml(app)}</code> says why.</p>`,
  );
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function html(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)} · Petri</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
<hr><p><small>Petri</small></p>
</body>
</html>
`;
}

/** An HAProxy errorfile is a whole HTTP response, sent as is. */
function errorResponse(body: string): string {
  return [
    'HTTP/1.1 503 Service Unavailable',
    'Content-Type: text/html; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `Retry-After: ${RETRY_AFTER_SECONDS}`,
    'Cache-Control: no-store',
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

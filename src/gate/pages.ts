// The gate's pages, served under an app's own host at /.petri/...: the notice a visitor reads
// before their first request reaches a staff or invite app (with Continue and No thanks), and
// the short pages around it (signed out, declined, a link that no longer works).
//
// Pure: input -> HTML. Everything interpolated is escaped. The pages load nothing from
// anywhere (no script, no font, no image; the one style sheet is inline and allowed by its
// hash in the Content-Security-Policy), read on a phone (viewport, one column, large tap
// targets), work with the keyboard alone (real buttons in a real form, a visible focus ring)
// and keep text at a contrast of at least 7:1 (buttons 4.5:1 or more).
import { createHash } from 'node:crypto';
import { escapeHtml } from '../lib/html.js';
import type { DataClass } from '../store/schema.js';

export { escapeHtml };

const STYLE = `*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:1.0625rem;line-height:1.5;color:#1b1b1b;background:#fff;max-width:40rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .25rem}
p,dd{margin:.25rem 0 .75rem}
dl{margin:0}
dt{font-weight:600;margin-top:.75rem}
dd{margin-left:0}
.tag{display:inline-block;background:#fff3c4;color:#3d2e00;border:1px solid #8a6d00;border-radius:.25rem;padding:.1rem .5rem;font-weight:600}
.note{white-space:pre-wrap}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.5rem}
button{font:inherit;font-weight:600;min-height:2.75rem;padding:.5rem 1.25rem;border-radius:.375rem;cursor:pointer}
.go{background:#0b4fb3;color:#fff;border:2px solid #0b4fb3}
.no{background:#fff;color:#1b1b1b;border:2px solid #4a4a4a}
button:focus-visible,a:focus-visible{outline:3px solid #b8420f;outline-offset:2px}
a{color:#0b4fb3}
a.button{display:inline-block;text-decoration:none;font-weight:600;min-height:2.75rem;padding:.6rem 1.25rem;border-radius:.375rem}
a.button.go{background:#0b4fb3;color:#fff;border:2px solid #0b4fb3}
label{font-weight:600}
input[type=text],input[type=password]{font:inherit;width:100%;max-width:24rem;min-height:2.75rem;padding:.4rem .6rem;border:2px solid #4a4a4a;border-radius:.375rem;margin-top:.25rem}
input:focus-visible{outline:3px solid #b8420f;outline-offset:2px}
.error{border:2px solid #a40e26;background:#fff0f2;color:#5c0011;border-radius:.375rem;padding:.25rem 1rem;margin-bottom:1rem}
small{color:#4a4a4a}`;

/** The Content-Security-Policy of every gate page: nothing but the inline style above, no
 * script, forms only to this host, never framed (not even by the app under the same host). */
export const GATE_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

/** Headers every gate page is answered with. */
export function gateHeaders(): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': GATE_CSP,
    'cache-control': 'no-store',
    // An invite link's secret is in the URL: never sent on to anyone as a referrer.
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
  };
}

export interface NoticeInput {
  app: string;
  description: string;
  owner: { name: string; email: string | null };
  team: string;
  /** ISO time; null: no expiry (graduated). */
  expiresAt: string | null;
  dataClass: DataClass;
  privacyNote: string | null;
  retentionDays: number | null;
  /** Who the visitor is to Petri: an e-mail address, or 'an invite link'. */
  visitor: string;
  noticeVersion: number;
  /** The form's CSRF token. */
  csrf: string;
  /** Where Continue leads (already checked by safeNext). */
  next: string;
}

/** The notice, with the consent form (POST /.petri/consent). */
export function noticePage(n: NoticeInput): string {
  const e = escapeHtml;
  const owner = n.owner.email ? `${n.owner.name} (${n.owner.email})` : n.owner.name;
  const ask = n.owner.email
    ? `<a href="mailto:${e(encodeURIComponent(n.owner.email))}">${e(n.owner.email)}</a>`
    : e(n.owner.name);
  const expiry = n.expiresAt
    ? `It may end at any time, and ends on <strong>${e(readableDate(n.expiresAt))}</strong> unless it is renewed.`
    : 'It may end at any time.';
  const body = `<p><span class="tag">Experiment</span></p>
<h1 id="title">${e(n.app)}</h1>
<p>${n.description ? e(n.description) : '<em>Its owner has not described it yet.</em>'}</p>
<dl>
<dt>Made by</dt><dd>${e(owner)}, team ${e(n.team)}</dd>
<dt>This is an experiment</dt><dd>Nobody promises it works or stays available. ${expiry}</dd>
<dt>What data it keeps about you</dt><dd>${dataText(n.dataClass)}</dd>
${n.privacyNote ? `<dt>Why, and what for</dt><dd class="note">${e(n.privacyNote)}</dd>\n` : ''}<dt>How long it keeps it</dt><dd>${retentionText(n.retentionDays, n.dataClass)}</dd>
<dt>To have your data deleted, or to ask anything</dt><dd>Write to ${ask}.</dd>
</dl>
<p>If you continue, Petri records that <strong>${e(n.visitor)}</strong> agreed to this notice (version ${n.noticeVersion}), tells the experiment who you are, and asks again when the notice changes. You can withdraw at any time at <a href="/.petri/leave">/.petri/leave</a>.</p>
<form method="post" action="/.petri/consent" aria-labelledby="title">
<input type="hidden" name="csrf" value="${e(n.csrf)}">
<input type="hidden" name="next" value="${e(n.next)}">
<div class="actions">
<button class="go" type="submit" name="choice" value="continue">Continue</button>
<button class="no" type="submit" name="choice" value="decline">No thanks</button>
</div>
</form>`;
  return shell(`${n.app}: an experiment`, body);
}

/** A page with a title, a paragraph or two, and optionally one form button. */
export function messagePage(
  title: string,
  paragraphs: string[],
  form?: { action: string; csrf: string; label: string; next?: string },
  link?: { href: string; label: string },
): string {
  const e = escapeHtml;
  const text = paragraphs.map((p) => `<p>${e(p)}</p>`).join('\n');
  const more = link ? `\n<p><a href="${e(link.href)}">${e(link.label)}</a></p>` : '';
  const button = form
    ? `\n<form method="post" action="${e(form.action)}">
<input type="hidden" name="csrf" value="${e(form.csrf)}">${form.next ? `\n<input type="hidden" name="next" value="${e(form.next)}">` : ''}
<div class="actions"><button class="go" type="submit">${e(form.label)}</button></div>
</form>`
    : '';
  return shell(title, `<h1>${e(title)}</h1>\n${text}${more}${button}`);
}

export interface LoginInput {
  /** Where the person goes once signed in (a path on the API host, already checked). */
  next: string;
  /** Single sign-on is configured: its button is shown. */
  oidc: boolean;
  /** An LDAP directory is configured: the form takes a directory user name too. */
  ldap: boolean;
  /** What went wrong with the last try, said at the top of the page. */
  error?: string;
  /** The name typed last time (never the password). */
  login?: string;
  /** Why a sign-in is asked: the experiment the person is on the way to, if any. */
  forApp?: string;
}

/** Petri's sign-in page on the API host (GET /login): single sign-on's button, and the form
 * for local accounts (and LDAP's, when configured). */
export function loginPage(n: LoginInput): string {
  const e = escapeHtml;
  const nextQuery = n.next === '/' ? '' : `?next=${encodeURIComponent(n.next)}`;
  const error = n.error
    ? `<div role="alert" class="error"><p><strong>Not signed in:</strong> ${e(n.error)}</p></div>\n`
    : '';
  const why = n.forApp
    ? `<p>Sign in to continue to the experiment <strong>${e(n.forApp)}</strong>. If you were sent an invite link for it, open that link instead: it needs no account.</p>\n`
    : '';
  const sso = n.oidc
    ? `<p><a class="button go" href="/login/oidc${e(nextQuery)}">Sign in with your organisation’s account</a></p>
<h2>Or with a password</h2>\n`
    : '';
  const what = n.ldap ? 'E-mail or directory user name' : 'E-mail';
  const form = `<form method="post" action="/login/password">
<input type="hidden" name="next" value="${e(n.next)}">
<p><label for="login">${what}</label><br>
<input id="login" name="login" type="text" autocomplete="username" required maxlength="254" value="${e(n.login ?? '')}"></p>
<p><label for="password">Password</label><br>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"></p>
<div class="actions"><button class="${n.oidc ? 'no' : 'go'}" type="submit">Sign in</button></div>
</form>`;
  return shell(
    'Sign in',
    `${error}<h1>Sign in to Petri</h1>\n${why}${sso}${form}`,
    'where your organisation runs its experiments',
  );
}

function dataText(dataClass: DataClass): string {
  switch (dataClass) {
    case 'none':
      return 'None: it keeps no data about the people who use it.';
    case 'anonymous':
      return 'Only anonymous data: nothing it keeps says who you are.';
    case 'personal':
      return '<strong>Personal data</strong>: what it keeps can say who you are.';
    case 'sensitive':
      return '<strong>Sensitive personal data</strong> (such as health, beliefs or other special categories), reviewed by an administrator.';
  }
}

function retentionText(days: number | null, dataClass: DataClass): string {
  if (days !== null) return `${days} day${days === 1 ? '' : 's'}, then it is deleted.`;
  return dataClass === 'none' ? 'Nothing is kept.' : 'Its owner has not said; ask them.';
}

/** 2027-03-01: what a visitor reads, from a stored ISO time (the date in UTC). */
function readableDate(iso: string): string {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? iso : new Date(ms).toISOString().slice(0, 10);
}

function shell(
  title: string,
  body: string,
  footerFor = 'this experiment runs on, before the experiment itself',
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · Petri</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
<footer><p><small>Shown by Petri, the platform ${escapeHtml(footerFor)}.</small></p></footer>
</body>
</html>
`;
}

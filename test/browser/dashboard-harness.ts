// What every browser journey of the dashboard needs: Debian's Chromium, a person signed in
// on /login in a browser context of their own (with the CSP violations it saw), people
// invited with a password, axe-core's serious and critical findings, the 375 px check and
// screenshots in test-artifacts/. Shared by test/browser/dashboard*.test.ts.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { PetriClient } from '../../src/client/index.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const AXE = readFileSync(path.join(ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');
export const PASSWORD = 'correct horse battery staple';

/** Debian's Chromium, headless, never a downloaded browser. */
export async function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** A browser of its own (cookies and all) for one person signed in with PASSWORD on the
 * dashboard at `base`, with the CSP violations and page errors it saw. */
export async function personIn(
  browser: Browser,
  base: string,
  email: string,
  viewport = { width: 1280, height: 860 },
) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy|Refused to/i.test(msg.text()))
      problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.goto(`${base}/`);
  // Not signed in: the dashboard sends the person to the sign-in page, and back afterwards.
  await page.waitForURL(/\/login\?next=%2F$/);
  await page.fill('input[name="login"]', email);
  await page.fill('input[name="password"]', PASSWORD);
  await Promise.all([page.waitForURL(`${base}/`), page.press('input[name="password"]', 'Enter')]);
  await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
  return { context, page, problems };
}

/** An invited person who accepted with PASSWORD: a member of `team`, or an auditor. */
export async function newInvitedUser(
  admin: PetriClient,
  base: string,
  email: string,
  options: { team?: string; role?: 'auditor' | 'admin' } = {},
): Promise<void> {
  const invited = await admin.inviteUser({
    email,
    ...(options.team ? { team: options.team, teamRole: 'member' as const } : {}),
    ...(options.role ? { role: options.role } : {}),
  });
  await new PetriClient({ url: base, token: '' }).acceptInvitation(invited.link, PASSWORD);
}

/** axe-core's serious and critical findings on the page as it is now. */
export async function axeProblems(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const results = await (window as unknown as { axe: { run(): Promise<AxeResults> } }).axe.run();
    return results.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  });
  return found;
}
interface AxeResults {
  violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });
}

/** The page fits 375 px: nothing but the scrolling tables is wider than the screen. */
export async function fitsPhone(page: Page): Promise<void> {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width <= 375) return;
  // The outermost elements that stick out (those inside a scrolling box included), to say
  // what to fix.
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > 376)
      .filter((e) => !(e.parentElement && e.parentElement.getBoundingClientRect().right > 376))
      .slice(0, 5)
      .map(
        (e) =>
          `${e.tagName.toLowerCase()}.${e.className} (${Math.round(e.getBoundingClientRect().right)} px)`,
      ),
  );
  assert.fail(`the page ${page.url()} is ${width} px wide at 375 px: ${wide.join(', ')}`);
}

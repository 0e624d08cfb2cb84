// The audience gate in a real browser (Debian's Chromium through playwright-core) in front of
// a real app behind the real router: a person opens a staff app, is sent to Petri's sign-in,
// signs in with the organisation's single sign-on (the test OIDC provider), reads the
// experiment's notice, consents and sees the app, which knows who they are. The notice's
// screenshot is kept in test-artifacts/gate-notice.png; axe-core finds no serious or critical
// problem on the sign-in page and the notice, which also fit a 375 px screen.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { until } from '../../src/lib/until.js';
import { TestPetri, writeApp } from '../e2e/petri.js';
import { CLIENT_ID, CLIENT_SECRET, TestOidcProvider } from '../identity/oidc-provider.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const AXE = readFileSync(path.join(ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');

interface AxeResults {
  violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
}

async function axeProblems(page: Page): Promise<string[]> {
  // Run through the DevTools protocol, which the pages' CSP (no script at all) does not govern.
  await page.evaluate(AXE);
  return page.evaluate(async () => {
    const results = await (window as unknown as { axe: { run(): Promise<AxeResults> } }).axe.run();
    return results.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  });
}

describe('the gate in a browser', () => {
  let petri: TestPetri;
  let provider: TestOidcProvider;
  let browser: Browser;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    provider = await TestOidcProvider.start([
      { sub: 'sam', email: 'sam@example.org', email_verified: true, name: 'Sam', groups: ['staff'] },
    ]);
    petri = await TestPetri.start({
      identity: {
        oidc: {
          issuer: provider.issuer,
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          allowedGroups: ['staff'],
        },
      },
    });
    provider.allowRedirect(`http://petri.localhost:${petri.httpPort}/login/oidc/callback`);
    const run = async (...argv: string[]) => {
      const res = await petri.cli(argv);
      assert.equal(res.code, 0, `${argv.join(' ')}: ${res.stderr}`);
    };
    await run('apps', 'create', 'garden');
    await run(
      'apps',
      'set',
      'garden',
      'description=A shared planting calendar for the office plants, to see whether people water them more.',
      'data=personal',
      'privacy=Who watered which plant and when, to count the waterings per person.',
      'retention=90d',
    );
    await run(
      'deploy',
      writeApp({
        'package.json': JSON.stringify({ name: 'garden', scripts: { start: 'node server.js' } }),
        'server.js': `require('node:http').createServer((q, s) => {
  s.setHeader('content-type', 'text/html; charset=utf-8');
  s.end('<!doctype html><title>Garden</title><h1>Hello ' + (q.headers['x-petri-user'] || 'nobody') + '</h1>');
}).listen(Number(process.env.PORT));`,
      }),
      '--app',
      'garden',
    );
    await run('audience', 'set', 'staff', '--app', 'garden');
    await until(async () => (await petri.request('garden.petri.localhost', '/')).status === 302, {
      timeout: 15_000,
      message: 'the router to gate garden',
    });
    browser = await chromium.launch({
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
  });
  after(async () => {
    await browser?.close();
    await petri?.destroy();
    await provider?.stop();
  });

  test('visit, sign in, read the notice, consent, see the app', async () => {
    const context = await browser.newContext({ viewport: { width: 375, height: 800 } });
    const page = await context.newPage();
    const blocked: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' && /Content.Security.Policy|Refused to/i.test(msg.text()))
        blocked.push(msg.text());
    });
    await page.goto(`http://garden.petri.localhost:${petri.httpPort}/plants`);
    // Not signed in: Petri's sign-in page on the API host, saying where it leads.
    await page.waitForURL(new RegExp(`^http://petri\\.localhost:${petri.httpPort}/login\\?next=`));
    await page.getByRole('heading', { name: 'Sign in to Petri', level: 1 }).waitFor();
    assert.match((await page.textContent('main')) ?? '', /continue to the experiment garden/);
    assert.deepEqual(await axeProblems(page), []);
    await page.screenshot({ path: path.join(ARTIFACTS, 'gate-login.png'), fullPage: true });
    await page.getByRole('link', { name: /Sign in with your organisation/ }).click();
    // The provider's own pages (oidc-provider's development login and consent).
    await page.waitForURL(new RegExp(`^${provider.issuer}/`));
    await page.fill('input[name="login"]', 'sam');
    await page.fill('input[name="password"]', 'any password');
    await page.click('button[type="submit"]');
    const consentButton = page.locator('button[type="submit"]', { hasText: /continue/i });
    await page.waitForURL(
      (u) => u.hostname === 'garden.petri.localhost' || u.pathname.includes('interaction'),
    );
    if (page.url().includes('interaction')) await consentButton.click();
    // Back on the app's host: the notice.
    await page.waitForURL(new RegExp(`^http://garden\\.petri\\.localhost:${petri.httpPort}/\\.petri/gate`));
    await page.getByRole('heading', { name: 'garden', level: 1 }).waitFor();
    const notice = (await page.textContent('main')) ?? '';
    assert.match(notice, /shared planting calendar/);
    assert.match(notice, /This is an experiment/);
    assert.match(notice, /sam@example\.org agreed to this notice/);
    assert.deepEqual(await axeProblems(page), []);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `the notice is ${width} px wide on a 375 px screen`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'gate-notice.png'), fullPage: true });
    // Keyboard alone: Continue is the first button.
    await page.getByRole('button', { name: 'Continue' }).focus();
    await Promise.all([page.waitForURL(/\/plants$/), page.keyboard.press('Enter')]);
    assert.equal(await page.textContent('h1'), 'Hello sam@example.org');
    assert.deepEqual(blocked, []);
    await context.close();
  });
});

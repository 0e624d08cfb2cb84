// The dashboard through the router, as people reach it (http://petri.localhost:HTTP_PORT/),
// signed in with the organisation's single sign-on (the test OIDC provider): the sign-in
// page, the provider, back to the page asked for; a new app made on the page; sign out, and
// the dashboard asks to sign in again. Screenshots in test-artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { TestPetri } from '../e2e/petri.js';
import { CLIENT_ID, CLIENT_SECRET, TestOidcProvider } from '../identity/oidc-provider.js';
import { ensureDashboardBuilt } from './dashboard-build.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts');

describe('the dashboard with single sign-on, through the router', () => {
  let petri: TestPetri;
  let provider: TestOidcProvider;
  let browser: Browser;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await ensureDashboardBuilt();
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

  test('sign in with SSO, make an app, sign out', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const origin = `http://petri.localhost:${petri.httpPort}`;
    try {
      await page.goto(`${origin}/apps`);
      await page.waitForURL(`${origin}/login?next=%2Fapps`);
      await page.getByRole('link', { name: /Sign in with your organisation/ }).click();
      await page.waitForURL(new RegExp(`^${provider.issuer}/`));
      await page.fill('input[name="login"]', 'sam');
      await page.fill('input[name="password"]', 'any password');
      await page.click('button[type="submit"]');
      await page.waitForURL((u) => u.origin === origin || u.pathname.includes('interaction'));
      if (page.url().includes('interaction'))
        await page.locator('button[type="submit"]', { hasText: /continue/i }).click();
      // Back on the page asked for, signed in.
      await page.waitForURL(`${origin}/apps`);
      await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
      await page.getByText('sam@example.org').waitFor();
      await page.getByText('No apps yet').waitFor();

      await page.getByRole('button', { name: 'New app' }).click();
      await page.getByLabel('Name').fill('notes');
      await page.getByLabel('Description').fill('Shared meeting notes');
      await page.getByRole('button', { name: 'Create app' }).click();
      await page.getByRole('heading', { name: 'notes is ready to deploy' }).waitFor();
      await page.getByText(`petri login --url ${origin}`).waitFor();
      await page.getByRole('row', { name: /notes/ }).getByText('new').waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-sso-new-app.png'), fullPage: true });
      // A refused change says the API's message next to what was tried.
      await page.getByRole('button', { name: 'New app' }).click();
      await page.getByLabel('Name').fill('notes');
      await page.getByRole('button', { name: 'Create app' }).click();
      const refusal = (await page.getByRole('alert').textContent()) ?? '';
      assert.match(refusal, /^Could not create notes: .*notes/);

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(new RegExp(`^${origin}/login`));
      await page.goto(`${origin}/`);
      await page.waitForURL(`${origin}/login?next=%2F`);
    } finally {
      await context.close();
    }
  });
});

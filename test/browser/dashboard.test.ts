// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// `petri server` with a real app: people sign in on /login, see the app running, set a config
// var and see its release, roll back and see the router serve the old release, watch a line
// the app prints arrive in the live log; a member of another team is told the app is not
// found; an auditor exports the inventory. Every page is checked with axe-core (no serious
// or critical violation) and at 375 px; each journey saves a screenshot in test-artifacts/.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { PetriClient } from '../../src/client/index.js';
import { until } from '../../src/lib/until.js';
import { TestPetri, writeApp } from '../e2e/petri.js';
import { ensureDashboardBuilt } from './dashboard-build.js';
import * as harness from './dashboard-harness.js';
import { axeProblems, fitsPhone, launchChromium, shot } from './dashboard-harness.js';

let petri: TestPetri;
let browser: Browser;
let admin: PetriClient;

const personIn = (email: string, viewport?: { width: number; height: number }) =>
  harness.personIn(browser, petri.apiUrl, email, viewport);
const newInvitedUser = (email: string, options: { team?: string; role?: 'auditor' } = {}) =>
  harness.newInvitedUser(admin, petri.apiUrl, email, options);

describe('dashboard', () => {
  before(async () => {
    await ensureDashboardBuilt();
    petri = await TestPetri.start();
    admin = new PetriClient({ url: petri.apiUrl, token: petri.token });
    await admin.createTeam('lab');
    await newInvitedUser('ada@example.org', { team: 'lab' });
    await newInvitedUser('bob@example.org');
    await newInvitedUser('olga@example.org', { role: 'auditor' });
    // The app answers with its GREETING, so the release serving is seen through the router,
    // and prints a line for every request.
    const dir = writeApp({
      'package.json': JSON.stringify({ name: 'shop', scripts: { start: 'node server.js' } }),
      'server.js': `require('node:http').createServer((q, s) => {
  console.log('served ' + q.url);
  s.end('greeting: ' + (process.env.GREETING || 'none'));
}).listen(Number(process.env.PORT));`,
    });
    assert.equal((await petri.cli(['apps', 'create', 'shop', '--team', 'lab'])).code, 0);
    const deploy = await petri.cli(['deploy', dir, '--app', 'shop']);
    assert.equal(deploy.code, 0, deploy.stderr + deploy.stdout);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await petri?.destroy();
  });

  test('the page is served with caching headers and a strict CSP', async () => {
    const res = await fetch(`${petri.apiUrl}/apps/shop`);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const html = await res.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, html);
    const asset = await fetch(`${petri.apiUrl}${script}`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const again = await fetch(`${petri.apiUrl}${script}`, {
      headers: { 'if-none-match': asset.headers.get('etag') ?? '' },
    });
    assert.equal(again.status, 304);
    assert.equal((await fetch(`${petri.apiUrl}/assets/nothing.js`)).status, 404);
  });

  test('a member signs in, sees the app running, sets a config var, rolls back and watches its log', async () => {
    const { context, page, problems } = await personIn('ada@example.org');
    try {
      // Apps: the app, running, in its team.
      const row = page.getByRole('row', { name: /shop/ });
      await row.getByText('running').waitFor();
      assert.match((await row.textContent()) ?? '', /lab/);
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'apps');

      // Overview: URL, release, processes.
      await page.getByRole('link', { name: 'shop', exact: true }).click();
      await page.waitForURL(/\/apps\/shop$/);
      await page.getByText('http://shop.petri.localhost', { exact: false }).first().waitFor();
      await page.getByRole('heading', { name: 'Processes' }).waitFor();
      await page.getByRole('rowheader', { name: 'web.1' }).waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'app');

      // Config: set GREETING; a new release; the router serves it.
      await page.getByRole('link', { name: 'Config' }).click();
      await page.getByLabel('Key').fill('GREETING');
      await page.getByLabel('Value').fill('hello');
      await page.getByRole('button', { name: 'Set', exact: true }).click();
      await page.getByText(/Set GREETING: made release v2/).waitFor();
      await page.getByRole('button', { name: 'Reveal GREETING' }).click();
      await page.getByText('hello', { exact: true }).waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'config');
      await until(async () => (await petri.app('shop')).body === 'greeting: hello', {
        timeout: 30_000,
        message: 'the router to serve v2',
      });

      // Releases: roll back to v1, confirmed; the router serves v1's config again.
      await page.getByRole('link', { name: 'Releases' }).click();
      await page.getByRole('button', { name: 'Roll back to this (v1)' }).click();
      await page
        .getByRole('group', { name: 'Roll back to v1?' })
        .getByRole('button', { name: 'Roll back to v1' })
        .click();
      await page.getByText(/Made v3: Rollback to v1/).waitFor();
      await until(async () => (await petri.app('shop')).body === 'greeting: none', {
        timeout: 30_000,
        message: 'the router to serve v1 again',
      });
      await page.locator('li.current').getByText('v3').waitFor({ timeout: 15_000 });
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'releases');

      // Logs: live; a request to the app prints a line that arrives in the page.
      await page.getByRole('link', { name: 'Logs' }).click();
      await page.getByRole('status').getByText('Live').waitFor();
      await petri.app('shop', '/from-the-test');
      await page.getByRole('log').getByText('served /from-the-test').waitFor({ timeout: 15_000 });
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'logs');

      // Metrics: the totals as text, charts once there are points (loaded with the tab).
      await page.getByRole('link', { name: 'Metrics' }).click();
      await page.getByRole('heading', { name: 'Metrics', level: 2 }).waitFor();
      await page.getByText(/^\d+ \(\d+ 2xx, \d+ 3xx, \d+ 4xx, \d+ 5xx\)$/).waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'metrics');

      // Deploys: the first deploy's build output.
      await page.getByRole('link', { name: 'Deploys' }).click();
      await page
        .getByRole('button', { name: /Show output/ })
        .first()
        .click();
      await page.getByRole('log').getByText('Releasing v1').waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'deploys');

      // Processes: scale web to 2 and see two processes up.
      await page.getByRole('link', { name: 'Processes' }).click();
      await page.getByLabel('web', { exact: true }).fill('2');
      await page.getByRole('button', { name: 'Scale', exact: true }).click();
      await page.getByText('Scaled: web=2.').waitFor();
      const rows = page.getByRole('region', { name: 'Processes' }).getByRole('row');
      await until(
        async () => (await rows.count()) === 3 && (await page.locator('tbody .status-up').count()) === 2,
        {
          timeout: 30_000,
          message: 'two web processes up',
        },
      );
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'processes');

      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a member of another team cannot open the app: not found', async () => {
    const { context, page } = await personIn('bob@example.org');
    try {
      await page.getByText('No apps yet').waitFor();
      await page.goto(`${petri.apiUrl}/apps/shop`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();
      await page.getByText('There is no app named shop that you can see').waitFor();
      await shot(page, 'not-found');
    } finally {
      await context.close();
    }
  });

  test('at 375 px the pages fit and have what they have on a desktop', async () => {
    const { context, page } = await personIn('ada@example.org', { width: 375, height: 800 });
    try {
      await page.getByRole('row', { name: /shop/ }).getByText('running').waitFor();
      await fitsPhone(page);
      await page.getByRole('button', { name: 'New app' }).click();
      await page.getByLabel('Name').fill('shop-two');
      await page.getByRole('button', { name: 'Create app' }).click();
      await page.getByRole('heading', { name: 'shop-two is ready to deploy' }).waitFor();
      await page.getByText('petri deploy ./shop-two --app shop-two').waitFor();
      await fitsPhone(page);
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'phone-new-app');
      await page.goto(`${petri.apiUrl}/apps/shop/logs`);
      await page.getByRole('status').getByText('Live').waitFor();
      await fitsPhone(page);
      await shot(page, 'phone-logs');
    } finally {
      await context.close();
    }
  });

  test('the Apps page shows 1,000 apps and a search narrows them to one', async () => {
    const { context, page } = await personIn('ada@example.org');
    try {
      // The same answers the API gives, for 1,000 apps (a copy of the real one, renamed):
      // what is measured is the page's own work with that many, from the request on.
      const real = await admin.getApp('shop');
      const [realRow] = await admin.inventory();
      const names = Array.from({ length: 1000 }, (_, i) => `app-${String(i).padStart(4, '0')}`);
      const apps = names.map((name, i) => ({ ...real, name, team: i % 7 === 0 ? 'press' : 'lab' }));
      const rows = names.map((name) => ({ ...realRow, name }));
      await page.route('**/v1/apps', (route) => route.fulfill({ json: { apps } }));
      await page.route('**/v1/inventory', (route) => route.fulfill({ json: { apps: rows } }));
      // Timed in the page, from the start of the navigation (performance.now() is 0 there):
      // the 1,000 rows on screen, then a search narrowed to one.
      await page.goto(`${petri.apiUrl}/`, { waitUntil: 'commit' });
      const rendered = await page.waitForFunction(
        () => document.querySelectorAll('table.apps tbody tr').length === 1000 && performance.now(),
        undefined,
        { polling: 'raf' },
      );
      const renderedMs = Math.round((await rendered.jsonValue()) as number);
      // The search typed as a browser delivers it (the input's value, then its input event),
      // timed in the page from that event to the one row on screen.
      const searchMs = Math.round(
        await page.evaluate(async () => {
          const input = document.querySelector<HTMLInputElement>('input[type="search"]')!;
          Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')!.set!.call(input, 'app-0500');
          const typed = performance.now();
          input.dispatchEvent(new Event('input', { bubbles: true }));
          while (document.querySelectorAll('table.apps tbody tr').length !== 1)
            await new Promise((frame) => requestAnimationFrame(frame));
          return performance.now() - typed;
        }),
      );
      await page.getByText('1 of 1000 apps').waitFor();
      // The times are figures, not assertions (a loaded CI host is no measure): the issue's
      // 1 s target is read off this line on a quiet machine.
      console.log(
        `# apps page, 1,000 apps: rows shown ${renderedMs} ms after navigation starts, a search narrowed them to one in ${searchMs} ms (target < 1000 ms each)`,
      );
    } finally {
      await context.close();
    }
  });

  test('an auditor sees the inventory and exports it as CSV, and no config values or change buttons', async () => {
    const { context, page } = await personIn('olga@example.org');
    try {
      await page.getByRole('link', { name: 'Inventory' }).click();
      await page.getByRole('rowheader', { name: 'shop', exact: true }).waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'inventory');
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Export CSV' }).click(),
      ]);
      assert.match(download.suggestedFilename(), /^petri-inventory-\d{4}-\d\d-\d\d\.csv$/);
      const file = await download.path();
      const csv = readFileSync(file, 'utf8');
      assert.equal(csv, await admin.inventoryCsv());

      // The app's pages: everything to read, no config values, no button that changes.
      await page.getByRole('link', { name: 'shop', exact: true }).click();
      await page.getByRole('heading', { name: 'Processes' }).waitFor();
      await page.getByRole('link', { name: 'Releases' }).click();
      await page.getByText('Rollback to v1').first().waitFor();
      await page.getByRole('link', { name: 'Config' }).click();
      await page.getByText(/auditors read but do not change or see secrets/).waitFor();
      await shot(page, 'auditor-config');
      for (const tab of ['Overview', 'Releases', 'Config']) {
        await page.getByRole('link', { name: tab }).click();
        await page.getByRole('heading', { level: 2 }).first().waitFor();
        const buttons = await page.locator('main button').allTextContents();
        assert.deepEqual(buttons, [], `${tab}: ${buttons.join(', ')}`);
      }
    } finally {
      await context.close();
    }
  });

  test('a deploy started with the CLI streams its build output into the page as it runs', async () => {
    const { context, page } = await personIn('ada@example.org');
    try {
      await page.goto(`${petri.apiUrl}/apps/shop/deploys`);
      await page.getByRole('heading', { name: 'Deploys' }).waitFor();
      // A build that prints a line every 400 ms, so its lines arrive while it runs.
      const dir = writeApp({
        'package.json': JSON.stringify({
          name: 'shop',
          scripts: {
            build:
              'node -e "let i = 0; const t = setInterval(() => { console.log(\'build step \' + ++i); if (i === 8) clearInterval(t); }, 400)"',
            start: 'node server.js',
          },
        }),
        'server.js':
          "require('node:http').createServer((q, s) => { console.log('served ' + q.url); s.end('v-next'); }).listen(Number(process.env.PORT));",
      });
      const deploying = petri.cli(['deploy', dir, '--app', 'shop']);
      // The running deploy opens by itself; its first lines show before its last is written.
      await page
        .getByRole('status')
        .getByText('Live: the deploy is running')
        .waitFor({ timeout: 30_000 })
        .catch(async (err) => {
          await shot(page, 'deploy-live-failed');
          const done = await deploying;
          throw new Error(`${err}\n${done.stdout}${done.stderr}`);
        });
      await page.getByRole('log').getByText('build step 1', { exact: true }).waitFor({ timeout: 30_000 });
      assert.equal(await page.getByRole('log').getByText('build step 8', { exact: true }).count(), 0);
      await shot(page, 'deploy-live');
      await page.getByRole('log').getByText('build step 8', { exact: true }).waitFor({ timeout: 30_000 });
      await page.getByRole('status').getByText('The deploy has ended.').waitFor({ timeout: 60_000 });
      const deployed = await deploying;
      assert.equal(deployed.code, 0, deployed.stderr + deployed.stdout);
    } finally {
      await context.close();
    }
  });

  test('a log stream cut by a control-plane restart says so and follows again by itself', async () => {
    const { context, page } = await personIn('ada@example.org');
    try {
      await page.goto(`${petri.apiUrl}/apps/shop/logs`);
      const status = page.locator('p.stream');
      await status.getByText('Live', { exact: true }).waitFor();
      await petri.kill9();
      await status.getByText(/^Connection lost .*; reconnecting in \d+ s…$/).waitFor({ timeout: 15_000 });
      await page.getByText(/Lost contact with Petri/).waitFor({ timeout: 15_000 });
      await shot(page, 'logs-lost');
      await petri.startServer();
      await status
        .getByText('Reconnected: live again')
        .waitFor({ timeout: 30_000 })
        .catch(async (err) => {
          await shot(page, 'logs-reconnect-failed');
          throw new Error(`${err}; the page said: ${await status.textContent()}`);
        });
      // The app kept serving; a line it prints now arrives on the new stream, once.
      await petri.app('shop', '/after-the-restart');
      const line = page.getByRole('log').getByText('served /after-the-restart');
      await line.waitFor({ timeout: 15_000 });
      assert.equal(await line.count(), 1);
    } finally {
      await context.close();
    }
  });
});

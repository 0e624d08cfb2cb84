// The operators' pages (/ops) in Debian's Chromium against a real `petri server`: an admin
// makes an app on the page and finds the event in the audit log filtered by that app; sets a
// team's quotas and sees them; reads the add-on servers (one external server answering, one
// not) and the status (the promise, the figures, the incident of a control-plane restart).
// An auditor reads users, teams and quotas with no button that changes, and the API refuses
// the changes the page would send for them; a member who opens /ops is told it is not for
// them. axe-core on every page, 375 px, a screenshot per journey in test-artifacts/.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { PetriClient } from '../../src/client/index.js';
import { freePort } from '../../src/lib/ports.js';
import { TestPetri } from '../e2e/petri.js';
import { ensureDashboardBuilt } from './dashboard-build.js';
import {
  axeProblems,
  fitsPhone,
  launchChromium,
  newInvitedUser,
  personIn,
  shot,
} from './dashboard-harness.js';

describe('the operators’ pages', () => {
  let petri: TestPetri;
  let browser: Browser;
  let admin: PetriClient;
  // Something answering TCP where the "external PostgreSQL" is said to be.
  let postgres: net.Server;
  let mysqlPort: number;
  const signIn = (email: string, viewport?: { width: number; height: number }) =>
    personIn(browser, petri.apiUrl, email, viewport);

  before(async () => {
    await ensureDashboardBuilt();
    postgres = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => postgres.listen(0, '127.0.0.1', resolve));
    const postgresPort = (postgres.address() as net.AddressInfo).port;
    mysqlPort = await freePort();
    petri = await TestPetri.start({
      addons: {
        postgres: { mode: 'external', adminUrl: `postgres://admin:pw@127.0.0.1:${postgresPort}/postgres` },
        mysql: { mode: 'external', adminUrl: `mysql://root:pw@127.0.0.1:${mysqlPort}/` },
        redis: { mode: 'off' },
      },
    });
    admin = new PetriClient({ url: petri.apiUrl, token: petri.token });
    await admin.createTeam('lab');
    await newInvitedUser(admin, petri.apiUrl, 'root@example.org', { role: 'admin' });
    await newInvitedUser(admin, petri.apiUrl, 'ada@example.org', { team: 'lab' });
    await newInvitedUser(admin, petri.apiUrl, 'olga@example.org', { role: 'auditor' });
    // A control-plane restart: the status page has an incident with a start, end and duration.
    await petri.kill9();
    await petri.startServer();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await petri?.destroy();
    postgres?.close();
  });

  /** Opens an operators' page from the nav, as people do. */
  async function openOps(page: Page, section: string): Promise<void> {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Operators' }).click();
    await page.getByRole('navigation', { name: 'Operators' }).getByRole('link', { name: section }).click();
    await page.getByRole('heading', { level: 1, name: section }).waitFor();
  }

  test('an admin makes an app and finds the event in the audit log filtered by the app', async () => {
    const { context, page, problems } = await signIn('root@example.org');
    try {
      await page.getByRole('button', { name: 'New app' }).click();
      await page.getByLabel('Name').fill('lab-notes');
      await page.getByRole('button', { name: 'Create app' }).click();
      await page.getByRole('heading', { name: 'lab-notes is ready to deploy' }).waitFor();

      await openOps(page, 'Audit log');
      assert.deepEqual(await axeProblems(page), []);
      await page.getByLabel('App', { exact: true }).fill('lab-notes');
      await page.getByRole('button', { name: 'Apply' }).click();
      const rows = page.getByRole('region', { name: 'Audit events' }).locator('tbody tr');
      await rows.filter({ hasText: 'app.create' }).first().waitFor();
      // Every row is of that app, and the one that made it names the admin.
      for (const text of await rows.allTextContents()) assert.match(text, /lab-notes/);
      const made = rows.filter({ hasText: 'app.create' }).first();
      assert.match((await made.textContent()) ?? '', /root.*via api/);
      await made.locator('.status').getByText('ok', { exact: true }).waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'ops-audit');

      // Pages of 50: 55 quota changes make two; Older events shows the rest, Newer the first again.
      for (let i = 1; i <= 55; i++) await admin.setQuotas('lab', { addons: i });
      await page.getByLabel('App', { exact: true }).fill('');
      await page.getByLabel('Action', { exact: true }).fill('team.quotas');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByText('50 events, newest first').waitFor();
      assert.match((await rows.first().textContent()) ?? '', /addons.*55/);
      await page.getByRole('button', { name: 'Older events' }).click();
      await page.getByText(/^\d events, page 2, newest first$/).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Older events' }).count(), 0);
      await page.getByRole('button', { name: 'Newer events' }).click();
      await page.getByText('50 events, newest first').waitFor();
      await page.getByLabel('Action', { exact: true }).fill('');
      await admin.setQuotas('lab', { addons: null }); // the default again, as the quotas journey expects

      // A time the API cannot read: its message, beside what was tried.
      await page.getByLabel('Since', { exact: true }).fill('last tuesday');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page
        .getByRole('alert')
        .getByText(/^Could not read the audit log: .*last tuesday/)
        .waitFor();
      await page.getByLabel('Since', { exact: true }).fill('');

      // Filtered by an app with no events: says so.
      await page.getByLabel('App', { exact: true }).fill('no-such-app');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByText('No events match.').waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('an admin sets a team’s quotas and sees them', async () => {
    const { context, page, problems } = await signIn('root@example.org');
    try {
      await openOps(page, 'Quotas');
      const lab = page.getByRole('region', { name: 'Quotas of each team' }).getByRole('row', { name: /lab/ });
      await lab.getByText('the default').first().waitFor();
      await page.getByLabel('Team', { exact: true }).selectOption('lab');
      await page.getByLabel('Apps', { exact: true }).fill('30');
      await page.getByLabel('Memory', { exact: true }).fill('12G');
      await page.getByLabel('Memory', { exact: true }).press('Enter');
      await page.getByText('Set lab’s quotas: 30 apps, 12 GiB, 10 add-ons.').waitFor();
      await lab.getByText('0 of 30').waitFor();
      await lab.getByText('0 MiB of 12 GiB').waitFor();
      assert.equal(await lab.getByText('the team’s own limit').count(), 2);
      const quotas = await admin.getQuotas('lab');
      assert.deepEqual([quotas.apps.limit, quotas.memoryMiB.limit], [30, 12288]);
      // A mistyped limit is refused on the page, before any request.
      await page.getByLabel('Add-ons', { exact: true }).fill('lots');
      await page.getByRole('button', { name: 'Set quotas' }).click();
      await page.getByText("Add-ons: a whole number like 20, or default; got 'lots'").waitFor();
      assert.equal(await page.getByText('Set lab’s quotas').count(), 0, 'the last change’s note is gone');
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'ops-quotas');

      // The team's page shows the same, with its members.
      await lab.getByRole('link', { name: 'lab' }).click();
      await page.getByRole('heading', { level: 1, name: 'Team lab' }).waitFor();
      await page.getByRole('rowheader', { name: /ada/ }).waitFor();
      await page.getByText('0 of 30').waitFor();
      assert.deepEqual(await axeProblems(page), []);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('the add-on servers and the status: the promise, the figures, the incident', async () => {
    const { context, page, problems } = await signIn('root@example.org');
    try {
      await openOps(page, 'Add-on servers');
      const servers = page.getByRole('region', { name: 'Add-on servers' });
      await servers
        .getByRole('row', { name: /postgres/ })
        .getByText('up', { exact: true })
        .waitFor();
      const mysql = servers.getByRole('row', { name: /mysql/ });
      await mysql.getByText('down', { exact: true }).waitFor();
      await mysql.getByText(`it does not answer on 127.0.0.1:${mysqlPort}`).waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'ops-addon-servers');

      await openOps(page, 'Status');
      await page.getByText('One 9: Petri aims for 90% availability and makes no stronger promise.').waitFor();
      for (const period of ['Last 24 hours', 'Last 7 days', 'Last 30 days']) {
        const figure = page.locator('dt', { hasText: period }).locator('xpath=following-sibling::dd[1]');
        assert.match((await figure.textContent()) ?? '', /^\d+\.\d\d% (keeps|below) the promise$/);
      }
      const incident = page
        .getByRole('region', { name: 'Incidents' })
        .getByRole('row', { name: /control-plane/ });
      await incident.getByText('restart').waitFor();
      assert.match((await incident.textContent()) ?? '', /UTC.*UTC.*\d+ (s|min)/);
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'ops-status');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('an auditor reads users, teams and quotas with no button that changes, and the API refuses the changes', async () => {
    const { context, page, problems } = await signIn('olga@example.org');
    try {
      const changeButtons = async () =>
        (await page.locator('main button').allTextContents()).filter((t) => t !== 'Apply');
      await openOps(page, 'Users');
      await page.getByRole('rowheader', { name: /ada@example\.org/ }).waitFor();
      // Signed in a moment ago: seen, not "never".
      await page
        .getByRole('row', { name: /olga@example\.org/ })
        .getByText('just now')
        .waitFor();
      assert.deepEqual(await changeButtons(), []);
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'ops-auditor-users');

      await openOps(page, 'Teams');
      await page.getByRole('link', { name: 'lab', exact: true }).click();
      await page.getByRole('rowheader', { name: /ada/ }).waitFor();
      assert.deepEqual(await changeButtons(), []);
      assert.equal(await page.getByLabel(/E-mail/).count(), 0);
      assert.deepEqual(await axeProblems(page), []);

      await openOps(page, 'Quotas');
      await page
        .getByRole('region', { name: 'Quotas of each team' })
        .getByRole('row', { name: /lab/ })
        .waitFor();
      assert.equal(await page.getByRole('heading', { name: 'Set a team’s quotas' }).count(), 0);
      assert.deepEqual(await changeButtons(), []);
      await shot(page, 'ops-auditor-quotas');

      // What the page would send, sent by the auditor's own session with its CSRF token.
      const membersBefore = (await admin.getTeam('lab')).members;
      const refused = await page.evaluate(
        async (calls) => {
          const { csrf } = await (await fetch('/v1/session')).json();
          const statuses: number[] = [];
          for (const [method, url, body] of calls) {
            const res = await fetch(url, {
              method,
              headers: { 'x-csrf-token': csrf, ...(body ? { 'content-type': 'application/json' } : {}) },
              body: body ? JSON.stringify(body) : undefined,
            });
            statuses.push(res.status);
          }
          return statuses;
        },
        [
          ['PATCH', '/v1/teams/lab/quotas', { apps: 1 }],
          ['POST', '/v1/users/ada%40example.org/disable', null],
          ['PUT', '/v1/teams/lab/members/olga%40example.org', { role: 'admin' }],
          ['DELETE', '/v1/teams/lab/members/ada%40example.org', null],
          ['PATCH', '/v1/users/olga%40example.org', { role: 'admin' }],
        ] as [string, string, unknown][],
      );
      assert.deepEqual(refused, [403, 403, 403, 403, 403]);
      assert.deepEqual((await admin.getTeam('lab')).members, membersBefore, 'the team is as it was');
      const users = await admin.listUsers();
      assert.equal(users.find((u) => u.email === 'ada@example.org')?.disabled, false);
      assert.equal(users.find((u) => u.email === 'olga@example.org')?.role, 'auditor');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a member has no Operators link, and an /ops page says it is not for them', async () => {
    const { context, page } = await signIn('ada@example.org');
    try {
      assert.equal(await page.getByRole('link', { name: 'Operators' }).count(), 0);
      for (const url of ['/ops', '/ops/users', '/ops/teams/lab', '/ops/quotas', '/ops/status']) {
        await page.goto(`${petri.apiUrl}${url}`);
        await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
        await page.getByText(/for platform admins and auditors; your role is member/).waitFor();
      }
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'ops-member');
      // Nor does the API give them what the pages read.
      const statuses = await page.evaluate(async () =>
        Promise.all(['/v1/users', '/v1/addon-servers'].map(async (u) => (await fetch(u)).status)),
      );
      assert.deepEqual(statuses, [403, 403]);
    } finally {
      await context.close();
    }
  });

  test('an admin disables and enables a user, adds a team member and removes them', async () => {
    const { context, page, problems } = await signIn('root@example.org');
    try {
      await openOps(page, 'Users');
      const ada = page.getByRole('row', { name: /ada@example\.org/ });
      // With the keyboard: Enter asks, the confirmation takes the focus, Enter confirms.
      await ada.getByRole('button', { name: 'Disable ada@example.org' }).focus();
      await page.keyboard.press('Enter');
      await page.getByRole('group', { name: 'Disable ada@example.org?' }).waitFor();
      await page.keyboard.press('Enter');
      await page.getByText(/^Disabled ada@example\.org; revoked \d+ tokens? and sessions\.$/).waitFor();
      await ada.getByText('disabled', { exact: true }).waitFor();
      assert.equal((await admin.listUsers()).find((u) => u.email === 'ada@example.org')?.disabled, true);
      await ada.getByRole('button', { name: 'Enable ada@example.org' }).focus();
      await page.keyboard.press('Enter');
      await page.getByText('Enabled ada@example.org; they sign in again.').waitFor();
      await ada.getByText('active', { exact: true }).waitFor();
      // A platform role, changed and put back, as `petri users role`.
      for (const role of ['auditor', 'member']) {
        await page.getByLabel('Person', { exact: true }).selectOption('ada@example.org');
        await page.getByLabel('New role', { exact: true }).selectOption(role);
        await page.getByRole('button', { name: 'Change role' }).click();
        await page.getByText(`ada@example.org is now ${role}.`).waitFor();
        await ada.getByRole('cell', { name: role, exact: true }).waitFor();
      }

      // Disabling oneself is refused by the API, and the page says why next to what was tried.
      const root = page.getByRole('row', { name: /root@example\.org/ });
      await root.getByRole('button', { name: 'Disable root@example.org' }).click();
      await page
        .getByRole('group', { name: 'Disable root@example.org?' })
        .getByRole('button', { name: 'Disable root@example.org' })
        .click();
      await page
        .getByRole('alert')
        .getByText(/^Disabling root@example\.org failed: .+/)
        .waitFor();
      await root.getByText('active', { exact: true }).waitFor();
      assert.deepEqual(await axeProblems(page), []);

      await page.goto(`${petri.apiUrl}/ops/teams/lab`);
      await page.getByLabel('E-mail (a bot: its name)').fill('olga@example.org');
      await page.getByLabel('Role', { exact: true }).selectOption('viewer');
      await page.getByRole('button', { name: 'Add or change role' }).click();
      await page.getByText('Added olga@example.org to lab as viewer.').waitFor();
      const olga = page.getByRole('row', { name: /olga/ });
      await olga.getByText('viewer', { exact: true }).waitFor();
      await shot(page, 'ops-team');
      await olga.getByRole('button', { name: 'Remove olga@example.org' }).click();
      await page
        .getByRole('group', { name: 'Remove olga@example.org from lab?' })
        .getByRole('button', { name: 'Remove olga@example.org' })
        .click();
      await page.getByText('Removed olga@example.org from lab.').waitFor();
      await olga.waitFor({ state: 'detached' });
      assert.equal(
        (await admin.getTeam('lab')).members.some((m) => m.email === 'olga@example.org'),
        false,
      );
      assert.deepEqual(await axeProblems(page), []);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('at 375 px the operators’ pages fit and work', async () => {
    const { context, page } = await signIn('root@example.org', { width: 375, height: 800 });
    try {
      for (const [url, heading] of [
        ['/ops', 'Audit log'],
        ['/ops/users', 'Users'],
        ['/ops/teams/lab', 'Team lab'],
        ['/ops/quotas', 'Quotas'],
        ['/ops/addons', 'Add-on servers'],
        ['/ops/status', 'Status'],
      ] as const) {
        await page.goto(`${petri.apiUrl}${url}`);
        await page.getByRole('heading', { level: 1, name: heading }).waitFor();
        await page.locator('main table').first().waitFor();
        await fitsPhone(page);
      }
      await shot(page, 'ops-phone-status');
    } finally {
      await context.close();
    }
  });
});

// The app page's tabs Add-ons, Network, Audience, Mail and Settings, and the Apps page's
// sparkline, in Debian's Chromium against a real `petri server` (with a managed Redis for
// add-ons): a team admin adds an add-on and sees it, backs it up, and the restore dialog names
// what it replaces; invites someone and sees them, makes an invite link; changes the idle
// period; destroys an app only once its name is typed. An auditor sees every tab without a
// button that changes or a dump to download; a member of another team is told "not found";
// a member of the team sees no Transfer, Graduate or Destroy.
// axe-core on every tab; a screenshot per journey in test-artifacts/.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ApiError } from '../../src/client/errors.js';
import { PetriClient } from '../../src/client/index.js';
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

/** 24 hours without a request, as the sparkline draws them (logic.ts, sparklinePoints). */
const SPARK_FLAT = Array.from({ length: 24 }, (_, i) => `${Math.round((i * 640) / 23) / 10},17`).join(' ');

let petri: TestPetri;
let browser: Browser;
let admin: PetriClient;

const signIn = (email: string, viewport?: { width: number; height: number }) =>
  personIn(browser, petri.apiUrl, email, viewport);

/** Opens a tab of an app and waits for its heading. */
async function openTab(page: Page, app: string, tab: string, heading: string): Promise<void> {
  await page.goto(`${petri.apiUrl}/apps/${app}/${tab}`);
  await page.getByRole('heading', { name: heading, level: 2 }).waitFor();
}

async function gone(app: string): Promise<boolean> {
  try {
    await admin.getApp(app);
    return false;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return true;
    throw err;
  }
}

describe('the dashboard: the tabs of an app', () => {
  before(async () => {
    await ensureDashboardBuilt();
    petri = await TestPetri.start({
      addons: { postgres: { mode: 'off' }, mysql: { mode: 'off' }, redis: { mode: 'managed' } },
    });
    admin = new PetriClient({ url: petri.apiUrl, token: petri.token });
    await admin.createTeam('lab');
    await newInvitedUser(admin, petri.apiUrl, 'ada@example.org', { team: 'lab' });
    // Ada is an admin of her team: she may transfer and destroy its apps.
    await admin.setTeamMember('lab', 'ada@example.org', 'admin');
    await newInvitedUser(admin, petri.apiUrl, 'mia@example.org', { team: 'lab' });
    await newInvitedUser(admin, petri.apiUrl, 'bob@example.org');
    await newInvitedUser(admin, petri.apiUrl, 'olga@example.org', { role: 'auditor' });
    for (const name of ['shop', 'spare']) await admin.createApp(name, 'lab');
    await admin.createApp('survey', 'lab', {
      data: 'personal',
      privacy: 'e-mail addresses, to answer questions',
      retention: '30d',
    });
    await admin.setAudience('survey', 'staff');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await petri?.destroy();
  });

  test('add-ons: add one and see it, back it up, download it; the restore dialog names what it replaces', async () => {
    const { context, page, problems } = await signIn('ada@example.org');
    try {
      await openTab(page, 'shop', 'addons', 'Add-ons');
      await page.getByText('No add-on yet.').waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await page.getByLabel('Engine').selectOption('redis');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.getByText(/^Added redis: its URL is in REDIS_URL/).waitFor({ timeout: 60_000 });
      const card = page.getByRole('region', { name: 'redis (redis)' });
      await card.locator('.status-ready').waitFor({ timeout: 60_000 });

      await card.getByRole('button', { name: 'Back up redis now' }).click();
      await card.getByText(/^Backed up redis: b\d+/).waitFor({ timeout: 60_000 });
      const row = card.getByRole('row', { name: /^b\d+/ }).first();
      const id = ((await row.getByRole('rowheader').textContent()) ?? '').trim();
      assert.match(id, /^b\d+$/);

      // The download is the API's own route, signed in by the session's cookie.
      const href = await card.getByRole('link', { name: `Download ${id}` }).getAttribute('href');
      assert.equal(href, `/v1/apps/shop/addons/redis/backups/${id}/download`);
      const dump = await page.request.get(`${petri.apiUrl}${href}`);
      assert.equal(dump.status(), 200);
      assert.ok((await dump.body()).length > 0, 'the dump is not empty');

      // Restore asks first, in a dialog naming the add-on, its engine and the backup's time;
      // with the keyboard, the focus goes to Cancel, the safe choice.
      const restoreButton = card.getByRole('button', { name: `Restore redis from ${id}` });
      await restoreButton.focus();
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog', { name: `Restore redis from ${id}?` });
      await dialog.waitFor();
      const question = (await dialog.textContent()) ?? '';
      assert.match(
        question,
        new RegExp(
          `all the data of redis \\(redis\\) with backup ${id}, taken \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC`,
        ),
      );
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'tab-addons-restore');
      const focused = () => page.evaluate(() => document.activeElement?.textContent ?? '');
      assert.equal(await focused(), 'Cancel');
      // Escape cancels, and the focus is back on the button that asked; nothing was restored.
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      assert.equal(await focused(), 'Restore');
      assert.equal(await page.getByText(/^Restored redis/).count(), 0);
      // Asked again and confirmed with the keyboard: restored, what it held kept in a backup.
      await page.keyboard.press('Enter');
      await dialog.waitFor();
      await page.keyboard.press('Shift+Tab');
      assert.equal(await focused(), `Restore redis from ${id}`);
      await page.keyboard.press('Enter');
      await card
        .getByText(new RegExp(`^Restored redis from ${id}; what it held before is in b\\d+`))
        .waitFor({
          timeout: 60_000,
        });
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'tab-addons');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('audience: invite someone and see them, make and revoke a link; public with personal data needs an admin', async () => {
    const { context, page, problems } = await signIn('ada@example.org');
    try {
      await openTab(page, 'shop', 'audience', 'Audience');
      await page.getByLabel(/^invite: only the people invited/).check();
      await page.getByRole('button', { name: 'Change audience' }).click();
      await page.getByText('The audience is invite now.').waitFor();
      assert.equal((await admin.audience('shop')).audience, 'invite');

      await page.getByLabel('Invite by e-mail').fill('carol@example.org');
      await page.getByRole('button', { name: 'Invite', exact: true }).click();
      await page.getByText('Invited carol@example.org.').waitFor();
      await page
        .getByRole('region', { name: 'People invited' })
        .getByRole('rowheader', { name: 'carol@example.org' })
        .waitFor();
      assert.deepEqual(
        (await admin.audience('shop')).invitees.map((i) => i.email),
        ['carol@example.org'],
      );

      await page.getByLabel('People it lets in').fill('5');
      await page.getByLabel('Works for').selectOption('30d');
      await page.getByRole('button', { name: 'Create link' }).click();
      const url = page.getByLabel(/^New link \d+ \(shown only now/);
      await url.waitFor();
      assert.match(await url.inputValue(), /^http:\/\/shop\.petri\.localhost(:\d+)?\/\S+$/);
      await page.getByRole('button', { name: 'Copy link' }).click();
      await page.getByText(/^(Copied\.|Selected: press Ctrl\+C)/).waitFor();
      const links = page.getByRole('region', { name: 'Invite links' });
      await links
        .getByRole('row', { name: /5 of 5/ })
        .getByText('active')
        .waitFor();
      const [made] = await admin.audienceLinks('shop');
      assert.equal(made?.maxUses, 5);
      assert.ok(Date.parse(made?.expiresAt ?? '') > Date.now() + 29 * 86_400_000, made?.expiresAt);
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'tab-audience');
      await links.getByRole('button', { name: `Revoke link ${made?.id}` }).click();
      await links.getByText('revoked', { exact: true }).waitFor();

      // An app with personal data: public is an admin's approval, as the API says.
      await openTab(page, 'survey', 'audience', 'Audience');
      await page.getByLabel(/^public: anyone/).check();
      await page.getByRole('button', { name: 'Change audience' }).click();
      await page
        .getByText(/^Making survey public failed: .*personal data: only an admin may make it public/)
        .waitFor();
      assert.equal((await admin.audience('survey')).audience, 'staff');
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'tab-audience-refused');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('settings: the idle period changes, a transfer; destroy does nothing until the exact name is typed', async () => {
    const { context, page, problems } = await signIn('ada@example.org');
    try {
      await openTab(page, 'spare', 'settings', 'Settings');
      await page.getByLabel('Idle period').fill('45m');
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByText(/^Saved: idle period 45m, boot timeout \d+ s\.$/).waitFor();
      assert.equal((await admin.getApp('spare')).settings.idleTimeoutSeconds, 2700);
      await page.getByLabel('Idle period').fill('soon');
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByText(/^Enter a period like 30m/).waitFor();
      assert.equal((await admin.getApp('spare')).settings.idleTimeoutSeconds, 2700);
      assert.deepEqual(await axeProblems(page), []);

      // Transfer to another team of hers (her own): the app follows, and she still administers it.
      await page.getByRole('button', { name: 'Transfer', exact: true }).click();
      await page.getByText(/^spare belongs to \S+ now\.$/).waitFor();
      assert.notEqual((await admin.getApp('spare')).team, 'lab');

      // Graduate, confirmed: an app never deployed has nothing to hand off, and the page says
      // what the API answered, beside what was tried.
      await page.getByRole('button', { name: 'Graduate spare…' }).click();
      await page
        .getByRole('group', { name: 'Graduate spare?' })
        .getByRole('button', { name: 'Graduate spare' })
        .click();
      await page
        .getByText(/^Graduating spare failed: spare has no release that served yet: deploy it/)
        .waitFor();
      assert.equal((await admin.getApp('spare')).experiment.stage, 'experiment');

      // A name not exactly the app's: the button stays off, and Enter in the box does nothing.
      const confirm = page.getByLabel('Type spare to confirm');
      const destroy = page.getByRole('button', { name: 'Destroy spare' });
      for (const wrong of ['spar', 'Spare', 'spare ']) {
        await confirm.fill(wrong);
        assert.equal(await destroy.isDisabled(), true, `'${wrong}'`);
        await confirm.press('Enter');
      }
      await destroy.click({ force: true }).catch(() => undefined);
      assert.equal(await gone('spare'), false, 'spare is still there');
      assert.equal(new URL(page.url()).pathname, '/apps/spare/settings');
      await shot(page, 'tab-settings');

      await confirm.fill('spare');
      await destroy.click();
      await page.waitForURL(`${petri.apiUrl}/`);
      await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
      assert.equal(await gone('spare'), true);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('network and mail read as the CLI does; the Apps page shows requests as a sparkline', async () => {
    const { context, page, problems } = await signIn('ada@example.org');
    try {
      const row = page.getByRole('row', { name: /shop/ });
      // No request yet: a flat line, and 0 as the text read out.
      const image = row.locator('.spark img');
      await image.waitFor();
      assert.ok(
        decodeURIComponent((await image.getAttribute('src')) ?? '').includes(`points="${SPARK_FLAT}"`),
      );
      assert.equal(await row.locator('.spark').textContent(), '0');
      await openTab(page, 'shop', 'network', 'Network');
      await page.getByText(/^Nothing: the app may reach no outside host/).waitFor();
      await page.getByText('The app has tried to reach no outside host yet.').waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'tab-network');
      await openTab(page, 'shop', 'mail', 'Mail');
      await page.getByRole('rowheader', { name: 'Last 30 days' }).waitFor();
      await page.getByText('The app has sent no mail yet.').waitFor();
      assert.deepEqual(await axeProblems(page), []);
      await shot(page, 'tab-mail');
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('an auditor sees every tab with no button that changes and no dump; another team cannot open them', async () => {
    const olga = await signIn('olga@example.org');
    try {
      const { page } = olga;
      for (const [tab, heading] of [
        ['addons', 'Add-ons'],
        ['network', 'Network'],
        ['audience', 'Audience'],
        ['mail', 'Mail'],
        ['settings', 'Settings'],
      ] as const) {
        await openTab(page, 'shop', tab, heading);
        await page.locator('.loading').first().waitFor({ state: 'detached' });
        const buttons = await page.locator('main button').allTextContents();
        assert.deepEqual(buttons, [], `${tab}: ${buttons.join(', ')}`);
        assert.equal(await page.locator('main a[download], main input, main select').count(), 0, tab);
        assert.deepEqual(await axeProblems(page), [], tab);
      }
      await page.getByText(/^The members of lab change these/).waitFor();
      await shot(page, 'tab-auditor-settings');
    } finally {
      await olga.context.close();
    }
    const bob = await signIn('bob@example.org');
    try {
      for (const tab of ['addons', 'audience', 'settings']) {
        await bob.page.goto(`${petri.apiUrl}/apps/shop/${tab}`);
        await bob.page.getByRole('heading', { name: 'Not found' }).waitFor();
        await bob.page.getByText('There is no app named shop that you can see').waitFor();
      }
      await shot(bob.page, 'tab-not-found');
    } finally {
      await bob.context.close();
    }
    // A member of the team changes the settings; transfer, graduate and destroy are its admins'.
    const mia = await signIn('mia@example.org');
    try {
      await openTab(mia.page, 'shop', 'settings', 'Settings');
      await mia.page.getByRole('button', { name: 'Save' }).waitFor();
      const buttons = await mia.page.locator('main button').allTextContents();
      assert.deepEqual(buttons, ['Save']);
    } finally {
      await mia.context.close();
    }
  });

  test('at 375 px the tabs fit', async () => {
    const { context, page } = await signIn('ada@example.org', { width: 375, height: 800 });
    try {
      for (const [tab, heading] of [
        ['addons', 'Add-ons'],
        ['audience', 'Audience'],
        ['settings', 'Settings'],
        ['mail', 'Mail'],
      ] as const) {
        await openTab(page, 'shop', tab, heading);
        await page.locator('.loading').first().waitFor({ state: 'detached' });
        await fitsPhone(page);
      }
      await shot(page, 'tab-phone-settings');
    } finally {
      await context.close();
    }
  });
});

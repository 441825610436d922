import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { AuthTestClient } from '../../src/auth/auth-test-client.js';
import { Repository } from '../../src/records/repository.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { launchChromium } from './support/chromium.js';

const JOURNEY = 'portal-appointments';

describe('patient portal in Chromium: sign-in and back, reschedule, cancel, sessions', { timeout: 240_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let records: Repository;
  let patientEmail: string;
  const slots: { id: string; start: string }[] = [];

  beforeAll(async () => {
    web = await startBrowserNode();
    browser = await launchChromium();
    records = new Repository(web.node.ctx.store.db, web.node.ctx.audit, SYSTEM_ACTOR, { requestId: 'portal-test', source: 'test' });
    const doctor = await web.account('doctor-citas', 'clinician', 'Andrés Molina');
    const patient = await web.account('paciente-citas', 'patient', 'Tomás Herrera');
    patientEmail = patient.email;
    const schedule = (await records.create({ resourceType: 'Schedule', active: true, actor: [{ reference: `Practitioner/${doctor.practitionerId}` }] } as never)) as { id: string };
    // Two free times the day after tomorrow, an hour apart.
    const base = Math.ceil((Date.now() + 2 * 86_400_000) / 3_600_000) * 3_600_000;
    for (const offset of [0, 60]) {
      const start = new Date(base + offset * 60_000).toISOString();
      const slot = (await records.create({ resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.id}` }, status: 'free', start, end: new Date(Date.parse(start) + 20 * 60_000).toISOString() } as never)) as { id: string };
      slots.push({ id: slot.id, start });
    }
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  async function checkpoint(page: Page, step: string): Promise<void> {
    await screenshotStep(page, JOURNEY, step);
    expect(await seriousAccessibilityViolations(page), `accessibility of ${step}`).toEqual([]);
  }
  async function signIn(page: Page): Promise<void> {
    await page.fill('input[autocomplete="username"]', patientEmail);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.click('button[type="submit"]');
  }
  const slotStatus = async (i: number) => ((await records.read('Slot', slots[i]!.id)) as unknown as { status: string }).status;

  it('books, moves and cancels an appointment, ends another session, exports the record, returns to the page after the session expires, and changes the password', async () => {
    const context = await browser.newContext({ acceptDownloads: true, ignoreHTTPSErrors: true, locale: 'en-GB', timezoneId: 'UTC', viewport: { width: 414, height: 860 } });
    context.setDefaultTimeout(20_000);
    const page = await context.newPage();
    try {
      // Signed out, the portal sends the patient to sign in and back.
      await page.goto(`${web.origin}/portal`);
      await page.waitForURL(/\/sign-in\?next=%2Fportal$/);
      await signIn(page);
      await page.waitForURL(`${web.origin}/portal`);
      await page.getByTestId('appointments-page').waitFor();

      // Book the first time.
      await page.getByTestId('book-start').click();
      await page.locator(`[data-testid="slot"][data-start="${slots[0]!.start}"]`).click();
      await page.getByTestId('booking-submit').click();
      await page.getByTestId('appointments-status').waitFor();
      const card = page.getByTestId('upcoming-appointment');
      await card.waitFor();
      const firstId = (await card.getAttribute('data-id'))!;
      expect(await slotStatus(0)).toBe('busy');
      // Not today: no Join button yet.
      expect(await card.getByTestId('join').count()).toBe(0);

      // Move it to the second time: the new one is booked before the old one is let go.
      await card.getByTestId('reschedule').click();
      await page.getByTestId('booking').waitFor();
      const second = page.locator(`[data-testid="slot"][data-start="${slots[1]!.start}"]`);
      await second.waitFor();
      // The time already held is not offered again.
      expect(await page.locator(`[data-testid="slot"][data-start="${slots[0]!.start}"]`).count()).toBe(0);
      await second.click();
      await checkpoint(page, '01-reschedule');
      await page.getByTestId('booking-submit').click();
      await page.getByText(/Your appointment is moved to/).waitFor();
      await page.locator(`[data-testid="upcoming-appointment"]:not([data-id="${firstId}"])`).waitFor();
      expect(await page.getByTestId('upcoming-appointment').count()).toBe(1);
      const movedId = (await page.getByTestId('upcoming-appointment').getAttribute('data-id'))!;
      expect(((await records.read('Appointment', firstId)) as unknown as { status: string }).status).toBe('cancelled');
      expect(await records.read('Appointment', movedId)).toMatchObject({ status: 'booked', start: slots[1]!.start });
      expect([await slotStatus(0), await slotStatus(1)]).toEqual(['free', 'busy']);
      await checkpoint(page, '02-rescheduled');

      // Cancel it, after a confirmation.
      await page.getByTestId('cancel').click();
      await checkpoint(page, '03-cancel-confirm');
      await page.getByTestId('cancel-confirm').click();
      await page.getByText('The appointment is cancelled.').waitFor();
      await page.getByText('You have no appointments coming up.').waitFor();
      expect(((await records.read('Appointment', movedId)) as unknown as { status: string }).status).toBe('cancelled');
      expect(await slotStatus(1)).toBe('free');
      expect(await page.getByTestId('past-appointment').count()).toBe(2);
      await checkpoint(page, '04-cancelled');

      // Another device signed in: the patient sees it and signs it out.
      const other = new AuthTestClient(web.node);
      expect((await other.signIn({ email: patientEmail, password: PASSWORD })).statusCode).toBe(200);
      await page.getByTestId('nav-security').click();
      await page.locator('[data-testid="session-row"][data-current="false"]').waitFor();
      await checkpoint(page, '05-security');
      await page.locator('[data-testid="session-row"][data-current="false"]').getByTestId('session-end').click();
      await page.getByText('That device is signed out.').waitFor();
      expect(await page.locator('[data-testid="session-row"][data-current="false"]').count()).toBe(0);
      expect((await other.get('/api/auth/session')).statusCode).toBe(401);

      // A copy of the whole record, after giving the password again.
      await page.getByTestId('export-start').click();
      await page.locator('form[aria-labelledby="export-title"] input[autocomplete="current-password"]').fill(PASSWORD);
      const downloading = page.waitForEvent('download');
      await page.locator('form[aria-labelledby="export-title"] button[type="submit"]').click();
      const saved = await (await downloading).path();
      const bundle = JSON.parse(await readFile(saved, 'utf8')) as { resourceType: string; entry: { resource: { resourceType: string } }[] };
      expect(bundle.resourceType).toBe('Bundle');
      expect(bundle.entry.map((e) => e.resource.resourceType)).toEqual(expect.arrayContaining(['Patient', 'Appointment']));
      await page.getByText('Your record is downloaded.').waitFor();

      // The session ends (here: its cookie is gone); the next step returns the patient to sign in, then back to where they were.
      await context.clearCookies();
      await page.getByTestId('nav-record').click();
      await page.waitForURL(/\/sign-in\?next=%2Fportal%2Frecord$/);
      await signIn(page);
      await page.waitForURL(`${web.origin}/portal/record`);
      await page.getByTestId('record-access').waitFor();
      await checkpoint(page, '06-record-after-sign-in');

      // A new password, with live feedback as it is typed.
      await page.getByTestId('nav-security').click();
      const form = page.getByTestId('password-change');
      await form.getByTestId('change-new-password').fill('tomas-herrera');
      await form.locator('[data-testid="password-strength"][data-level="fair"], [data-testid="password-strength"][data-level="weak"]').waitFor();
      expect(await form.getByTestId('password-problems').innerText()).toContain('name or email');
      await checkpoint(page, '07-password-feedback');
      const newPassword = 'cometa-azul-sobre-las-dunas-de-Tarifa-58';
      await form.getByTestId('change-new-password').fill(newPassword);
      await form.locator('[data-testid="password-strength"][data-level="ok"]').waitFor();
      await form.locator('input[autocomplete="current-password"]').fill(PASSWORD);
      await form.locator('input[autocomplete="new-password"]').nth(1).fill(newPassword);
      await form.locator('button[type="submit"]').click();
      await page.getByText('Your password is changed.', { exact: false }).waitFor();
      expect((await new AuthTestClient(web.node).signIn({ email: patientEmail, password: newPassword })).statusCode).toBe(200);
      // The page keeps working with the session the change gave it.
      await page.getByTestId('nav-appointments').click();
      await page.getByTestId('appointments-page').waitFor();
      await page.getByTestId('past-appointment').first().waitFor();
    } finally {
      await context.close();
    }
  });
});

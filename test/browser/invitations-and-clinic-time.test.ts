import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { Repository } from '../../src/records/repository.js';
import { appointment } from '../../src/test-support/fixtures.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium } from './support/chromium.js';

const JOURNEY = 'invitations-and-clinic-time';
const CLINIC_ZONE = 'America/Mexico_City';
/** Every browser here runs on a clock far from the clinic's: what they show must still be the clinic's hour. */
const DEVICE_ZONE = 'Asia/Tokyo';

const hourIn = (zone: string, instant: string) => new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', timeZone: zone }).format(new Date(instant));
/** The same hour and minute in any of the app's styles: "0:16:36" (timeStyle medium in Spanish) as well as "00:16", never "10:16". */
const clockIn = (zone: string, instant: string) => {
  const [hour, minute] = hourIn(zone, instant).split(':');
  return new RegExp(`(?<!\\d)0?${Number(hour)}:${minute}`);
};

/**
 * An administrator sees the invitations still pending in the console, revokes one with the
 * keyboard (a confirm step in the row), and its link then answers like an expired one; then sets
 * the clinic's time zone, and a patient and a clinician whose devices are in Tokyo see their
 * appointment, the free slots and the schedule on the clinic's clock, with the zone named.
 */
describe('pending invitations and the clinic time zone in the browser', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let admin: { id: string; email: string; totpSecret?: string | undefined };
  let doctor: { email: string; totpSecret?: string | undefined; practitionerId?: string | undefined };
  let patient: { email: string; patientId?: string | undefined };
  let bookedStart: string;
  let slotStart: string;
  let todayId: string;
  let adminContext: BrowserContext;
  let page: Page;
  /** The invitation left pending by the first test: its page is opened before anyone signs in. */
  let pendingToken: string;

  beforeAll(async () => {
    web = await startBrowserNode();
    admin = await web.account('admin-zona', 'admin', 'Marta Ruiz');
    doctor = await web.account('doctora-zona', 'clinician', 'Lucía Fernández');
    patient = await web.account('paciente-zona', 'patient', 'Tomás Romero');
    const records = new Repository(web.node.ctx.store.db, web.node.ctx.audit, SYSTEM_ACTOR, { requestId: 'zone-test', source: 'test' });
    // Three days ahead, on the hour: a booked appointment, and a free slot an hour later.
    const base = Math.ceil((Date.now() + 3 * 86_400_000) / 3_600_000) * 3_600_000;
    bookedStart = new Date(base).toISOString();
    slotStart = new Date(base + 3_600_000).toISOString();
    await records.create(appointment(patient.patientId!, doctor.practitionerId!, bookedStart, 20) as never);
    const schedule = (await records.create({ resourceType: 'Schedule', active: true, actor: [{ reference: `Practitioner/${doctor.practitionerId}` }] } as never)) as { id: string };
    await records.create({ resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.id}` }, status: 'free', start: slotStart, end: new Date(base + 3_600_000 + 20 * 60_000).toISOString() } as never);
    // One for the clinician's schedule of today (the clinic's today).
    todayId = await web.appointment(patient.patientId!, doctor.practitionerId!);
    browser = await launchChromium();
    adminContext = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', timezoneId: DEVICE_ZONE, viewport: { width: 1280, height: 900 } });
    adminContext.setDefaultTimeout(20_000);
    page = await adminContext.newPage();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  const accessible = async (on: Page, step: string) => {
    await screenshotStep(on, JOURNEY, step);
    expect(await seriousAccessibilityViolations(on), `axe on ${step}`).toEqual([]);
  };
  const focusedTestId = (on: Page) => on.evaluate(() => (globalThis as any).document.activeElement?.getAttribute('data-testid') ?? null);
  const invite = async (email: string, name: string) => {
    await page.getByTestId('invite-email').fill(email);
    await page.getByTestId('invite-name').fill(name);
    await page.getByTestId('invite-role').selectOption('clinician');
    await page.getByTestId('invite-submit').click();
    await page.getByTestId(`pending-${email}`).waitFor();
    return (await page.getByTestId('invite-url').inputValue()).split('#')[1]!;
  };

  it('lists the pending invitations and revokes one with the keyboard, after confirming; its link then answers like an expired one', async () => {
    await page.goto(`${web.origin}/admin/users`);
    await page.waitForURL(/\/sign-in/);
    await page.fill('input[autocomplete="username"]', admin.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(admin.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/admin/users`);
    await page.getByTestId('pending-invitations-none').waitFor();

    const wrongToken = await invite('equivocado@clinica.example.org', 'Andrés Equivocado');
    const rightToken = await invite('andres.vidal@clinica.example.org', 'Andrés Vidal');
    pendingToken = rightToken;
    const wrongRow = page.getByTestId('pending-equivocado@clinica.example.org');
    expect(await wrongRow.innerText()).toContain('Marta Ruiz');
    expect(await page.getByTestId('pending-invitations-table').innerText()).not.toContain(wrongToken);
    await accessible(page, '1-pending');

    // Keyboard only: Revoke asks first, in the row; Escape takes the question back and focus returns.
    await wrongRow.getByTestId('pending-revoke').focus();
    await page.keyboard.press('Enter');
    await wrongRow.getByTestId('pending-confirm').waitFor();
    expect(await focusedTestId(page)).toBe('pending-revoke-confirm');
    expect(await wrongRow.getByTestId('pending-confirm').innerText()).toContain('¿Revocar la invitación de equivocado@clinica.example.org?');
    await accessible(page, '2-confirm');
    await page.keyboard.press('Escape');
    await wrongRow.getByTestId('pending-revoke').waitFor();
    await expect.poll(() => focusedTestId(page)).toBe('pending-revoke');
    expect(await web.node.ctx.store.db.selectFrom('invitation').select('revoked_at').where('email', '=', 'equivocado@clinica.example.org').executeTakeFirstOrThrow()).toEqual({ revoked_at: null });

    await page.keyboard.press('Enter');
    await wrongRow.getByTestId('pending-revoke-confirm').waitFor();
    await page.keyboard.press('Enter');
    await page.getByTestId('pending-invitations-notice').waitFor();
    expect(await page.getByTestId('pending-invitations-notice').innerText()).toContain('equivocado@clinica.example.org');
    await wrongRow.waitFor({ state: 'detached' });
    await page.getByTestId('pending-andres.vidal@clinica.example.org').waitFor();
    await accessible(page, '3-revoked');

    // The revoked link answers like any link that can no longer be used; the other still works.
    const preview = (token: string) => page.evaluate(async (t) => {
      const res = await fetch(`/api/invitations/${t}/preview`);
      return { status: res.status, body: await res.text() };
    }, token);
    const revoked = await preview(wrongToken);
    expect(revoked.status).toBe(404);
    expect(revoked).toEqual(await preview('A'.repeat(43)));
    expect((await preview(rightToken)).status).toBe(200);
    const audit = await web.node.ctx.store.db.selectFrom('audit_event').select(['actor', 'outcome']).where('action', '=', 'invitation-revoked').execute();
    expect(audit).toEqual([{ actor: `account:${admin.id}`, outcome: 'success' }]);
  });

  it('sets the clinic time zone in the policy; the patient portal shows appointments and free slots on the clinic clock', async () => {
    await page.getByTestId('admin-nav-policy').click();
    await page.getByTestId('policy-time-zone').waitFor();
    await page.getByTestId('policy-time-zone').selectOption(CLINIC_ZONE);
    await page.getByTestId('policy-save').click();
    await page.getByTestId('policy-saved').waitFor();
    await accessible(page, '4-policy-time-zone');
    // The console's own times follow: an invitation's expiry at the clinic's hour.
    await page.getByTestId('admin-nav-users').click();
    const expires = await page.getByTestId('pending-andres.vidal@clinica.example.org').getByTestId('pending-expires').innerText();
    const expiresAt = (await web.node.ctx.store.db.selectFrom('invitation').select('expires').where('email', '=', 'andres.vidal@clinica.example.org').executeTakeFirstOrThrow()).expires;
    expect(expires).toMatch(clockIn(CLINIC_ZONE, new Date(expiresAt).toISOString()));

    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-GB', timezoneId: DEVICE_ZONE, viewport: { width: 414, height: 860 } });
    context.setDefaultTimeout(20_000);
    const portal = await context.newPage();
    try {
      await portal.goto(`${web.origin}/portal`);
      await portal.waitForURL(/\/sign-in/);
      await portal.fill('input[autocomplete="username"]', patient.email);
      await portal.fill('input[autocomplete="current-password"]', PASSWORD);
      await portal.click('button[type="submit"]');
      await portal.waitForURL(`${web.origin}/portal`);
      const card = portal.getByTestId('upcoming-appointment').filter({ hasText: clockIn(CLINIC_ZONE, bookedStart) });
      await card.first().waitFor();
      const when = await card.first().locator('.when').innerText();
      // The clinic's hour and zone, not the device's.
      expect(when).toMatch(clockIn(CLINIC_ZONE, bookedStart));
      expect(when).not.toMatch(clockIn(DEVICE_ZONE, bookedStart));
      expect(when).toMatch(/GMT-[56]|C[SD]T/);

      await portal.getByTestId('book-start').click();
      await portal.getByTestId('booking-practitioner').selectOption(`Practitioner/${doctor.practitionerId}`);
      const slot = portal.locator(`[data-testid="slot"][data-start="${slotStart}"]`);
      await slot.waitFor();
      expect(await slot.innerText()).toBe(hourIn(CLINIC_ZONE, slotStart));
      expect(await portal.locator('fieldset.slots legend').first().innerText()).toMatch(/GMT-[56]|C[SD]T/);
      await accessible(portal, '5-portal-slots');
    } finally {
      await context.close();
    }
  });

  it('shows the clinician today’s schedule on the clinic clock', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', timezoneId: DEVICE_ZONE, viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(20_000);
    const clinic = await context.newPage();
    try {
      await clinic.goto(`${web.origin}/clinic`);
      await clinic.waitForURL(/\/sign-in/);
      await clinic.fill('input[autocomplete="username"]', doctor.email);
      await clinic.fill('input[autocomplete="current-password"]', PASSWORD);
      await clinic.fill('input[autocomplete="one-time-code"]', currentTotpCode(doctor.totpSecret!));
      await clinic.click('button[type="submit"]');
      await clinic.waitForURL(`${web.origin}/clinic`);
      const row = clinic.locator(`[data-testid="appointment-row"][data-appointment-id="${todayId}"]`);
      await row.waitFor();
      const start = ((await web.node.request({ method: 'GET', url: `/fhir/R4/Appointment/${todayId}` })).json() as { start: string }).start;
      const time = await row.locator('.schedule-time').innerText();
      expect(time).toMatch(clockIn(CLINIC_ZONE, start));
      expect(time).toMatch(/GMT-[56]|C[SD]T/);
      await accessible(clinic, '6-clinic-schedule');
    } finally {
      await context.close();
    }
  });

  it('shows an invitation’s expiry on the clinic clock to someone not signed in, whose device is in Tokyo', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', timezoneId: DEVICE_ZONE, viewport: { width: 414, height: 860 } });
    context.setDefaultTimeout(20_000);
    const invitee = await context.newPage();
    try {
      await invitee.goto(`${web.origin}/invite#${pendingToken}`);
      const expires = invitee.getByTestId('invite-expires');
      await expires.waitFor();
      const expiresAt = new Date((await web.node.ctx.store.db.selectFrom('invitation').select('expires').where('email', '=', 'andres.vidal@clinica.example.org').executeTakeFirstOrThrow()).expires).toISOString();
      const text = await expires.innerText();
      // The clinic's hour with its zone named, as once signed in; not the device's hour.
      expect(text).toMatch(clockIn(CLINIC_ZONE, expiresAt));
      expect(text).not.toMatch(clockIn(DEVICE_ZONE, expiresAt));
      expect(text).toMatch(/GMT-[56]|C[SD]T/);
      await accessible(invitee, '7-invitation-expiry');
    } finally {
      await context.close();
    }
  });
});

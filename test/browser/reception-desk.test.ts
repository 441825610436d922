import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium } from './support/chromium.js';

const JOURNEY = 'reception-desk';

/**
 * The front desk in real Chromium: sign-in with MFA onto the clinic's schedule of the day (every
 * clinician's appointments), a new patient registered and booked into a clinician's free slot,
 * the patient invited to the portal, and the receptionist's own security page. axe on every page.
 */
describe('reception desk in the browser', { timeout: 240_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let page: Page;
  let desk: { email: string; totpSecret?: string | undefined };
  let doctor: { practitionerId?: string | undefined };
  let regular: { patientId?: string | undefined };
  let slotId: string;

  beforeAll(async () => {
    web = await startBrowserNode();
    desk = await web.account('recepcion-mostrador', 'reception', 'Rosa Ibarra');
    doctor = await web.account('doctora-agenda', 'clinician', 'Lucía Fernández');
    regular = await web.account('paciente-habitual', 'patient', 'Tomás Romero');
    await web.appointment(regular.patientId!, doctor.practitionerId!);
    const schedule = await web.node.request({ method: 'POST', url: '/fhir/R4/Schedule', payload: { resourceType: 'Schedule', active: true, actor: [{ reference: `Practitioner/${doctor.practitionerId}` }] }, headers: { 'content-type': 'application/fhir+json' } });
    expect(schedule.statusCode).toBe(201);
    const start = Date.now() + 2 * 86_400_000;
    const slot = await web.node.request({
      method: 'POST',
      url: '/fhir/R4/Slot',
      payload: { resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.json().id}` }, status: 'free', start: new Date(start).toISOString(), end: new Date(start + 20 * 60_000).toISOString() },
      headers: { 'content-type': 'application/fhir+json' },
    });
    expect(slot.statusCode).toBe(201);
    slotId = slot.json().id;
    browser = await launchChromium();
    page = await (await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES' })).newPage();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  async function expectAccessible(step: string): Promise<void> {
    await screenshotStep(page, JOURNEY, step);
    expect(await seriousAccessibilityViolations(page), `axe on ${step}`).toEqual([]);
  }

  it('signs reception in with MFA onto the whole clinic\'s schedule, with no chart to open', async () => {
    await page.goto(`${web.origin}/`);
    await page.waitForURL(/\/sign-in/);
    await page.fill('input[autocomplete="username"]', desk.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(desk.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/clinic`);
    const row = page.getByTestId('appointment-row').first();
    await row.waitFor();
    expect(await row.innerText()).toContain('Tomás Romero');
    expect(await row.getByTestId('appointment-practitioner').innerText()).toContain('Lucía Fernández');
    expect(await row.getByTestId('open-chart').count()).toBe(0);
    expect(await row.getByTestId('cancel-appointment').count()).toBe(1);
    await expectAccessible('01-schedule');
  });

  it('registers a new patient, books them into the clinician\'s free slot, and invites them to the portal', async () => {
    await page.getByTestId('nav-book').click();
    await page.getByTestId('reception-desk').waitFor();
    await expectAccessible('02-desk');
    await page.getByTestId('desk-register-start').click();
    const form = page.getByTestId('desk-register');
    await form.getByLabel('Nombre', { exact: true }).fill('Nora');
    await form.getByLabel('Apellidos').fill('Vidal');
    await form.getByLabel('Correo electrónico').fill('nora.vidal@example.org');
    await form.locator('button[type="submit"]').click();
    await page.getByTestId('desk-patient-name').waitFor();
    expect(await page.getByTestId('desk-patient-name').innerText()).toContain('Nora Vidal');

    await page.getByTestId('desk-clinician').selectOption(`Practitioner/${doctor.practitionerId}`);
    await page.getByTestId('desk-slot').first().click();
    await page.getByTestId('desk-booked').waitFor();
    await expectAccessible('03-booked');
    const slot = await web.node.request({ method: 'GET', url: `/fhir/R4/Slot/${slotId}` });
    expect(slot.json().status).toBe('busy');

    await page.getByTestId('desk-invite-form').locator('button[type="submit"]').click();
    const link = await page.getByTestId('desk-invite-link').inputValue();
    expect(link).toMatch(new RegExp(`^${web.origin}/invite#[A-Za-z0-9_-]{20,}$`));
    // No e-mail relay on this node: the desk says the link is to be passed on by hand (the admin page's words).
    const sent = page.getByTestId('invitation-sent');
    expect(await sent.getAttribute('data-emailed')).toBe('false');
    expect(await sent.innerText()).toMatch(/^Invitación para nora\.vidal@example\.org creada\. Es válida hasta .+ canal de confianza:$/);
    await expectAccessible('04-invited');

    // On the server: the appointment names the new patient and the clinician; the invitation is reception's.
    await web.node.ctx.audit.drain();
    const invitations = await web.node.ctx.store.db.selectFrom('invitation').select(['email', 'role', 'invited_by']).where('email', '=', 'nora.vidal@example.org').execute();
    expect(invitations).toEqual([{ email: 'nora.vidal@example.org', role: 'patient', invited_by: expect.stringMatching(/^account:/) }]);
  });

  it('shows reception its own security settings, and confirming once covers the next change for a few minutes', async () => {
    await page.getByTestId('nav-security').click();
    await page.getByTestId('security-page').waitFor();
    await page.getByTestId('session-row').first().waitFor();
    expect(await page.getByTestId('factor-totp').getAttribute('data-enabled')).toBe('true');
    await expectAccessible('05-security');

    // First change: password and a code (the next step's: sign-in used this step's, and a code works once).
    await page.getByTestId('new-codes').click();
    const form = page.getByTestId('reauth-form');
    await form.locator('input[autocomplete="current-password"]').fill(PASSWORD);
    await form.locator('input[autocomplete="one-time-code"]').fill(currentTotpCode(desk.totpSecret!, new Date(Date.now() + 30_000)));
    await expectAccessible('06-confirm');
    await form.locator('button[type="submit"]').click();
    await page.getByTestId('recovery-codes').waitFor();
    const first = await page.getByTestId('recovery-codes').innerText();
    await page.getByTestId('codes-saved').check();
    await page.getByTestId('codes-done').click();

    // Second change right after: nothing asked, new codes shown.
    await page.getByTestId('new-codes').click();
    await page.getByTestId('recovery-codes').waitFor();
    expect(await page.getByTestId('reauth-form').count()).toBe(0);
    expect(await page.getByTestId('recovery-codes').innerText()).not.toBe(first);
    await expectAccessible('07-codes-again');
  });
});

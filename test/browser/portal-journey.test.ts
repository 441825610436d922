import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { createInvitation } from '../../src/auth/invitations/invitations.js';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { Repository } from '../../src/records/repository.js';
import { heartRate } from '../../src/test-support/fixtures.js';
import { startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { launchChromium } from './support/chromium.js';
import { joinFromDeviceCheck } from './support/consult-flow.js';

/** A password the policy accepts (long, unrelated words, nothing of the patient's name). */
const PATIENT_PASSWORD = 'tortuga-violeta-canta-bajo-el-puente-73';

/**
 * A browser time zone in which the next hour and a half stays on today's date, so a slot booked now for a
 * few minutes ahead is "today" for the portal (and offers Join) whenever the test runs.
 */
function sameDayTimeZone(): string {
  const now = Date.now();
  for (const zone of ['UTC', 'Etc/GMT+10', 'Etc/GMT-10']) {
    const day = (t: number) => new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(t);
    if (day(now) === day(now + 90 * 60_000)) return zone;
  }
  return 'UTC';
}

interface Journey {
  name: string;
  locale: 'en-GB' | 'es-ES';
  /** The form the clinic's link has (/invite#token) or the path form (/invite/<token>). */
  linkForm: 'fragment' | 'path';
  texts: { title: string; from: string; bookedStatus: RegExp; waiting: string };
}

const JOURNEYS: Journey[] = [
  { name: 'portal-journey-en', locale: 'en-GB', linkForm: 'fragment', texts: { title: 'Welcome to telesalud', from: 'Elena Ríos has invited you', bookedStatus: /Your appointment is booked/, waiting: 'waiting-room' } },
  { name: 'portal-journey-es', locale: 'es-ES', linkForm: 'path', texts: { title: 'Bienvenido a telesalud', from: 'Elena Ríos le invita', bookedStatus: /Su cita está reservada/, waiting: 'waiting-room' } },
];

describe('patient portal journey in Chromium: invitation → TOTP → booking → join and wait', { timeout: 300_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let records: Repository;
  let practitionerRef: string;
  let scheduleId: string;

  beforeAll(async () => {
    // "Today" (and so the Join button) is the clinic's day: the clinic's zone is the one that keeps the slot on today.
    web = await startBrowserNode({ TELESALUD_CLINIC_TIME_ZONE: sameDayTimeZone() });
    browser = await launchChromium();
    records = new Repository(web.node.ctx.store.db, web.node.ctx.audit, SYSTEM_ACTOR, { requestId: 'portal-test', source: 'test' });
    const doctor = await web.account('doctora-portal', 'clinician', 'Elena Ríos');
    practitionerRef = `Practitioner/${doctor.practitionerId}`;
    const schedule = (await records.create({ resourceType: 'Schedule', active: true, actor: [{ reference: practitionerRef }], comment: 'Telesalud' } as never)) as { id: string };
    scheduleId = schedule.id;
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  /** Runs axe on the page as it is and keeps a screenshot of the step. */
  async function checkpoint(page: Page, journey: string, step: string): Promise<void> {
    await screenshotStep(page, journey, step);
    expect(await seriousAccessibilityViolations(page), `accessibility of ${journey}/${step}`).toEqual([]);
  }

  /** The "who accessed my record" table has a row with these who/what words (and no English fallback from the server). */
  async function expectAccessWords(page: Page, rows: [who: string, what: string][]): Promise<void> {
    const table = page.getByTestId('record-access');
    await table.getByTestId('access-entry').first().waitFor();
    const seen = await table.getByTestId('access-entry').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1).map((td) => td.textContent?.trim() ?? '')));
    for (const row of rows) expect(seen).toContainEqual(row);
    expect(await table.innerText()).not.toMatch(/installation token\)|\(other\)/);
  }

  for (const journey of JOURNEYS) {
    it(`works end to end (${journey.locale}, link ${journey.linkForm})`, async () => {
      const db = web.node.ctx.store.db;
      const key = journey.locale.slice(0, 2);
      // The clinic's side: a Patient with some history, a free slot soon, and an invitation.
      const patient = (await records.create({ resourceType: 'Patient', active: true, name: [{ given: ['Rosa'], family: `Quintana ${key}` }] } as never)) as { id: string };
      const patientRef = `Patient/${patient.id}`;
      for (const [daysAgo, value] of [[60, 88], [30, 79], [2, 72]] as const) await records.create(heartRate(patient.id, value, new Date(Date.now() - daysAgo * 86_400_000).toISOString()) as never);
      await records.create({
        resourceType: 'Composition',
        status: 'final',
        type: { coding: [{ system: 'http://loinc.org', code: '11506-3', display: 'Progress note' }] },
        subject: { reference: patientRef },
        date: new Date(Date.now() - 30 * 86_400_000).toISOString(),
        author: [{ reference: practitionerRef }],
        title: 'Visit summary',
        attester: [{ mode: 'legal', time: new Date(Date.now() - 30 * 86_400_000).toISOString(), party: { reference: practitionerRef } }],
        section: [{ title: 'Plan', text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Rest and <b>drink water</b>.</div>' } }],
      } as never);
      // Soon enough to be today, late enough to still be offered however slow the machine is.
      const slotStart = new Date(Math.ceil((Date.now() + 10 * 60_000) / 60_000) * 60_000 + (key === 'es' ? 20 * 60_000 : 0));
      const slot = (await records.create({ resourceType: 'Slot', schedule: { reference: `Schedule/${scheduleId}` }, status: 'free', start: slotStart.toISOString(), end: new Date(slotStart.getTime() + 20 * 60_000).toISOString() } as never)) as { id: string };
      const { token } = await createInvitation(db, { email: `rosa.${key}@example.org`, role: 'patient', displayName: 'Rosa Quintana', fhirRef: patientRef, invitedBy: practitionerRef });
      // Accesses by actors with no name of their own, for "who accessed my record" to word in the reader's language.
      const unnamed = { outcome: 'success' as const, patient: patientRef, source: '10.30.0.9', requestId: 'portal-test' };
      await web.node.ctx.audit.record({ ...unnamed, actor: 'admin-token', action: 'mfa-reset' });
      await web.node.ctx.audit.record({ ...unnamed, actor: 'client:tsc-0123456789abcdef01234567', action: 'read', resourceType: 'Observation', resourceId: patient.id });
      await web.node.ctx.audit.record({ ...unnamed, actor: 'system:mail', action: 'notification-sent' });

      const context: BrowserContext = await browser.newContext({ ignoreHTTPSErrors: true, locale: journey.locale, timezoneId: sameDayTimeZone(), viewport: { width: 414, height: 860 } });
      context.setDefaultTimeout(20_000);
      const page = await context.newPage();
      try {
        // 1. The invitation: who invites, the rules in plain words, live strength feedback.
        await page.goto(journey.linkForm === 'fragment' ? `${web.origin}/invite#${token}` : `${web.origin}/invite/${token}`);
        await page.getByTestId('invite-form').waitFor();
        // The token leaves the address bar at once.
        expect(page.url()).toBe(`${web.origin}/invite`);
        expect(await page.locator('h1').innerText()).toBe(journey.texts.title);
        expect(await page.getByTestId('invite-from').innerText()).toContain(journey.texts.from);
        await page.getByTestId('new-password').fill('rosa2024');
        await page.locator('[data-testid="password-strength"][data-level="weak"]').waitFor();
        // Each reason in words: too short, her own name, a known password.
        expect(await page.locator('[data-testid="password-problems"] li').count()).toBeGreaterThanOrEqual(3);
        await checkpoint(page, journey.name, '01-invite-weak-password');
        await page.getByTestId('new-password').fill(PATIENT_PASSWORD);
        await page.locator('[data-testid="password-strength"][data-level="ok"]').waitFor();
        await page.getByTestId('repeat-password').fill(PATIENT_PASSWORD);
        await checkpoint(page, journey.name, '02-invite-strong-password');
        await page.getByTestId('invite-accept').click();

        // 2. A second factor: the authenticator app, with the key the page shows.
        await page.getByTestId('mfa-choice').waitFor();
        await checkpoint(page, journey.name, '03-mfa-choice');
        await page.getByTestId('mfa-choose-totp').click();
        await page.getByTestId('totp-setup').waitFor();
        expect(await page.getByTestId('totp-qr').getAttribute('src')).toMatch(/^data:image\/svg\+xml;base64,/);
        await checkpoint(page, journey.name, '04-totp-setup');
        const secret = (await page.getByTestId('totp-secret').getAttribute('data-secret'))!;
        await page.getByTestId('totp-code').fill(currentTotpCode(secret));
        await page.getByTestId('totp-confirm').click();
        await page.getByTestId('recovery-codes').waitFor();
        expect(await page.locator('[data-testid="recovery-codes"] li').count()).toBe(10);
        expect(await page.getByTestId('codes-done').isDisabled()).toBe(true);
        await checkpoint(page, journey.name, '05-recovery-codes');
        await page.getByTestId('codes-saved').check();
        await page.getByTestId('codes-done').click();
        await page.waitForURL(`${web.origin}/portal`);
        const account = await db.selectFrom('account').select(['id', 'totp_secret_sealed']).where('email', '=', `rosa.${key}@example.org`).executeTakeFirstOrThrow();
        expect(account.totp_secret_sealed).not.toBeNull();

        // 3. Book the free slot.
        await page.getByTestId('appointments-page').waitFor();
        await checkpoint(page, journey.name, '06-portal-empty');
        await page.getByTestId('book-start').click();
        const slotButton = page.locator(`[data-testid="slot"][data-start="${slotStart.toISOString()}"]`);
        await slotButton.waitFor();
        await slotButton.click();
        await page.getByTestId('booking-confirm').waitFor();
        await checkpoint(page, journey.name, '07-booking');
        await page.getByTestId('booking-submit').click();
        await page.getByTestId('appointments-status').waitFor();
        expect(await page.getByTestId('appointments-status').innerText()).toMatch(journey.texts.bookedStatus);
        const card = page.getByTestId('upcoming-appointment').first();
        await card.waitFor();
        const appointmentId = (await card.getAttribute('data-id'))!;
        const stored = await records.read('Appointment', appointmentId);
        expect(stored).toMatchObject({ status: 'booked', slot: [{ reference: `Slot/${slot.id}` }], start: slotStart.toISOString() });
        expect(await records.read('Slot', slot.id)).toMatchObject({ status: 'busy' });
        await checkpoint(page, journey.name, '08-booked');

        if (key === 'en') {
          // The other pages of the portal, each checked as the patient sees it.
          await page.getByTestId('nav-record').click();
          await page.getByTestId('vital-chart').first().waitFor();
          await page.getByTestId('record-access').waitFor();
          expect(await page.locator('[data-testid="vital-table"] tbody tr').count()).toBe(3);
          // The signed note, its narrative shown as text (never as markup), with its author.
          const summary = page.getByTestId('visit-summary');
          expect(await summary.locator('summary').innerText()).toContain('Elena Ríos');
          await summary.locator('summary').click();
          expect(await summary.innerText()).toContain('Rest and drink water.');
          expect(await summary.locator('b').count()).toBe(0);
          await expectAccessWords(page, [
            ['the installation token (administrator)', 'reset the second sign-in step'],
            ['a connected system that is no longer registered (connected system)', 'looked at · a measurement'],
            ['telesalud', 'sent an e-mail notice'],
          ]);
          await checkpoint(page, journey.name, '09-record');
          await page.getByTestId('nav-security').click();
          await page.locator('[data-testid="factor-totp"][data-enabled="true"]').waitFor();
          await page.getByTestId('session-row').first().waitFor();
          await checkpoint(page, journey.name, '10-security');
          await page.getByTestId('nav-appointments').click();
          await card.waitFor();
        } else {
          // Who accessed the record, every word in Spanish: none of the server's, none left in English.
          await page.getByTestId('nav-record').click();
          await expectAccessWords(page, [
            ['el token de instalación (administrador)', 'restableció el segundo paso de acceso'],
            ['un sistema conectado que ya no está registrado (sistema conectado)', 'consultó · una medición'],
            ['telesalud', 'envió un aviso por correo electrónico'],
          ]);
          await page.getByTestId('nav-appointments').click();
          await card.waitFor();
        }

        // 4. Join today's appointment and wait: Join, agree to telehealth (first time only), Join — three clicks.
        await page.getByTestId('join').click();
        await page.waitForURL(`${web.origin}/consult/${appointmentId}`);
        await page.getByTestId('consent-step').waitFor();
        await checkpoint(page, journey.name, '11-consent');
        await page.getByTestId('consent-agree').click();
        await page.getByTestId('device-check').waitFor();
        await checkpoint(page, journey.name, '12-device-check');
        await joinFromDeviceCheck(page);
        await page.getByTestId(journey.texts.waiting).waitFor();
        await checkpoint(page, journey.name, '13-waiting-room');
        // The waiting room knows this patient is there, for this appointment.
        const joined = await db.selectFrom('audit_event').select(['outcome']).where('action', '=', 'consult-join').where('patient', '=', patientRef).execute();
        expect(joined.map((j) => j.outcome)).toContain('success');
      } finally {
        await context.close();
      }
    });
  }
});

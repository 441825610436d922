import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext } from 'playwright-core';
import { startTestSmtpServer, type ReceivedMail, type TestSmtpServer } from '../../src/notifications/test-smtp-server.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium, newParticipant, type Participant } from './support/chromium.js';
import { joinFromDeviceCheck, signInThroughConsult } from './support/consult-flow.js';

const JOURNEY = 'guest-link-email';
const CLINIC_ZONE = 'America/Mexico_City';
/** The guest's device is far from the clinic: the time shown must still be the clinic's. */
const DEVICE_ZONE = 'Asia/Tokyo';

const to = (address: string) => (mail: ReceivedMail) => mail.envelopeTo.includes(address);
const clinicClock = (instant: string, zone: string) => new Intl.DateTimeFormat('es-ES', { timeStyle: 'short', timeZone: zone }).format(new Date(instant));

/**
 * A clinician in a consultation e-mails a guest link (a real SMTP server receives it); the guest
 * opens the link from the e-mail and sees when the consultation is, on the clinic's clock, and
 * nothing about who it is with.
 */
describe('a guest link sent by e-mail from the consultation', { timeout: 180_000 }, () => {
  let smtp: TestSmtpServer;
  let web: BrowserNode;
  let browser: Browser;
  let host: Participant;
  let guestContext: BrowserContext | undefined;
  let appointmentId: string;
  let start: string;
  let doctor: { email: string; totpSecret?: string | undefined; practitionerId?: string | undefined };

  beforeAll(async () => {
    smtp = await startTestSmtpServer();
    web = await startBrowserNode({
      TELESALUD_SMTP_URL: `smtp://${smtp.user}:${encodeURIComponent(smtp.password)}@127.0.0.1:${smtp.port}`,
      TELESALUD_SMTP_CA_FILE: smtp.caFile,
      TELESALUD_MAIL_FROM: 'Clínica Norte <no-reply@clinica-norte.example.org>',
      TELESALUD_CLINIC_TIME_ZONE: CLINIC_ZONE,
    });
    doctor = await web.account('doctora-correo', 'clinician', 'Valeria Quispe');
    const patient = await web.account('paciente-correo', 'patient', 'Rosa Huamán');
    appointmentId = await web.appointment(patient.patientId!, doctor.practitionerId!);
    const stored = await web.node.ctx.consult.rights.appointment(appointmentId, { requestId: 'guest-mail-test', source: 'test' });
    start = (stored as { start: string }).start;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
    await smtp?.close();
  });

  it('checks the address, sends the link in the chosen language, and says so in words', async () => {
    host = await newParticipant(browser);
    await signInThroughConsult(host.page, web.origin, appointmentId, doctor.email, doctor.totpSecret);
    await joinFromDeviceCheck(host.page);
    // The clinician's call screen (its own chunk) replaces the plain one as it loads: wait for it.
    await host.page.getByTestId('clinician-call').waitFor();
    await host.page.getByTestId('lobby').waitFor();

    await host.page.getByTestId('guest-label').fill('Intérprete');
    await host.page.getByLabel('Enviarlo también por correo electrónico').check();
    // A typo is named before anything is created.
    await host.page.getByLabel('Correo electrónico de la persona invitada').fill('interprete@');
    await host.page.getByTestId('create-guest-link').click();
    expect(await host.page.getByRole('alert').first().innerText()).toMatch(/dirección de correo completa/);
    expect(await host.page.getByTestId('guest-email').getAttribute('aria-invalid')).toBe('true');
    expect(await host.page.getByTestId('guest-link').count()).toBe(0);

    await host.page.getByLabel('Correo electrónico de la persona invitada').fill('interprete.correo@example.org');
    await host.page.getByLabel('Idioma del correo').selectOption('en');
    await host.page.getByTestId('create-guest-link').click();
    const confirmation = await host.page.getByTestId('guest-link-emailed').innerText();
    expect(confirmation).toContain('enviado por correo a interprete.correo@example.org');
    const shownUrl = await host.page.getByTestId('guest-link').inputValue();

    const mail = await smtp.waitFor(to('interprete.correo@example.org'));
    expect(mail.parsed.subject).toBe('Link to join a video consultation');
    expect(mail.parsed.text ?? '').toContain(shownUrl);
    for (const name of ['Huamán', 'Quispe']) expect(mail.raw).not.toContain(name);

    expect(await seriousAccessibilityViolations(host.page)).toEqual([]);
    await screenshotStep(host.page, JOURNEY, '1-host-emailed');
  });

  it("shows the guest, from the e-mailed link, the consultation's time on the clinic's clock and no names", async () => {
    const mail = smtp.received.find(to('interprete.correo@example.org'))!;
    const url = /https:\/\/\S+\/consult\/guest#[A-Za-z0-9_-]{16,64}/.exec(mail.parsed.text ?? '')?.[0];
    expect(url).toBeDefined();
    guestContext = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', timezoneId: DEVICE_ZONE, viewport: { width: 414, height: 860 } });
    guestContext.setDefaultTimeout(15_000);
    const page = await guestContext.newPage();
    await page.goto(url!);
    const shown = await page.getByTestId('guest-appointment-time').innerText();
    expect(shown).toContain(clinicClock(start, CLINIC_ZONE));
    expect(clinicClock(start, DEVICE_ZONE)).not.toBe(clinicClock(start, CLINIC_ZONE));
    expect(shown).not.toContain(clinicClock(start, DEVICE_ZONE));
    expect(shown).toMatch(/hora de la clínica/);
    const body = await page.locator('body').innerText();
    for (const name of ['Huamán', 'Rosa', 'Quispe', 'Valeria']) expect(body).not.toContain(name);
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshotStep(page, JOURNEY, '2-guest-time');
  });

  it('tells a guest whose link no longer works, without the time', async () => {
    const page = await guestContext!.newPage();
    await page.goto(`${web.origin}/consult/guest#${'x'.repeat(43)}`);
    await page.getByTestId('guest-link-unusable').waitFor();
    expect(await page.getByRole('alert').innerText()).toMatch(/ya no se puede usar/);
    expect(await page.getByTestId('guest-appointment-time').count()).toBe(0);
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
  });
});

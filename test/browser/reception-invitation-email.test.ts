import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { startTestSmtpServer, type ReceivedMail, type TestSmtpServer } from '../../src/notifications/test-smtp-server.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium } from './support/chromium.js';

const JOURNEY = 'reception-invitation-email';
const PATIENT_EMAIL = 'ana.ferreyra@example.org';
const to = (address: string) => (mail: ReceivedMail) => mail.envelopeTo.includes(address);

/**
 * The reception desk invites a patient it has just registered, on a node that sends e-mail (a
 * real SMTP server on loopback, as guest-link-email.test.ts): the desk says the invitation was
 * also e-mailed, the message arrives with the same link and nothing about the patient, and the
 * link opens the invitation.
 */
describe('the reception desk e-mails a portal invitation', { timeout: 180_000 }, () => {
  let smtp: TestSmtpServer;
  let web: BrowserNode;
  let browser: Browser;
  let page: Page;
  let desk: { email: string; totpSecret?: string | undefined };
  let shownLink: string;

  beforeAll(async () => {
    smtp = await startTestSmtpServer();
    web = await startBrowserNode({
      TELESALUD_SMTP_URL: `smtp://${smtp.user}:${encodeURIComponent(smtp.password)}@127.0.0.1:${smtp.port}`,
      TELESALUD_SMTP_CA_FILE: smtp.caFile,
      TELESALUD_MAIL_FROM: 'Clínica Norte <no-reply@clinica-norte.example.org>',
    });
    desk = await web.account('recepcion-correo', 'reception', 'Marta Salinas');
    browser = await launchChromium();
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES' });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
    await smtp?.close();
  });

  it('registers the patient and says the invitation went by e-mail too', async () => {
    await page.goto(`${web.origin}/sign-in`);
    await page.fill('input[autocomplete="username"]', desk.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(desk.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/clinic`);
    await page.getByTestId('nav-book').click();
    await page.getByTestId('desk-register-start').click();
    const form = page.getByTestId('desk-register');
    await form.getByLabel('Nombre', { exact: true }).fill('Ana');
    await form.getByLabel('Apellidos').fill('Ferreyra');
    await form.getByLabel('Correo electrónico').fill(PATIENT_EMAIL);
    await form.locator('button[type="submit"]').click();
    await page.getByTestId('desk-patient-name').waitFor();

    // The address registered is the one offered for the invitation.
    const invite = page.getByTestId('desk-invite-form');
    expect(await invite.locator('input[type="email"]').inputValue()).toBe(PATIENT_EMAIL);
    await invite.locator('button[type="submit"]').click();
    const sent = page.getByTestId('invitation-sent');
    await sent.waitFor();
    expect(await sent.getAttribute('data-emailed')).toBe('true');
    expect(await sent.innerText()).toMatch(/^Invitación para ana\.ferreyra@example\.org creada y enviada por correo\. Es válida hasta .+\. Si no le llega, envíele este mismo enlace por un canal de confianza:$/);
    shownLink = await page.getByTestId('desk-invite-link').inputValue();
    expect(shownLink).toMatch(new RegExp(`^${web.origin}/invite#[A-Za-z0-9_-]{20,}$`));
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshotStep(page, JOURNEY, '1-desk-emailed');
  });

  it('delivers the message with the same link, in the clinic language, and nothing about the patient', async () => {
    const mail = await smtp.waitFor(to(PATIENT_EMAIL));
    expect(mail.secure).toBe(true);
    expect(mail.parsed.subject).toBe('Su invitación al portal del paciente');
    expect(mail.parsed.text ?? '').toContain(shownLink);
    // Decoded bodies too: the raw message may carry them base64-encoded.
    const everything = [mail.raw, mail.parsed.text ?? '', typeof mail.parsed.html === 'string' ? mail.parsed.html : ''].join('\n');
    for (const name of ['Ferreyra', 'Ana ', 'Salinas', 'Marta']) expect(everything).not.toContain(name);
    expect(smtp.received.filter(to(PATIENT_EMAIL))).toHaveLength(1);

    // The audit names the message with the invitation, as for any invitation sent by e-mail.
    await web.node.ctx.audit.drain();
    const created = await web.node.ctx.store.db.selectFrom('audit_event').select('detail').where('action', '=', 'invitation-created').executeTakeFirstOrThrow();
    expect(created.detail).toMatchObject({ role: 'patient', emailMessage: expect.any(String) });
  });

  it("opens the invitation from the e-mail's link", async () => {
    const mail = smtp.received.find(to(PATIENT_EMAIL))!;
    const url = /https:\/\/\S+\/invite#[A-Za-z0-9_-]{20,}/.exec(mail.parsed.text ?? '')?.[0];
    expect(url).toBe(shownLink);
    const patientPage = await (await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES' })).newPage();
    await patientPage.goto(url!);
    await patientPage.getByTestId('invite-form').waitFor();
    expect(await patientPage.getByTestId('invite-page').getAttribute('data-step')).toBe('password');
  });
});

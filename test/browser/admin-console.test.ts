import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium, newParticipant, waitUntil, type Participant } from './support/chromium.js';
import { joinFromDeviceCheck, signInThroughConsult } from './support/consult-flow.js';

const JOURNEY = 'admin-console';
/** The attacker comes from another loopback address, so its ban never touches the browsers on 127.0.0.1. */
const ATTACKER = '127.0.0.2';

/** One raw request from the attacker's address (Node, not a browser: no browser would send this). */
function attack(origin: string, path: string): Promise<number> {
  const url = new URL(path, origin);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET', localAddress: ATTACKER, rejectUnauthorized: false, headers: { accept: 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The admin console in real Chromium: an administrator signs in with their second factor,
 * creates a clinician (by invitation, with MFA required by the policy), finds a consultation in
 * the audit trail and verifies the chain, sees the shield's blocks of an attack made just
 * before, and the service status with the consultation running. axe on every page.
 */
describe('admin console in the browser', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let admin: { email: string; totpSecret?: string | undefined };
  let doctor: { email: string; totpSecret?: string | undefined; practitionerId?: string | undefined };
  let patientId: string;
  let appointmentId: string;
  let host: Participant;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    web = await startBrowserNode();
    admin = await web.account('admin-consola', 'admin', 'Marta Ruiz');
    doctor = await web.account('doctora-consola', 'clinician', 'Lucía Fernández');
    const patient = await web.account('paciente-consola', 'patient', 'Tomás Romero');
    patientId = patient.patientId!;
    appointmentId = await web.appointment(patientId, doctor.practitionerId!);
    browser = await launchChromium();
    // An administrator at a desk: a wide window, in Spanish.
    context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(20_000);
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  const accessible = async (step: string, on: Page = page) => {
    await screenshotStep(on, JOURNEY, step);
    expect(await seriousAccessibilityViolations(on)).toEqual([]);
  };
  const goTo = async (section: string) => {
    await page.getByTestId(`admin-nav-${section}`).click();
    await page.waitForURL(`${web.origin}/admin/${section}`);
    await page.getByTestId(`admin-page-${section}`).waitFor();
  };

  it('signs the administrator in with a second factor and lands on the users page', async () => {
    // A consultation is running (the clinician waits in the call), and someone attacks the service.
    host = await newParticipant(browser);
    await signInThroughConsult(host.page, web.origin, appointmentId, doctor.email, doctor.totpSecret);
    await joinFromDeviceCheck(host.page);
    await host.page.getByTestId('call').waitFor();
    expect(await attack(web.origin, "/fhir/R4/Patient?name=x'%20UNION%20SELECT%20password%20FROM%20account--")).toBe(403);

    await page.goto(`${web.origin}/admin/users`);
    await page.waitForURL(/\/sign-in\?next=%2Fadmin%2Fusers$/);
    await page.getByTestId('sign-in-form').waitFor();
    await accessible('0-sign-in');
    await page.fill('input[autocomplete="username"]', admin.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.click('button[type="submit"]');
    // Without the code, an administrator does not get in.
    await page.getByTestId('sign-in-error').waitFor();
    expect(page.url()).toContain('/sign-in');
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(admin.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/admin/users`);
    await page.getByTestId('users-table').waitFor();
    expect(await page.locator('h1').innerText()).toBe('Usuarios y roles');
    expect(await page.getByTestId(`user-${doctor.email}`).innerText()).toContain('Lucía Fernández');
    await accessible('1-users');
  });

  it('creates a clinician by invitation, with a second factor required by the policy', async () => {
    await page.getByTestId('invite-email').fill('nuevo.medico@clinica.example.org');
    await page.getByTestId('invite-name').fill('Andrés Vidal');
    await page.getByTestId('invite-role').selectOption('clinician');
    await page.getByTestId('invite-submit').click();
    await page.getByTestId('invite-created').waitFor();
    const link = await page.getByTestId('invite-url').inputValue();
    expect(link).toMatch(new RegExp(`^${web.origin}/invite#[A-Za-z0-9_-]{20,}$`));
    await accessible('2-invitation');

    // The policy page: MFA stays required for clinicians; the clinicians' idle timeout is shortened.
    await goTo('policy');
    expect(await page.getByTestId('policy-mfa-clinician').isChecked()).toBe(true);
    expect(await page.getByTestId('policy-mfa-admin').isChecked()).toBe(true);
    await page.getByTestId('policy-idle-clinician').fill('10');
    await page.getByTestId('policy-save').click();
    await page.getByTestId('policy-saved').waitFor();
    const policy = await page.evaluate(async () => (await fetch('/api/admin/policy')).json());
    expect(policy).toMatchObject({ mfaRequired: { clinician: true }, sessions: { idleMinutes: { clinician: 10 } } });
    // A value out of range is refused with the field named, nothing changed.
    await page.getByTestId('policy-min-length').fill('3');
    await page.getByTestId('policy-save').click();
    await page.getByTestId('policy-error').waitFor();
    expect(await page.getByTestId('policy-error').innerText()).toContain('Longitud mínima (caracteres)');
    await accessible('3-policy');

    // The invitee opens the link: it asks for a second factor, and the new account must enrol one before anything else.
    const token = link.split('#')[1]!;
    const invitee = await browser.newContext({ ignoreHTTPSErrors: true });
    const inviteePage = await invitee.newPage();
    await inviteePage.goto(`${web.origin}/privacy`);
    const preview = (await inviteePage.evaluate(async (t) => (await fetch(`/api/invitations/${t}/preview`)).json(), token)) as { mfaRequired: boolean };
    expect(preview.mfaRequired).toBe(true);
    const accepted = (await inviteePage.evaluate(
      async (t) => (await fetch('/api/invitations/accept', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: t, password: 'tranquila-lluvia-sobre-Valparaíso-73' }) })).json(),
      token,
    )) as { mfaEnrolmentRequired?: boolean };
    expect(accepted.mfaEnrolmentRequired).toBe(true);
    await invitee.close();

    await goTo('users');
    const row = page.getByTestId('user-nuevo.medico@clinica.example.org');
    await row.waitFor();
    expect(await row.innerText()).toContain('Andrés Vidal');
    expect(await row.getByTestId('user-mfa').innerText()).toBe('Ninguno');
    // Disabling asks first, then says what it did.
    page.once('dialog', (dialog) => void dialog.accept());
    await row.getByTestId('user-disable').click();
    await page.getByTestId('users-notice').waitFor();
    await row.getByTestId('user-enable').waitFor();
    await row.getByTestId('user-enable').click();
    await row.getByTestId('user-disable').waitFor();
  });

  it('finds the consultation in the audit trail, exports it, and verifies the chain', async () => {
    await goTo('audit');
    await page.getByTestId('audit-patient').fill(patientId);
    await page.getByTestId('audit-kind').fill('consult-join');
    await page.getByTestId('audit-submit').click();
    const joined = page.locator('[data-testid="audit-row"][data-action="consult-join"]');
    await joined.first().waitFor();
    const text = await joined.first().innerText();
    expect(text).toContain(`Practitioner/${doctor.practitionerId}`);
    expect(text).toContain(`Appointment/${appointmentId}`);
    expect(await page.locator('[data-testid="audit-row"]:not([data-action="consult-join"])').count()).toBe(0);

    // The user filter takes an email.
    await page.getByTestId('audit-patient').fill('');
    await page.getByTestId('audit-kind').fill('sign-in');
    await page.getByTestId('audit-user').fill(admin.email);
    await page.getByTestId('audit-submit').click();
    await page.locator('[data-testid="audit-row"][data-action="sign-in"]').first().waitFor();

    const href = await page.getByTestId('audit-export').getAttribute('href');
    const exported = await page.evaluate(async (url) => {
      const res = await fetch(url!);
      return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
    }, href);
    expect(exported.status).toBe(200);
    expect(exported.type).toContain('application/fhir+ndjson');
    expect(exported.body.split('\n').filter(Boolean).some((line) => line.includes('"consult-join"') && line.includes(`Appointment/${appointmentId}`))).toBe(true);

    await page.getByTestId('chain-verify').click();
    await page.getByTestId('chain-ok').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('chain-ok').innerText()).toContain('Íntegro');
    await accessible('4-audit');
  });

  it("sees the shield's block of the attack: what, where from, when, and counted in the chart", async () => {
    await goTo('security');
    const blocks = page.locator(`[data-testid="security-event"][data-kind="shield-block"]`);
    await waitUntil(
      'the block to be listed',
      async () => {
        if ((await blocks.count()) > 0) return true;
        await page.getByTestId('security-refresh').click();
        return false;
      },
      (listed) => listed,
      20_000,
      500,
    );
    const block = await blocks.first().innerText();
    expect(block).toContain(ATTACKER);
    expect(block).toContain('Inyección SQL');
    expect(block).toContain('GET /fhir/R4/:type');
    expect(Number(await page.getByTestId('security-total-shield-block').locator('.figure').innerText())).toBeGreaterThanOrEqual(1);
    expect(await page.getByTestId('security-chart').locator('svg rect.series-shield-block').count()).toBeGreaterThanOrEqual(1);
    expect(await page.getByTestId('security-sources').innerText()).toContain(ATTACKER);
    expect(await page.getByTestId('security-families').innerText()).toContain('Inyección SQL');
    await accessible('5-security');
  });

  it('shows the node, the running consultation and the traffic, in Spanish and English', async () => {
    await goTo('status');
    await page.getByTestId('status-nodes').waitFor();
    expect(await page.getByTestId('status-node').count()).toBe(1);
    expect(await page.getByTestId('status-ready').innerText()).toBe('Listo');
    await waitUntil('the running consultation', () => page.getByTestId('status-rooms').locator('.figure').innerText(), (n) => n === '1', 20_000, 500);
    expect(await page.getByTestId('status-participants').locator('.figure').innerText()).toBe('1');
    expect(await page.getByTestId('status-traffic-days').locator('svg[role="img"]').count()).toBe(1);
    expect(await page.getByTestId('status-traffic-now').locator('svg path.chart-line').count()).toBe(1);
    await accessible('6-status');

    await page.getByTestId('language').selectOption('en');
    expect(await page.locator('h1').innerText()).toBe('Service status');
    expect(await page.getByTestId('status-ready').innerText()).toBe('Ready');
    await accessible('7-status-en');

    // On a phone: one column, the same figures, still accessible.
    await page.setViewportSize({ width: 414, height: 860 });
    await goTo('security');
    await page.getByTestId('security-chart').waitFor();
    expect(await page.locator('h1').innerText()).toBe('Security events');
    await accessible('8-security-phone');
  });

  it('keeps a clinician out of the console', async () => {
    await host.page.goto(`${web.origin}/admin/users`);
    await host.page.getByTestId('admin-not-admin').waitFor();
    expect(await host.page.getByTestId('users-table').count()).toBe(0);
    await accessible('9-clinician-refused', host.page);
    await host.context.close();
  });
});

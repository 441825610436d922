import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { SESSION_COOKIE } from '../../src/auth/sessions/session-store.js';
import { seriousAccessibilityViolations } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium } from './support/chromium.js';
import { joinFromDeviceCheck } from './support/consult-flow.js';

/**
 * Two small things people see: the admin's policy page says why a value was refused in the admin's
 * own language (not the service's English), and a guest's consultation page asks for no session
 * (a guest has none: the request could only be refused).
 */
describe('policy refusals in the admin language; a guest page without session requests', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let admin: Awaited<ReturnType<BrowserNode['account']>>;
  let clinician: Awaited<ReturnType<BrowserNode['account']>>;
  let appointmentId: string;
  let adminCookie: string;

  beforeAll(async () => {
    web = await startBrowserNode();
    admin = await web.account('admin-politica', 'admin', 'Pilar Medina');
    clinician = await web.account('medica-invitado', 'clinician', 'Irene Soler');
    const patient = await web.account('paciente-invitado', 'patient', 'Hugo Lara');
    appointmentId = await web.appointment(patient.patientId!, clinician.practitionerId!);
    const signIn = await web.node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: admin.email, password: PASSWORD, code: currentTotpCode(admin.totpSecret!) } });
    expect(signIn.statusCode).toBe(200);
    adminCookie = signIn.cookies.find((c) => c.name === SESSION_COOKIE)!.value;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  async function adminPage(locale: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale, viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(15_000);
    await context.addCookies([{ name: SESSION_COOKIE, value: adminCookie, url: web.origin, secure: true, httpOnly: true, sameSite: 'Strict' }]);
    const page = await context.newPage();
    await page.goto(`${web.origin}/admin/policy`);
    await page.getByTestId('policy-form').waitFor();
    return { context, page };
  }

  /** Three refused values: one out of bounds, two within bounds but at odds with another value. */
  async function submitRefusedValues(page: Page): Promise<Record<string, string>> {
    await page.getByTestId('policy-min-length').fill('3');
    await page.getByTestId('policy-idle-patient').fill('1');
    await page.getByTestId('policy-save').click();
    await page.getByTestId('policy-error').waitFor();
    const items = await page.locator('[data-testid="policy-error"] li').evaluateAll((lis) => lis.map((li) => [String((li as any).dataset.field), String((li as any).innerText)]));
    return Object.fromEntries(items);
  }

  it('names each refused policy value and why, in Spanish, and changes nothing', async () => {
    const { context, page } = await adminPage('es-ES');
    const before = (await web.node.request({ method: 'GET', url: '/api/admin/policy' })).json();
    const shown = await submitRefusedValues(page);
    expect(shown).toEqual({
      'password.minLength': 'Longitud mínima (caracteres): Escriba un número entero de 8 a 64.',
      'sessions.idleMinutes.patient': 'Inactividad máxima, rol Paciente (minutos): Escriba un número entero de 2 a 240.',
    });
    // No English from the service on the page.
    expect(await page.getByTestId('policy-error').innerText()).not.toMatch(/must|whole number|inglés/i);
    expect(await page.getByTestId('policy-min-length').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByTestId('policy-idle-clinician').getAttribute('aria-invalid')).toBeNull();
    expect((await web.node.request({ method: 'GET', url: '/api/admin/policy' })).json()).toEqual(before);

    // A value within its bounds, refused for how it relates to another: the session's whole life.
    await page.getByTestId('policy-min-length').fill('12');
    await page.getByTestId('policy-idle-patient').fill('30');
    await page.getByTestId('policy-idle-clinician').fill('120');
    await page.locator('input[type="number"]').last().fill('1');
    await page.getByTestId('policy-save').click();
    await page.locator('[data-testid="policy-error"] li[data-field="sessions.idleMinutes.clinician"]').waitFor();
    expect(await page.locator('[data-testid="policy-error"] li[data-field="sessions.idleMinutes.clinician"]').innerText()).toBe(
      'Inactividad máxima, rol Profesional clínico (minutos): No puede ser más larga que la duración máxima de una sesión.',
    );
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await context.close();
  });

  it('says the same in English to an admin who reads English', async () => {
    const { context, page } = await adminPage('en-US');
    const shown = await submitRefusedValues(page);
    expect(shown['password.minLength']).toBe('Minimum length (characters): Enter a whole number from 8 to 64.');
    expect(shown['sessions.idleMinutes.patient']).toBe('Idle timeout for Patients (minutes): Enter a whole number from 2 to 240.');
    await context.close();
  });

  it('opens a guest link and joins the waiting room without asking for a session', async () => {
    const link = await web.node.ctx.consult.store.createGuestLink({ appointmentId, label: 'Intérprete', createdBy: `Practitioner/${clinician.practitionerId}`, minutes: 30 });
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', viewport: { width: 414, height: 860 } });
    context.setDefaultTimeout(15_000);
    const page = await context.newPage();
    const sessionRequests: string[] = [];
    const refused: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/api/auth/session') sessionRequests.push(`${r.method()} ${r.url()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) refused.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });
    await page.goto(`${web.origin}/consult/guest#${link.token}`);
    // The preview (a POST to a public route) answered: the time is shown.
    await page.getByTestId('guest-appointment-time').waitFor();
    await joinFromDeviceCheck(page);
    await page.getByTestId('waiting-room').waitFor({ timeout: 30_000 });
    expect(sessionRequests).toEqual([]);
    expect(refused).toEqual([]);
    await context.close();
  });
});

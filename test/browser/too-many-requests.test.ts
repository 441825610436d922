import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { RATE_WINDOW_MS } from '../../src/edge/rate-limit-plugin.js';
import { Repository } from '../../src/records/repository.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium } from './support/chromium.js';

const JOURNEY = 'too-many-requests';
/** Requests a minute per account on this node: enough to sign in and open a page, soon spent on purpose. */
const PER_ACCOUNT = 100;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The limits count per minute on windows aligned to the clock, weighing the previous minute in.
 * An account whose first request and whose spent budget fall in the same minute must wait for
 * the rest of it: a wait long enough that the form sent right after is refused for certain.
 */
async function startEarlyInAMinute(): Promise<void> {
  const elapsed = Date.now() % RATE_WINDOW_MS;
  if (elapsed > 30_000) await sleep(RATE_WINDOW_MS - elapsed + 250);
}

/** Spends the signed-in account's budget from the page itself; the server's Retry-After of the first refusal. */
async function spendBudget(page: Page): Promise<number> {
  const wait = await page.evaluate(async (most: number) => {
    for (let i = 0; i < most; i++) {
      const res = await fetch('/api/auth/session', { headers: { accept: 'application/json' } });
      if (res.status === 429) return Number(res.headers.get('retry-after'));
    }
    return 0;
  }, PER_ACCOUNT * 2);
  // A refusal, and a wait that outlasts the click that follows.
  expect(wait).toBeGreaterThanOrEqual(5);
  return wait;
}

/**
 * A real 429 from the node's rate limits, in each area: the patient portal, the clinician's
 * workspace and the admin console each say "too many attempts, wait N seconds" in the reader's
 * language, with the wait the server named, and keep everything the user typed in the form; the
 * sign-in page says the same of its own throttle, in minutes.
 */
describe('too many requests, in every area of the browser app', { timeout: 300_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    web = await startBrowserNode({ TELESALUD_RATE_LIMIT_PER_ACCOUNT: String(PER_ACCOUNT) });
    browser = await launchChromium();
  });
  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  async function open(locale: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale, viewport });
    context.setDefaultTimeout(20_000);
    contexts.push(context);
    return context.newPage();
  }

  async function signIn(page: Page, url: string, email: string, totpSecret?: string): Promise<void> {
    await page.goto(`${web.origin}${url}`);
    await page.waitForURL(/\/sign-in/);
    await page.fill('input[autocomplete="username"]', email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    if (totpSecret) await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(totpSecret));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}${url}`);
  }

  const accessible = async (page: Page, step: string) => {
    await screenshotStep(page, JOURNEY, step);
    expect(await seriousAccessibilityViolations(page), `axe on ${step}`).toEqual([]);
  };

  /** The number of seconds a message asks to wait: never more than the server said, never none. */
  const secondsIn = (text: string, pattern: RegExp, serverWait: number) => {
    const seconds = Number(pattern.exec(text)?.[1]);
    expect(seconds, text).toBeGreaterThanOrEqual(1);
    expect(seconds, text).toBeLessThanOrEqual(serverWait);
    // Plain words only: no status code, no code name, no server wording.
    expect(text).not.toMatch(/429|rate-limited|rate limit|requests a minute|account:/i);
    return seconds;
  };

  it('tells a patient in Spanish how long to wait when exporting their record, and keeps the password typed', async () => {
    const patient = await web.account('paciente-espera', 'patient', 'Tomás Romero');
    await startEarlyInAMinute();
    const page = await open('es-ES', { width: 414, height: 860 });
    await signIn(page, '/portal/security', patient.email);
    await page.getByTestId('export-start').click();
    const form = page.locator('form[aria-labelledby="export-title"]');
    await form.locator('input[autocomplete="current-password"]').fill(PASSWORD);

    const serverWait = await spendBudget(page);
    await form.locator('button[type="submit"]').click();
    const alert = form.getByRole('alert');
    await alert.waitFor();
    secondsIn(await alert.innerText(), /^Demasiados intentos en poco tiempo\. Espere (\d+) segundos? y vuelva a intentarlo\.$/, serverWait);
    expect(await form.locator('input[autocomplete="current-password"]').inputValue()).toBe(PASSWORD);
    await accessible(page, '2-portal-export');
  });

  it('keeps a patient’s chosen time and reason when booking is refused for too many requests', async () => {
    const doctor = await web.account('doctora-agenda', 'clinician', 'Irene Salas');
    const patient = await web.account('paciente-reserva', 'patient', 'Pablo Núñez');
    const records = new Repository(web.node.ctx.store.db, web.node.ctx.audit, SYSTEM_ACTOR, { requestId: 'throttle-test', source: 'test' });
    const schedule = (await records.create({ resourceType: 'Schedule', active: true, actor: [{ reference: `Practitioner/${doctor.practitionerId}` }] } as never)) as { id: string };
    const start = Math.ceil((Date.now() + 2 * 86_400_000) / 3_600_000) * 3_600_000;
    const slotStart = new Date(start).toISOString();
    await records.create({ resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.id}` }, status: 'free', start: slotStart, end: new Date(start + 20 * 60_000).toISOString() } as never);
    await startEarlyInAMinute();
    const page = await open('en-GB', { width: 414, height: 860 });
    await signIn(page, '/portal', patient.email);
    await page.getByTestId('book-start').click();
    await page.getByTestId('booking-practitioner').selectOption(`Practitioner/${doctor.practitionerId}`);
    await page.locator(`[data-testid="slot"][data-start="${slotStart}"]`).click();
    await page.getByTestId('booking-reason').fill('Control de la tensión');

    const serverWait = await spendBudget(page);
    await page.getByTestId('booking-submit').click();
    const alert = page.getByTestId('booking').getByRole('alert');
    await alert.waitFor();
    secondsIn(await alert.innerText(), /^Too many attempts in a short time\. Please wait (\d+) seconds?, then try again\.$/, serverWait);
    // Nothing to choose again: the same time, the reason typed, the button to send it once more.
    expect(await page.locator(`[data-testid="slot"][data-start="${slotStart}"]`).getAttribute('aria-pressed')).toBe('true');
    expect(await page.getByTestId('booking-reason').inputValue()).toBe('Control de la tensión');
    expect(await page.getByTestId('booking-submit').isEnabled()).toBe(true);
    await accessible(page, '1-portal-booking');
  });

  it('tells a clinician in English, keeps the vitals typed, and saves them once the wait is over', async () => {
    const doctor = await web.account('doctora-espera', 'clinician', 'Lucía Fernández');
    const patient = await web.account('paciente-vitales', 'patient', 'Rosa Medina');
    await web.appointment(patient.patientId!, doctor.practitionerId!);
    await startEarlyInAMinute();
    const page = await open('en-GB');
    await signIn(page, `/clinic/patients/${patient.patientId}`, doctor.email, doctor.totpSecret);
    const form = page.getByTestId('vitals-form');
    await form.waitFor();
    await page.getByTestId('vital-heartRate').fill('91');
    await page.getByTestId('vital-systolic').fill('131');
    await page.getByTestId('vital-diastolic').fill('84');

    const serverWait = await spendBudget(page);
    await page.getByTestId('save-vitals').click();
    const alert = form.getByTestId('clinic-error');
    await alert.waitFor();
    const seconds = secondsIn(await alert.innerText(), /^Too many attempts in a short time\. Please wait (\d+) seconds?, then try again\.$/, serverWait);
    expect([await page.getByTestId('vital-heartRate').inputValue(), await page.getByTestId('vital-systolic').inputValue(), await page.getByTestId('vital-diastolic').inputValue()]).toEqual(['91', '131', '84']);
    await accessible(page, '3-clinic-vitals');

    // What the message said holds: after that wait, the same form sends what was typed, and it is saved.
    // A few seconds more: the save sends several requests, and the minute just spent still weighs on the next.
    await sleep(seconds * 1000 + 5_000);
    await page.getByTestId('save-vitals').click();
    await expect.poll(() => page.getByTestId('vitals-table').innerText().catch(() => ''), { timeout: 20_000 }).toContain('131/84');
    await form.getByTestId('clinic-error').waitFor({ state: 'detached' });
  });

  it('tells an administrator in Spanish, keeping the invitation typed', async () => {
    const admin = await web.account('admin-espera', 'admin', 'Marta Ruiz');
    await startEarlyInAMinute();
    const page = await open('es-ES');
    await signIn(page, '/admin/users', admin.email, admin.totpSecret);
    await page.getByTestId('invite-email').fill('nueva.medica@clinica.example.org');
    await page.getByTestId('invite-name').fill('Elena Prieto');
    await page.getByTestId('invite-role').selectOption('clinician');

    const serverWait = await spendBudget(page);
    await page.getByTestId('invite-submit').click();
    const alert = page.getByTestId('invite-form').getByRole('alert');
    await alert.waitFor();
    secondsIn(await alert.innerText(), /^Demasiados intentos en poco tiempo\. Espere (\d+) segundos? y vuelva a intentarlo\.$/, serverWait);
    expect(await page.getByTestId('invite-email').inputValue()).toBe('nueva.medica@clinica.example.org');
    expect(await page.getByTestId('invite-name').inputValue()).toBe('Elena Prieto');
    expect(await page.getByTestId('invite-role').inputValue()).toBe('clinician');
    // Refused before it reached the route: no invitation was made.
    expect(await web.node.ctx.store.db.selectFrom('invitation').select('id').where('email', '=', 'nueva.medica@clinica.example.org').execute()).toEqual([]);
    await accessible(page, '4-admin-invite');
  });

  // Last: it pauses sign-in from this machine's address for the rest of the file's node.
  it('tells someone signing in from an address that failed too often to wait, in minutes, and keeps the email typed', async () => {
    const page = await open('es-ES', { width: 414, height: 860 });
    await page.goto(`${web.origin}/sign-in`);
    // Thirty wrong sign-ins from this address (the sign-in throttle, not the rate limits), then ours.
    const refusals = await page.evaluate(async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 31; i++) {
        const res = await fetch('/api/auth/sign-in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `nadie${i}@clinica.example.org`, password: 'no-es-esta-clave' }) });
        statuses.push(res.status);
      }
      return statuses;
    });
    expect(refusals.at(-1)).toBe(429);
    await page.fill('input[autocomplete="username"]', 'paciente-espera@clinica.example.org');
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.click('button[type="submit"]');
    const alert = page.getByTestId('sign-in-error');
    await alert.waitFor();
    const text = await alert.innerText();
    const minutes = Number(/^Demasiados intentos en poco tiempo\. Espere unos (\d+) minutos y vuelva a intentarlo\.$/.exec(text)?.[1]);
    expect(minutes, text).toBeGreaterThanOrEqual(2);
    expect(minutes, text).toBeLessThanOrEqual(15);
    expect(await page.inputValue('input[autocomplete="username"]')).toBe('paciente-espera@clinica.example.org');
    await accessible(page, '5-sign-in-throttled');
  });
});

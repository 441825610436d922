import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { createAccount } from '../../src/auth/accounts/account-service.js';
import { hasTelehealthConsent } from '../../src/privacy/telehealth-consent.js';
import { Repository } from '../../src/records/repository.js';
import { startTestNode, type TestNode } from '../../src/test-support/test-node.js';
import { ensureWebBuild, PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium, newParticipant } from './support/chromium.js';
import { signInThroughConsult } from './support/consult-flow.js';

describe('privacy notice page (HTTP)', () => {
  let node: TestNode;
  beforeAll(async () => {
    await ensureWebBuild();
    node = await startTestNode('pglite', { TELESALUD_PUBLIC_URL: 'https://clinica.test' });
  });
  afterAll(async () => node?.stop());

  it('serves /privacy without a session, as an app page under the strict CSP', async () => {
    const res = await node.app.inject({ method: 'GET', url: '/privacy', headers: { accept: 'text/html', host: 'clinica.test' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(String(res.headers['content-security-policy'])).toContain("script-src 'self'");
    expect(res.body).toContain('<div id="root"');
  });
});

describe('privacy notice and telehealth consent in the browser', { timeout: 120_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let appointmentId: string;
  let patientRef: string;
  const email = 'consentimiento@example.org';

  beforeAll(async () => {
    web = await startBrowserNode();
    const doctor = await web.account('doctor-consent', 'clinician', 'Julia Morales');
    // Made here, not with web.account(): this patient must start without any consent on record.
    const records = new Repository(web.node.ctx.store.db, web.node.ctx.audit, SYSTEM_ACTOR, { requestId: 'browser-test', source: 'test' });
    const patient = await createAccount(web.node.ctx.store.db, records, web.node.ctx.keyRing, { email, role: 'patient', name: 'Marta Nueva', password: PASSWORD });
    patientRef = `Patient/${patient.patientId}`;
    appointmentId = await web.appointment(patient.patientId!, doctor.practitionerId!);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  it('shows the notice in Spanish and English, linked from the sign-in page', async () => {
    const { page, context } = await newParticipant(browser);
    await page.goto(`${web.origin}/sign-in`);
    await page.getByTestId('privacy-link').click();
    await page.waitForURL(`${web.origin}/privacy`);
    await page.getByTestId('privacy-notice').waitFor();
    expect(await page.locator('h1').innerText()).toBe('Aviso de privacidad');
    expect(await page.getByTestId('privacy-notice').innerText()).toContain('cifrado de extremo a extremo');
    await page.getByTestId('language').selectOption('en');
    expect(await page.locator('h1').innerText()).toBe('Privacy notice');
    const text = await page.getByTestId('privacy-notice').innerText();
    for (const phrase of ['encrypted end to end', 'never holds a key', 'signed checkpoint', 'break the glass', 'never your clinical content', '/api/me/record-access']) expect(text).toContain(phrase);
    await context.close();
  });

  it('asks a patient without consent to agree before the device check, and records it', async () => {
    const { page, context } = await newParticipant(browser);
    await signInThroughConsult(page, web.origin, appointmentId, email);
    await page.getByTestId('consent-step').waitFor();
    expect(await page.getByTestId('device-check').count()).toBe(0);
    expect(await page.getByTestId('privacy-link').getAttribute('href')).toBe('/privacy');
    expect(await hasTelehealthConsent(web.node.ctx.store.db, patientRef)).toBe(false);

    await page.getByTestId('consent-agree').click();
    await page.getByTestId('device-check').waitFor();
    expect(await hasTelehealthConsent(web.node.ctx.store.db, patientRef)).toBe(true);

    // Consent given, the next visit goes straight to the device check.
    await page.reload();
    await page.getByTestId('device-check').waitFor();
    expect(await page.getByTestId('consent-step').count()).toBe(0);
    await context.close();
  });
});

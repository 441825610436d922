import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { SESSION_COOKIE } from '../../src/auth/sessions/session-store.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { seriousAccessibilityViolations } from './support/accessibility.js';
import { launchChromium } from './support/chromium.js';

/**
 * Break-the-glass with a passkey in real Chromium: a clinician whose second factor at hand is the
 * laptop's fingerprint reader (Chromium's virtual authenticator, as in passkey-sign-in.test.ts)
 * opens a record outside their care with the password and the passkey, no code typed.
 */
describe('break-the-glass with a passkey in Chromium', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let clinician: Awaited<ReturnType<BrowserNode['account']>>;
  let stranger: Awaited<ReturnType<BrowserNode['account']>>;

  beforeAll(async () => {
    web = await startBrowserNode({}, 'pglite', 'localhost');
    browser = await launchChromium();
    context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES' });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    clinician = await web.account('guardia-llave', 'clinician', 'Julia Ortega');
    stranger = await web.account('sin-cuidado', 'patient', 'Marta Desconocida');
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  it('registers the clinician passkey from the page (password and a code), through the API the portal uses', async () => {
    const signIn = await web.node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) } });
    expect(signIn.statusCode).toBe(200);
    await context.addCookies([{ name: SESSION_COOKIE, value: signIn.cookies.find((c) => c.name === SESSION_COOKIE)!.value, url: web.origin, secure: true, httpOnly: true, sameSite: 'Strict' }]);
    await page.goto(`${web.origin}/clinic`);
    // The next step's code: the sign-in's own can't be replayed.
    const code = currentTotpCode(clinician.totpSecret!, new Date(Date.now() + 30_000));
    const registered = await page.evaluate(
      async ({ password, code }) => {
        const b64 = (s: string) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
        const text = (b: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        const csrf = ((await (await fetch('/api/auth/session')).json()) as { csrfToken: string }).csrfToken;
        const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify(body) });
        const options: any = await (await post('/api/auth/passkeys/register/options', { password, code })).json();
        // The page's DOM (this project type-checks without the DOM library).
        const credentials = (globalThis as any).navigator.credentials;
        const credential: any = await credentials.create({
          publicKey: { ...options, challenge: b64(options.challenge), user: { ...options.user, id: b64(options.user.id) }, excludeCredentials: [] },
        });
        const response = credential.response;
        const verify = await post('/api/auth/passkeys/register/verify', {
          response: { id: credential.id, rawId: text(credential.rawId), type: 'public-key', response: { clientDataJSON: text(response.clientDataJSON), attestationObject: text(response.attestationObject) }, clientExtensionResults: {} },
          label: 'lector de huellas',
        });
        return verify.status;
      },
      { password: PASSWORD, code },
    );
    expect(registered).toBe(200);
    expect(await web.node.ctx.store.db.selectFrom('passkey_credential').select('account_id').execute()).toEqual([{ account_id: clinician.id }]);
  });

  it('opens the record with the password and the passkey, and says the code field takes a recovery code', async () => {
    await page.goto(`${web.origin}/clinic/patients/${stranger.patientId}`);
    await page.getByTestId('break-glass').waitFor();
    await page.getByTestId('break-glass-passkey').waitFor();
    expect(await page.getByTestId('break-glass').innerText()).toContain('código de recuperación');
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await page.getByTestId('break-glass-reason').fill('Paciente inconsciente en urgencias, necesito sus alergias.');
    await page.getByTestId('break-glass-password').fill(PASSWORD);
    await page.getByTestId('break-glass-passkey').click();
    await page.getByTestId('chart-page').waitFor();
    expect(await page.getByTestId('patient-header').innerText()).toContain('Marta Desconocida');

    await web.node.ctx.audit.drain();
    const grant = await web.node.ctx.store.db.selectFrom('audit_event').select('detail').where('action', '=', 'break-glass').where('outcome', '=', 'success').executeTakeFirstOrThrow();
    expect(grant.detail).toMatchObject({ reauthentication: 'passkey' });
  });
});

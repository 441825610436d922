import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { addClient, type NewAppClient } from '../../src/auth/oauth/oauth-clients.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { launchChromium } from './support/chromium.js';

/** A native app's loopback listener (RFC 8252 §7.3): registered without a port, used with the one it got. */
const REGISTERED_REDIRECT = 'http://127.0.0.1/callback';
const APP_PORT = 51_723;
const REDIRECT = `http://127.0.0.1:${APP_PORT}/callback`;

interface Round {
  locale: 'es-ES' | 'en-GB';
  texts: { title: string; scopes: string[]; allow: string };
}

const ROUNDS: Round[] = [
  {
    locale: 'es-ES',
    texts: {
      title: '¿Permitir que Diario de salud use su historia en telesalud?',
      scopes: ['Saber cuál es su historia de paciente', 'Ver sus mediciones y resultados de pruebas', 'Ver sus datos personales (nombre, fecha de nacimiento, contacto)'],
      allow: 'Permitir',
    },
  },
  {
    locale: 'en-GB',
    texts: {
      title: 'Allow Diario de salud to use your telesalud record?',
      scopes: ['Know which patient record is yours', 'See your measurements and test results', 'See your personal details (name, date of birth, contact)'],
      allow: 'Allow',
    },
  },
];

describe('SMART app approval page in Chromium: sign in, read what the app asks in plain words, allow, back to the app', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let app: NewAppClient;

  beforeAll(async () => {
    web = await startBrowserNode();
    browser = await launchChromium();
    app = (await addClient(web.node.ctx.store.db, { name: 'Diario de salud', scopes: 'launch/patient patient/Observation.rs patient/Patient.read', redirectUris: [REGISTERED_REDIRECT], public: true })) as NewAppClient;
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  for (const round of ROUNDS) {
    it(`asks in ${round.locale} and sends the code and state back to the native app's loopback listener`, async () => {
      const patient = await web.account(`paciente-app-${round.locale}`, 'patient', 'Lucía Aplicada');
      const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: round.locale, viewport: { width: 414, height: 860 } });
      context.setDefaultTimeout(15_000);
      // The app's own listener: what reaches it is what the app gets.
      const arrived: string[] = [];
      await context.route(`http://127.0.0.1:${APP_PORT}/**`, async (route) => {
        arrived.push(route.request().url());
        await route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><html lang="en"><title>App</title><main><h1>Signed in</h1></main></html>' });
      });
      const page = await context.newPage();
      const state = randomBytes(16).toString('hex');
      const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
      const params = new URLSearchParams({
        response_type: 'code',
        client_id: app.client_id,
        redirect_uri: REDIRECT,
        scope: 'launch/patient patient/Observation.rs patient/Patient.read',
        state,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        aud: `${web.origin}/fhir/R4`,
      });

      // Not signed in yet: the approval page sends the patient to sign in, and back with the same request.
      await page.goto(`${web.origin}/oauth2/authorize?${params.toString()}`);
      await page.waitForURL(/\/sign-in\?next=/);
      await page.fill('input[autocomplete="username"]', patient.email);
      await page.fill('input[autocomplete="current-password"]', PASSWORD);
      await page.click('button[type="submit"]');
      await page.waitForURL((url) => url.pathname === '/authorize');
      await page.getByTestId('authorize-scopes').waitFor();

      expect(await page.locator('h1').innerText()).toBe(round.texts.title);
      const asked = await page.getByTestId('authorize-scopes').locator('li').allInnerTexts();
      expect(asked).toEqual(round.texts.scopes);
      expect(await page.locator('main').innerText()).toContain(`127.0.0.1:${APP_PORT}`);
      expect(await seriousAccessibilityViolations(page)).toEqual([]);
      await screenshotStep(page, 'smart-app-approval', round.locale);

      await page.getByRole('button', { name: round.texts.allow, exact: true }).click();
      await page.waitForURL((url) => url.origin === `http://127.0.0.1:${APP_PORT}`);
      expect(arrived).toHaveLength(1);
      const back = new URL(arrived[0]!);
      expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
      expect(back.searchParams.get('state')).toBe(state);
      expect(back.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
      // The code was issued to this app for this very redirect URI, port included, for this patient.
      const issued = await web.node.ctx.store.db.selectFrom('oauth_authorization_code').select(['client_id', 'redirect_uri', 'patient']).orderBy('issued', 'desc').executeTakeFirstOrThrow();
      expect(issued).toEqual({ client_id: app.client_id, redirect_uri: REDIRECT, patient: `Patient/${patient.patientId}` });
      await context.close();
    });
  }
});

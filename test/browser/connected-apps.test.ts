import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { AuthTestClient } from '../../src/auth/auth-test-client.js';
import { addClient, type NewAppClient } from '../../src/auth/oauth/oauth-clients.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { launchChromium } from './support/chromium.js';

const REDIRECT = 'https://tension.example.org/callback';
const SCOPE = 'launch/patient patient/Observation.rs patient/Patient.read offline_access';

interface Round {
  locale: 'es-ES' | 'en-GB';
  texts: { link: string; title: string; scopes: string[]; offline: RegExp; revoke: string; confirm: string; go: string; cancel: string; revoked: string; none: string };
}

const ROUNDS: Round[] = [
  {
    locale: 'es-ES',
    texts: {
      link: 'Aplicaciones conectadas',
      title: 'Aplicaciones conectadas',
      scopes: ['Saber cuál es su historia de paciente', 'Ver sus mediciones y resultados de pruebas', 'Ver sus datos personales (nombre, fecha de nacimiento, contacto)'],
      offline: /^Mantiene el acceso sin preguntarle hasta el .+\.$/,
      revoke: 'Quitar el acceso a Tensión en casa',
      confirm: '¿Quitar el acceso a Tensión en casa? Se detiene en el acto y ya no podrá ver ni cambiar su historia.',
      go: 'Sí, quitar el acceso',
      cancel: 'Cancelar',
      revoked: 'Tensión en casa ya no tiene acceso a su historia.',
      none: 'Ninguna aplicación tiene acceso a su historia.',
    },
  },
  {
    locale: 'en-GB',
    texts: {
      link: 'Connected apps',
      title: 'Connected apps',
      scopes: ['Know which patient record is yours', 'See your measurements and test results', 'See your personal details (name, date of birth, contact)'],
      offline: /^It keeps access without asking you until .+\.$/,
      revoke: 'Remove access for Tensión en casa',
      confirm: 'Remove access for Tensión en casa? It stops at once and can no longer see or change your record.',
      go: 'Yes, remove access',
      cancel: 'Cancel',
      revoked: 'Tensión en casa no longer has access to your record.',
      none: 'No app has access to your record.',
    },
  },
];

describe('connected apps in the portal, in Chromium: see which apps hold access, remove one after a confirmation', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let app: NewAppClient;

  beforeAll(async () => {
    web = await startBrowserNode();
    browser = await launchChromium();
    app = (await addClient(web.node.ctx.store.db, { name: 'Tensión en casa', scopes: SCOPE, redirectUris: [REDIRECT], public: true })) as NewAppClient;
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  /** What the app holds after the patient allowed it (the approval page itself is smart-app-approval.test.ts's). */
  async function connectApp(email: string): Promise<{ access_token: string; refresh_token: string }> {
    const session = new AuthTestClient(web.node);
    expect((await session.signIn({ email, password: PASSWORD })).statusCode).toBe(200);
    const verifier = randomBytes(32).toString('base64url');
    const params = { response_type: 'code', client_id: app.client_id, redirect_uri: REDIRECT, scope: SCOPE, state: randomBytes(8).toString('hex'), code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', aud: `${web.origin}/fhir/R4` };
    const approved = await session.post('/api/oauth/authorization', { ...params, decision: 'approve' });
    expect(approved.statusCode, approved.body).toBe(200);
    const code = new URL(approved.json().redirect).searchParams.get('code')!;
    const res = await web.node.app.inject({ method: 'POST', url: '/oauth2/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, client_id: app.client_id }).toString() });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  }
  const fhirStatus = async (accessToken: string, patientId: string) =>
    (await web.node.app.inject({ method: 'GET', url: `/fhir/R4/Patient/${patientId}`, headers: { authorization: `Bearer ${accessToken}` } })).statusCode;

  const accessible = async (page: Page, round: Round, step: string) => {
    await screenshotStep(page, 'connected-apps', `${round.locale}-${step}`);
    expect(await seriousAccessibilityViolations(page), `axe on ${step}`).toEqual([]);
  };

  for (const round of ROUNDS) {
    it(`shows the app in ${round.locale} from the security page, and removing it ends the app's access at once`, async () => {
      const patient = await web.account(`paciente-apps-${round.locale}`, 'patient', 'Lucía Conectada');
      const held = await connectApp(patient.email);
      expect(await fhirStatus(held.access_token, patient.patientId!)).toBe(200);

      const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: round.locale, viewport: { width: 414, height: 860 } });
      context.setDefaultTimeout(15_000);
      const page = await context.newPage();
      await page.goto(`${web.origin}/portal/security`);
      await page.waitForURL(/\/sign-in/);
      await page.fill('input[autocomplete="username"]', patient.email);
      await page.fill('input[autocomplete="current-password"]', PASSWORD);
      await page.click('button[type="submit"]');
      await page.waitForURL(`${web.origin}/portal/security`);

      // Reached from the security page.
      await page.getByRole('link', { name: round.texts.link, exact: true }).click();
      await page.waitForURL(`${web.origin}/portal/apps`);
      const card = page.getByTestId('connected-app');
      await card.waitFor();
      expect(await page.locator('h1').innerText()).toBe(round.texts.title);
      expect(await page.title()).toBe(`${round.texts.title} · telesalud`);
      expect(await card.locator('h2').innerText()).toBe('Tensión en casa');
      expect(await card.getByTestId('app-scopes').locator('li').allInnerTexts()).toEqual(round.texts.scopes);
      expect(await card.locator('p.hint').allInnerTexts()).toContainEqual(expect.stringMatching(round.texts.offline));
      // The menu still shows where this page belongs.
      expect(await page.getByTestId('nav-security').getAttribute('aria-current')).toBe('page');
      await accessible(page, round, '1-list');

      // Asked first; cancelling changes nothing.
      await page.getByRole('button', { name: round.texts.revoke, exact: true }).click();
      const confirmation = page.getByRole('group', { name: round.texts.confirm, exact: true });
      await confirmation.waitFor();
      await accessible(page, round, '2-confirm');
      await confirmation.getByRole('button', { name: round.texts.cancel, exact: true }).click();
      await confirmation.waitFor({ state: 'detached' });
      expect(await fhirStatus(held.access_token, patient.patientId!)).toBe(200);

      await page.getByRole('button', { name: round.texts.revoke, exact: true }).click();
      await page.getByRole('button', { name: round.texts.go, exact: true }).click();
      expect(await page.getByTestId('apps-status').innerText()).toBe(round.texts.revoked);
      expect(await page.getByTestId('apps-empty').innerText()).toBe(round.texts.none);
      expect(await card.count()).toBe(0);
      await accessible(page, round, '3-removed');
      // The page has its own address: opened directly, it shows the same (now empty) list.
      await page.reload();
      expect(await page.getByTestId('apps-empty').innerText()).toBe(round.texts.none);

      // The app's tokens are dead: its access token at once, its refresh token too.
      expect(await fhirStatus(held.access_token, patient.patientId!)).toBe(401);
      const refresh = await web.node.app.inject({ method: 'POST', url: '/oauth2/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: held.refresh_token, client_id: app.client_id }).toString() });
      expect(refresh.json().error).toBe('invalid_grant');
      await context.close();
    });
  }
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { seriousAccessibilityViolations } from './support/accessibility.js';
import { launchChromium } from './support/chromium.js';

/**
 * Passkeys in real Chromium. WebAuthn wants a secure context whose host can be a relying party
 * id — an IP address can't — so this node's public URL (and thus its RP id and origin) is
 * https://localhost:<port>. The authenticator is Chromium's own virtual one (DevTools protocol
 * WebAuthn domain): a platform authenticator with resident keys and user verification, as a
 * phone's or a laptop's fingerprint reader would be.
 */
describe('passkeys in Chromium: register in the portal security settings, then sign in with it', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let authenticatorId: string;
  let patient: { id: string; email: string };

  interface VirtualCredential {
    credentialId: string;
    isResidentCredential: boolean;
    rpId: string;
    signCount: number;
  }
  const credentials = async () => ((await cdp.send('WebAuthn.getCredentials', { authenticatorId })) as { credentials: VirtualCredential[] }).credentials;

  beforeAll(async () => {
    web = await startBrowserNode({}, 'pglite', 'localhost');
    browser = await launchChromium();
    context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-GB' });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    ({ authenticatorId } = (await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    })) as { authenticatorId: string });
    patient = await web.account('paciente-llave', 'patient', 'Olivia Bennett');
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  it('serves on a localhost origin, so WebAuthn is available to the page', async () => {
    expect(web.origin).toMatch(/^https:\/\/localhost:\d+$/);
    await page.goto(`${web.origin}/sign-in`);
    expect(await page.evaluate(() => (globalThis as any).isSecureContext && typeof (globalThis as any).PublicKeyCredential === 'function')).toBe(true);
  });

  it('registers a passkey from the security settings after confirming the password', async () => {
    await page.getByTestId('sign-in-form').waitFor();
    await page.fill('input[autocomplete="username"]', patient.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/portal`);

    await page.goto(`${web.origin}/portal/security`);
    await page.getByTestId('add-passkey').click();
    const confirm = page.getByRole('form', { name: 'To add a passkey, confirm it is you.' });
    await confirm.locator('input[autocomplete="current-password"]').fill(PASSWORD);
    await confirm.getByRole('button', { name: 'Continue' }).click();
    await page.getByTestId('factors-status').waitFor();
    expect(await page.getByTestId('factors-status').innerText()).toMatch(/passkey/i);
    await expect.poll(() => page.getByTestId('factor-passkeys').innerText()).toMatch(/Passkeys: 1/);

    const held = await credentials();
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({ rpId: 'localhost', isResidentCredential: true });
    const stored = await web.node.ctx.store.db.selectFrom('passkey_credential').select(['id', 'account_id']).execute();
    expect(stored).toEqual([{ id: held[0]!.credentialId.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), account_id: patient.id }]);
  });

  it('signs in with the passkey in place of a code, and the signature counter moves on', async () => {
    const before = (await credentials())[0]!.signCount;
    await context.clearCookies();
    // The API calls the page makes, in order: signing in needs no session asked for first.
    const calls: string[] = [];
    const recordCall = (request: { url(): string; method(): string }) => {
      const url = new URL(request.url());
      if (url.pathname.startsWith('/api/')) calls.push(`${request.method()} ${url.pathname}`);
    };
    page.on('request', recordCall);
    await page.goto(`${web.origin}/sign-in`);
    await page.getByTestId('sign-in-form').waitFor();
    await page.fill('input[autocomplete="username"]', patient.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.click('button[type="submit"]');
    // The right password asks for the second factor, offering the passkey.
    await page.getByTestId('sign-in-passkey').waitFor();
    expect(await page.getByTestId('sign-in-error').innerText()).toMatch(/passkey/);
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await page.getByTestId('sign-in-passkey').click();
    await page.waitForURL(`${web.origin}/portal`);
    await page.getByTestId('nav-security').waitFor();
    page.off('request', recordCall);
    const signedIn = calls.indexOf('POST /api/auth/passkeys/authenticate/verify');
    expect(calls.slice(0, signedIn + 1)).toEqual(['POST /api/auth/sign-in', 'POST /api/auth/passkeys/authenticate/verify']);

    expect((await credentials())[0]!.signCount).toBeGreaterThan(before);
    const row = await web.node.ctx.store.db.selectFrom('passkey_credential').select(['counter', 'last_used']).executeTakeFirstOrThrow();
    expect(Number(row.counter)).toBeGreaterThan(before);
    expect(row.last_used).not.toBeNull();
    await web.node.ctx.audit.drain();
    const signIns = await web.node.ctx.store.db.selectFrom('audit_event').select(['outcome', 'detail']).where('action', '=', 'sign-in').where('actor', '=', `account:${patient.id}`).orderBy('seq').execute();
    expect(signIns.at(-1)).toMatchObject({ outcome: 'success', detail: { method: 'passkey' } });
  });

  it('a passkey step the user does not confirm signs nobody in, and the password step starts again', async () => {
    // The fingerprint is not recognised: the authenticator refuses user verification.
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
    await context.clearCookies();
    await page.goto(`${web.origin}/sign-in`);
    await page.fill('input[autocomplete="username"]', patient.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.getByTestId('sign-in-passkey').click();
    await page.getByTestId('sign-in-error').filter({ hasText: /not used/ }).waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('sign-in-passkey').count()).toBe(0);
    expect(page.url()).toBe(`${web.origin}/sign-in`);
    expect((await context.cookies()).filter((c) => /session/i.test(c.name))).toEqual([]);
  });
});

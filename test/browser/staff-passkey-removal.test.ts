import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { removeTotp } from '../../src/auth/mfa/account-mfa.js';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium } from './support/chromium.js';

const JOURNEY = 'staff-passkey-removal';

/**
 * A clinician manages their passkeys on the clinic's own security page (/clinic/security), in
 * real Chromium with its virtual authenticator (as passkey-sign-in.test.ts): the page speaks the
 * staff's words in the clinic's styles; removing a passkey asks who they are again; and the only
 * second factor of a role that must have one is not removed, with the reason in words.
 */
describe('a clinician removes a passkey from the clinic security page', { timeout: 240_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let doctor: Awaited<ReturnType<BrowserNode['account']>>;

  const storedPasskeys = () => web.node.ctx.store.db.selectFrom('passkey_credential').select('id').where('account_id', '=', doctor.id).execute();
  const removals = async () => {
    await web.node.ctx.audit.drain();
    return web.node.ctx.store.db.selectFrom('audit_event').select(['outcome', 'detail']).where('action', '=', 'passkey-removed').where('actor', '=', `account:${doctor.id}`).orderBy('seq').execute();
  };

  /** A fresh session (cookies gone), its second step the passkey: no recent re-authentication to lean on. */
  async function signInWithPasskey(): Promise<void> {
    await context.clearCookies();
    await page.goto(`${web.origin}/sign-in`);
    await page.getByTestId('sign-in-form').waitFor();
    await page.fill('input[autocomplete="username"]', doctor.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.getByTestId('sign-in-passkey').click();
    await page.waitForURL(`${web.origin}/clinic`);
  }

  async function openSecurityPage(): Promise<void> {
    await page.getByTestId('nav-security').click();
    await page.getByTestId('security-page').waitFor();
    await page.getByTestId('factor-passkeys').waitFor();
  }

  beforeAll(async () => {
    web = await startBrowserNode({}, 'pglite', 'localhost');
    browser = await launchChromium();
    context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-GB' });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    doctor = await web.account('doctora-llaves', 'clinician', 'Inés Calderón');
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  it("shows the clinic's security page in the staff's words and the clinic's styles, and adds a passkey there", async () => {
    await page.goto(`${web.origin}/sign-in`);
    await page.getByTestId('sign-in-form').waitFor();
    await page.fill('input[autocomplete="username"]', doctor.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(doctor.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/clinic`);
    await openSecurityPage();

    const factors = page.getByTestId('factors');
    expect(await factors.getByRole('heading').first().innerText()).toBe('Second factor at sign-in');
    expect(await factors.innerText()).toContain('The clinic’s policy requires a second factor for your role');
    // The clinic's stylesheet dresses the cards; nothing of the portal's is loaded.
    expect(await page.getByTestId('factors').locator('ul.cards').evaluate((el) => (globalThis as any).getComputedStyle(el).listStyleType)).toBe('none');
    const portalRules = await page.evaluate(() => {
      const sheets = Array.from((globalThis as any).document.styleSheets as ArrayLike<{ cssRules: ArrayLike<{ selectorText?: string }> }>);
      return sheets.flatMap((s) => Array.from(s.cssRules)).filter((r) => /\.portal\b/.test(r.selectorText ?? '')).length;
    });
    expect(portalRules).toBe(0);

    await page.getByTestId('add-passkey').click();
    const confirm = page.getByRole('form', { name: 'To add a passkey, confirm it is you.' });
    await confirm.locator('input[autocomplete="current-password"]').fill(PASSWORD);
    // The next step's code: the sign-in used this step's, and a code works once.
    await confirm.locator('input[autocomplete="one-time-code"]').fill(currentTotpCode(doctor.totpSecret!, new Date(Date.now() + 30_000)));
    await confirm.getByRole('button', { name: 'Continue' }).click();
    expect(await page.getByTestId('factors-status').innerText()).toBe('The passkey is added.');
    await expect.poll(() => page.getByTestId('factor-passkeys').innerText()).toMatch(/Passkeys: 1/);
    expect(await storedPasskeys()).toHaveLength(1);
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshotStep(page, JOURNEY, '1-passkey-added');
  });

  it('asks who it is again before removing the passkey, then removes it', async () => {
    await signInWithPasskey();
    await openSecurityPage();
    const [{ label }] = (await web.node.ctx.store.db.selectFrom('passkey_credential').select('label').where('account_id', '=', doctor.id).execute()) as [{ label: string }];

    await page.getByTestId('remove-passkey').click();
    // Nothing is removed on a click alone: the confirmation form asks for the password and a factor.
    const confirm = page.getByTestId('reauth-form');
    await confirm.waitFor();
    expect(await confirm.innerText()).toContain('To remove the passkey "');
    expect(await storedPasskeys()).toHaveLength(1);
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshotStep(page, JOURNEY, '2-confirm-removal');

    await confirm.locator('input[autocomplete="current-password"]').fill(PASSWORD);
    await confirm.getByTestId('reauth-passkey').click();
    await page.getByTestId('factors-status').waitFor();
    expect(await page.getByTestId('factors-status').innerText()).toBe(`The passkey "${label}" is removed.`);
    await expect.poll(() => page.getByTestId('factor-passkeys').innerText()).toMatch(/Passkeys: 0/);
    expect(await storedPasskeys()).toEqual([]);
    expect((await removals()).at(-1)).toMatchObject({ outcome: 'success' });
  });

  it("keeps the only second factor of a clinician, and says why and what to do first", async () => {
    // Added again at once: the removal's re-authentication still covers it.
    await page.getByTestId('add-passkey').click();
    expect(await page.getByTestId('factors-status').innerText()).toBe('The passkey is added.');
    expect(await storedPasskeys()).toHaveLength(1);
    // As a staff member who enrolled with a passkey only (registration is open during the enrolment
    // an invitation starts): no authenticator app. The refusal, not that path, is what is tested here.
    await removeTotp(web.node.ctx.store.db, doctor.id);

    await signInWithPasskey();
    await openSecurityPage();
    expect(await page.getByTestId('factor-totp').getAttribute('data-enabled')).toBe('false');
    await page.getByTestId('remove-passkey').click();
    const confirm = page.getByTestId('reauth-form');
    await confirm.locator('input[autocomplete="current-password"]').fill(PASSWORD);
    await confirm.getByTestId('reauth-passkey').click();
    const alert = confirm.getByRole('alert');
    await alert.waitFor();
    expect(await alert.innerText()).toBe(
      'This is your only second factor and the clinic’s policy requires one for your role: add an authenticator app or another passkey first, then remove this one.',
    );
    expect(await storedPasskeys()).toHaveLength(1);
    expect(await page.getByTestId('factor-passkeys').innerText()).toMatch(/Passkeys: 1/);
    expect((await removals()).at(-1)).toMatchObject({ outcome: 'denied', detail: { refused: 'last-second-factor' } });
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshotStep(page, JOURNEY, '3-last-factor-kept');
  });
});

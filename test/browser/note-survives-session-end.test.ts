import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium, waitUntil } from './support/chromium.js';

const JOURNEY = 'note-survives-session-end';

/**
 * A clinician's session ends in the middle of a visit note (here: deleted on the server, as an idle
 * timeout or an admin ending it would). What was typed after the last autosave stays on the page,
 * in memory only; the clinician signs in again over the page (password and code) and the whole
 * note is saved, without leaving the chart.
 */
describe('a visit note survives the end of the session', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let clinician: Awaited<ReturnType<BrowserNode['account']>>;
  let patient: Awaited<ReturnType<BrowserNode['account']>>;

  const SUBJECTIVE = 'Dolor lumbar desde hace 3 días.\nSin traumatismo.';
  // Typed after the session ended.
  const OBJECTIVE = 'Contractura paravertebral derecha.\nPlan: calor local, ibuprofeno 400 mg cada 8 h, control en 10 días.';

  beforeAll(async () => {
    web = await startBrowserNode();
    clinician = await web.account('medico-sesion', 'clinician', 'Andrés Villalba');
    patient = await web.account('paciente-sesion', 'patient', 'Nuria Castaño');
    // The appointment puts the patient in the clinician's care.
    await web.appointment(patient.patientId!, clinician.practitionerId!);
    browser = await launchChromium();
    context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  /** The server's own record of this patient's notes (as the system, not through the page). */
  async function notesOnServer(): Promise<any[]> {
    const res = await web.node.request({ method: 'GET', url: `/fhir/R4/Composition?patient=${patient.patientId}` });
    expect(res.statusCode).toBe(200);
    return (res.json().entry ?? []).map((e: { resource: unknown }) => e.resource);
  }

  const sectionText = (note: any, code: string): string | undefined => note.section?.find((s: any) => s.code?.coding?.[0]?.code === code)?.text?.div;
  const saveState = () => page.getByTestId('note-save-state').getAttribute('data-state');
  /** Whether leaving the page now would ask first (the page's beforeunload handler cancels the event). */
  const leavingWarns = () =>
    page.evaluate(() => {
      // The page's DOM (this project type-checks without the DOM library).
      const w = globalThis as any;
      const event = new w.Event('beforeunload', { cancelable: true });
      w.dispatchEvent(event);
      return event.defaultPrevented as boolean;
    });

  it('autosaves the start of the note on the chart', async () => {
    await page.goto(`${web.origin}/clinic/patients/${patient.patientId}`);
    await page.waitForURL(/\/sign-in\?next=/);
    await page.fill('input[autocomplete="username"]', clinician.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(clinician.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/clinic/patients/${patient.patientId}`);
    await page.getByTestId('note-subjective').fill(SUBJECTIVE);
    await waitUntil('the draft saved', saveState, (s) => s === 'saved', 20_000);
    const [draft] = await notesOnServer();
    expect(draft.status).toBe('preliminary');
    expect(draft.section).toHaveLength(1);
    expect(await leavingWarns()).toBe(false);
  });

  it('keeps what is typed after the session ended on the page, in memory only, and asks to sign in again over it', async () => {
    // The session ends on the server: every node refuses its cookie from now on.
    const ended = await web.node.ctx.store.db.deleteFrom('session').where('account_id', '=', clinician.id).executeTakeFirst();
    expect(Number(ended.numDeletedRows)).toBeGreaterThan(0);

    await page.getByTestId('note-objective').fill(OBJECTIVE);
    // Typed, not saved yet: leaving would ask first.
    expect(await leavingWarns()).toBe(true);
    // The autosave is refused (401): the sign-in opens over the page instead of leaving it.
    await page.getByTestId('sign-in-again').waitFor();
    expect(page.url()).toBe(`${web.origin}/clinic/patients/${patient.patientId}`);
    expect(await saveState()).toBe('held');
    expect(await leavingWarns()).toBe(true);
    expect(await page.getByTestId('sign-in-again').evaluate((d) => (d as unknown as { open: boolean }).open)).toBe(true);
    expect(await page.locator('[data-testid="sign-in-again"] input[autocomplete="username"]').inputValue()).toBe(clinician.email);
    // The dialog holds the focus: keys still being typed for the note go nowhere, not into the password.
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.getAttribute('data-testid'))).toBe('sign-in-again');
    await page.keyboard.type('sigue escribiendo');
    expect(await page.getByTestId('sign-in-again-password').inputValue()).toBe('');
    // Health data never goes to the browser's storage (a shared hospital PC).
    const stored = await page.evaluate(() => {
      const w = globalThis as any;
      const all: string[] = [];
      for (const storage of [w.localStorage, w.sessionStorage]) for (let i = 0; i < storage.length; i++) all.push(`${storage.key(i)}=${storage.getItem(storage.key(i))}`);
      return all.join('\n');
    });
    expect(stored).not.toContain('paravertebral');
    expect(stored).not.toContain('ibuprofeno');
    expect(stored).not.toContain('lumbar');
    // Nothing of it reached the server.
    const [draft] = await notesOnServer();
    expect(draft.section).toHaveLength(1);
    await screenshotStep(page, JOURNEY, '1-sign-in-again');
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
  });

  it('refuses a wrong password in the dialog and keeps the text', async () => {
    await page.getByTestId('sign-in-again-password').fill('no-es-la-contraseña-1234');
    await page.getByTestId('sign-in-again-submit').click();
    await page.getByTestId('sign-in-again-error').waitFor();
    expect(await page.getByTestId('sign-in-again-error').innerText()).toContain('No se pudo iniciar sesión');
    expect(await page.getByTestId('sign-in-again').isVisible()).toBe(true);
    expect(await page.getByTestId('note-objective').inputValue()).toBe(OBJECTIVE);
  });

  it('signs in again in the dialog with password and code, then saves the whole note to the same draft', async () => {
    const [before] = await notesOnServer();
    await page.getByTestId('sign-in-again-password').fill(PASSWORD);
    // The next step's code: the first sign-in's own can not be replayed.
    await page.getByTestId('sign-in-again-code').fill(currentTotpCode(clinician.totpSecret!, new Date(Date.now() + 30_000)));
    await page.getByTestId('sign-in-again-submit').click();
    await page.getByTestId('sign-in-again').waitFor({ state: 'detached' });
    await waitUntil('the held text saved', saveState, (s) => s === 'saved', 20_000);

    const notes = await notesOnServer();
    expect(notes).toHaveLength(1);
    const [note] = notes;
    expect(note.id).toBe(before.id);
    expect(note.status).toBe('preliminary');
    expect(Number(note.meta.versionId)).toBeGreaterThan(Number(before.meta.versionId));
    expect(sectionText(note, '61150-9')).toContain('Dolor lumbar desde hace 3 días.');
    expect(sectionText(note, '61150-9')).toContain('Sin traumatismo.');
    expect(sectionText(note, '61149-1')).toContain('Contractura paravertebral derecha.');
    expect(sectionText(note, '61149-1')).toContain('ibuprofeno 400 mg cada 8 h, control en 10 días.');
    // Still on the chart, nothing left to lose.
    expect(page.url()).toBe(`${web.origin}/clinic/patients/${patient.patientId}`);
    expect(await leavingWarns()).toBe(false);
    // A new session with its own CSRF token: the page keeps working, signing included.
    await page.getByTestId('sign-note').click();
    await page.locator('[data-testid="signed-note"][data-status="final"]').first().waitFor({ state: 'attached' });
    const [signed] = await notesOnServer();
    expect(signed).toMatchObject({ id: before.id, status: 'final' });
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { SYSTEM_ACTOR } from '../../src/auth/actor.js';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { Repository } from '../../src/records/repository.js';
import { MRN_SYSTEM, NATIONAL_ID_SYSTEM } from '../../src/records/telesalud-codes.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { seriousAccessibilityViolations } from './support/accessibility.js';
import { launchChromium, newParticipant } from './support/chromium.js';

/**
 * The clinician's emergency lookup in Chromium (Spanish): a patient outside their care, found by
 * exact identifier, shown only as who they are, and opened through the break-the-glass step.
 */
describe('emergency patient lookup in the clinic workspace', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let page: Page;
  let patientId: string;

  beforeAll(async () => {
    web = await startBrowserNode();
    browser = await launchChromium();
    const records = new Repository(web.node.ctx.store.db, web.node.ctx.audit, SYSTEM_ACTOR, { requestId: 'lookup-test', source: 'test' });
    const patient = (await records.create({
      resourceType: 'Patient',
      active: true,
      identifier: [
        { system: MRN_SYSTEM, value: 'MRN-0455501' },
        { system: NATIONAL_ID_SYSTEM, value: '77665544Z' },
      ],
      name: [{ use: 'official', family: 'Ortega Peña', given: ['Begoña'] }],
      birthDate: '1948-09-30',
    } as never)) as { id: string };
    patientId = patient.id;
    const clinician = await web.account('urgencias-lookup', 'clinician', 'Raúl Castillo');
    ({ page } = await newParticipant(browser));
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${web.origin}/clinic/patients`);
    await page.waitForURL(/\/sign-in/);
    await page.fill('input[autocomplete="username"]', clinician.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(clinician.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/clinic/patients`);
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  it('the normal search does not find her; the emergency lookup does, by identifier, and leads to break-the-glass', async () => {
    await page.getByTestId('search-identifier').fill('MRN-0455501');
    await page.getByTestId('search-submit').click();
    await page.getByTestId('no-results').waitFor();

    const lookup = page.getByTestId('emergency-lookup');
    await lookup.getByTestId('lookup-family').fill('Ortega');
    await lookup.getByTestId('lookup-submit').click();
    // Half the name-and-date criteria: refused in the page, nothing sent.
    await lookup.getByTestId('lookup-error').waitFor();
    await lookup.getByTestId('lookup-family').fill('');
    await lookup.getByTestId('lookup-identifier').fill('MRN-0455501');
    await lookup.getByTestId('lookup-submit').click();
    const match = lookup.getByTestId('lookup-match');
    await match.waitFor();
    expect(await match.count()).toBe(1);
    const text = await match.innerText();
    expect(text).toContain('Begoña Ortega Peña');
    expect(text).toContain('…5501');
    expect(text).toContain('…544Z');
    expect(text).not.toContain('77665544Z');
    expect(await seriousAccessibilityViolations(page)).toEqual([]);

    await match.getByTestId('lookup-open').click();
    await page.waitForURL(`${web.origin}/clinic/patients/${patientId}`);
    await page.getByTestId('break-glass').waitFor();

    await web.node.ctx.audit.drain();
    const rows = await web.node.ctx.store.db.selectFrom('audit_event').select(['patient', 'detail']).where('action', '=', 'emergency-lookup').orderBy('seq').execute();
    expect(rows).toEqual([{ patient: `Patient/${patientId}`, detail: { criteria: 'identifier', returned: [patientId] } }]);
  });
});

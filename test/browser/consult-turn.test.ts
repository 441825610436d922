import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium, newParticipant, pcStats, waitForVideoFromAll, waitUntil } from './support/chromium.js';
import { admitNext, joinFromDeviceCheck, signInThroughConsult } from './support/consult-flow.js';
import { startCoturn } from './support/coturn.js';

/**
 * A call relayed through a real coturn with the short-lived HMAC credentials the node hands out
 * in `welcome`. The pages are forced to relay-only from outside (a test hook on the
 * RTCPeerConnection constructor), so nothing in the product can weaken a user's call.
 */
describe('consultation through TURN', { timeout: 180_000 }, () => {
  let turn: Awaited<ReturnType<typeof startCoturn>>;
  let web: BrowserNode;
  let browser: Browser;

  beforeAll(async () => {
    turn = await startCoturn();
    web = await startBrowserNode({ TELESALUD_TURN_URLS: turn.url, TELESALUD_TURN_SECRET: turn.secret });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
    await turn?.stop();
  });

  it('completes a call with iceTransportPolicy relay, over a relay candidate pair', async () => {
    const doctor = await web.account('doctora', 'clinician', 'Lucía Fernández');
    const p = await web.account('paciente', 'patient', 'Tomás Romero');
    const appointmentId = await web.appointment(p.patientId!, doctor.practitionerId!);
    const host = await newParticipant(browser, { relayOnly: true });
    const patient = await newParticipant(browser, { relayOnly: true });
    await signInThroughConsult(host.page, web.origin, appointmentId, doctor.email, doctor.totpSecret);
    await joinFromDeviceCheck(host.page);
    await signInThroughConsult(patient.page, web.origin, appointmentId, p.email);
    await joinFromDeviceCheck(patient.page);
    await admitNext(host.page);
    for (const page of [host.page, patient.page]) {
      const [stats] = await waitForVideoFromAll(page, 1, 30_000);
      expect(stats).toMatchObject({ state: 'connected', localCandidateType: 'relay' });
      expect(await page.getByTestId('e2ee-status').getAttribute('data-state')).toBe('on');
    }
    expect((await pcStats(host.page))[0]!.remoteCandidateType).toBe('relay');

    // Each browser reports its selected pair as relayed (every 10 s): the administrators' status
    // shows both participants relayed and the bytes that went through coturn, today and now.
    const status = async () => (await web.node.request({ method: 'GET', url: '/api/admin/status' })).json();
    const relayed = await waitUntil(
      'both participants reported as relayed',
      status,
      (s) => s.turn.relayUsage.participantsRelayed === 2 && s.turn.relayUsage.gbitToday > 0 && s.turn.relayUsage.mbitPerSecondNow > 0,
      40_000,
      1000,
    );
    expect(relayed.turn).toMatchObject({ configured: true, relayUsage: { source: 'browsers', participantsWithMedia: 2, participantsRelayed: 2 } });
    const today = relayed.traffic.days.at(-1);
    expect(today.relayedSentGbit).toBeGreaterThan(0);
    // Relay-only: everything the browsers sent and received went through the relay.
    expect(today.relayedSentGbit).toBeCloseTo(today.sentGbit, 12);
    expect(today.relayedReceivedGbit).toBeCloseTo(today.receivedGbit, 12);
    const metrics = (await web.node.request({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^telesalud_consult_media_participants\{path="relay"\} 2$/m);
    expect(metrics).toMatch(/^telesalud_consult_media_participants\{path="direct"\} 0$/m);
    expect(Number(/^telesalud_consult_relayed_bytes_total\{direction="sent"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);

    // And the administrator sees it on the status page, in English.
    const admin = await web.account('admin-turn', 'admin', 'Marta Ruiz');
    const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-GB' });
    try {
      const page = await context.newPage();
      await page.goto(`${web.origin}/admin/status`);
      await page.fill('input[autocomplete="username"]', admin.email);
      await page.fill('input[autocomplete="current-password"]', PASSWORD);
      await page.click('button[type="submit"]');
      await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(admin.totpSecret!));
      await page.click('button[type="submit"]');
      await page.waitForURL(`${web.origin}/admin/status`);
      const tile = page.getByTestId('status-relay-participants');
      expect(await tile.locator('.figure').innerText()).toBe('2 of 2');
      expect(await tile.locator('.figure-label').innerText()).toBe('Participants relayed now');
      expect(Number(await page.getByTestId('status-relay-gbit-today').locator('.figure').innerText())).toBeGreaterThan(0);
      // The day's bar has its relayed part.
      expect(await page.getByTestId('status-traffic-days').locator('svg[role="img"] rect.series-sent-relayed').count()).toBe(1);
    } finally {
      await context.close();
    }
  });
});

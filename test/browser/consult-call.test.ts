import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium, newParticipant, pcStats, waitForVideoFromAll, waitUntil, totalFramesDecoded, sentVideoLabels, type Participant } from './support/chromium.js';
import { admitNext, joinFromDeviceCheck, signInThroughConsult } from './support/consult-flow.js';

/**
 * A consultation in real Chromium (fake camera and microphone): sign-in, waiting room,
 * admission, video both ways inside end-to-end encryption, chat, screen share, guests by
 * link up to four, a fifth refused, a page with a wrong key decoding nothing, recovery from
 * a network cut, and the clinician's hang-up ending the room.
 */
// Four real browsers' worth of fake video on a 2-core machine: a mesh of four takes ~35 s quiet, more when the machine is busy.
describe('consultation in the browser', { timeout: 180_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let appointmentId: string;
  let clinician: { email: string; totpSecret?: string | undefined };
  let patientAccount: { email: string };
  let otherPatient: { email: string };
  let host: Participant;
  let patient: Participant;
  const guests: Participant[] = [];
  const guestLinks: string[] = [];

  beforeAll(async () => {
    web = await startBrowserNode();
    const doctor = await web.account('doctora', 'clinician', 'Lucía Fernández');
    const p = await web.account('paciente', 'patient', 'Tomás Romero');
    const other = await web.account('otra', 'patient', 'Otra Persona');
    clinician = doctor;
    patientAccount = p;
    otherPatient = other;
    appointmentId = await web.appointment(p.patientId!, doctor.practitionerId!);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  const text = (page: Page, testId: string) => page.getByTestId(testId).first().innerText();

  it('lets the patient wait until the clinician admits them, then both see each other inside end-to-end encryption', async () => {
    patient = await newParticipant(browser);
    await signInThroughConsult(patient.page, web.origin, appointmentId, patientAccount.email);
    await joinFromDeviceCheck(patient.page);
    await patient.page.getByTestId('waiting-room').waitFor();
    expect(await patient.page.getByTestId('e2ee-status').getAttribute('data-state')).toBe('on');

    host = await newParticipant(browser);
    await signInThroughConsult(host.page, web.origin, appointmentId, clinician.email, clinician.totpSecret);
    await joinFromDeviceCheck(host.page);
    await host.page.getByTestId('call').waitFor();
    await admitNext(host.page);

    await patient.page.getByTestId('call').waitFor();
    await waitForVideoFromAll(host.page, 1);
    await waitForVideoFromAll(patient.page, 1);
    for (const page of [host.page, patient.page]) {
      expect(await page.getByTestId('e2ee-status').getAttribute('data-state')).toBe('on');
      await waitUntil('peer encrypted', () => page.getByTestId('peer-encryption').getAttribute('data-state'), (s) => s === 'encrypted');
    }
    const hostCode = await text(host.page, 'safety-code');
    expect(hostCode).toMatch(/^\d{4} \d{4} \d{4}$/);
    expect(await text(patient.page, 'safety-code')).toBe(hostCode);
  });

  it('carries chat both ways on the data channel', async () => {
    await host.page.getByTestId('chat-input').fill('Buenos días, ¿me oye bien?');
    await host.page.getByTestId('chat-send').click();
    await waitUntil('chat at the patient', () => text(patient.page, 'chat-log'), (t) => t.includes('Buenos días, ¿me oye bien?'));
    await patient.page.getByTestId('chat-input').fill('Sí, perfectamente');
    await patient.page.getByTestId('chat-send').click();
    await waitUntil('chat at the clinician', () => text(host.page, 'chat-log'), (t) => t.includes('Sí, perfectamente'));
  });

  it('shares the clinician\'s screen in place of the camera, and goes back', async () => {
    const cameraWidth = (await pcStats(patient.page))[0]!.frameWidth;
    const [cameraLabel] = await sentVideoLabels(host.page);
    await host.page.getByTestId('toggle-share').click();
    await waitUntil('toggle pressed', () => host.page.getByTestId('toggle-share').getAttribute('aria-pressed'), (v) => v === 'true');
    await waitUntil('screen frames at the patient', async () => (await pcStats(patient.page))[0]!.frameWidth, (w) => w > 0 && w !== cameraWidth);
    await waitForVideoFromAll(patient.page, 1);
    await host.page.getByTestId('toggle-share').click();
    // Back on the camera: the clinician sends the camera's track again, and the patient keeps decoding it.
    // (Its resolution may differ from before: the sender adapts it to a busy machine.)
    await waitUntil('camera track sent again', () => sentVideoLabels(host.page), (labels) => labels.length > 0 && labels.every((l) => l === cameraLabel));
    const decoded = await totalFramesDecoded(patient.page);
    await waitUntil('camera frames at the patient', () => totalFramesDecoded(patient.page), (n) => n > decoded + 10);
  });

  it('refuses, with the reason on screen, another patient and a made-up appointment id', async () => {
    const intruder = await newParticipant(browser);
    await signInThroughConsult(intruder.page, web.origin, appointmentId, otherPatient.email);
    await joinFromDeviceCheck(intruder.page);
    await intruder.page.getByTestId('refused').waitFor();
    expect(await intruder.page.getByTestId('refused').getAttribute('data-reason')).toMatch(/not-allowed|not-found/);
    expect(await intruder.page.getByRole('alert').innerText()).toMatch(/no tiene acceso|no existe/i);
    await intruder.page.goto(`${web.origin}/consult/b9b0f7de-0000-4000-8000-000000000000`);
    await joinFromDeviceCheck(intruder.page);
    await intruder.page.getByTestId('refused').waitFor();
    await intruder.context.close();
    // Neither got near the call.
    expect(await host.page.getByTestId('lobby-entry').count()).toBe(0);
  });

  async function guestLink(label: string): Promise<string> {
    await host.page.getByTestId('guest-label').fill(label);
    const previous = await host.page.getByTestId('guest-link').inputValue().catch(() => '');
    await host.page.getByTestId('create-guest-link').click();
    const url = await waitUntil('a new guest link', () => host.page.getByTestId('guest-link').inputValue().catch(() => ''), (v) => v !== '' && v !== previous);
    expect(url).toMatch(new RegExp(`^${web.origin}/consult/guest#[A-Za-z0-9_-]{16,64}$`));
    return url;
  }

  it('admits a third and a fourth participant by guest link into a mesh of four; the page whose frame key is wrong decodes nothing while the others keep working', async () => {
    for (const [label, corrupt] of [['Intérprete', false], ['Familiar', true]] as const) {
      const url = await guestLink(label);
      guestLinks.push(url);
      const guest = await newParticipant(browser, { corruptReceivedKeys: corrupt });
      guests.push(guest);
      await guest.page.goto(url);
      // The token leaves the address bar at once.
      await waitUntil('token removed from the address', async () => guest.page.url(), (u) => !u.includes('#'));
      await joinFromDeviceCheck(guest.page);
      await guest.page.getByTestId('waiting-room').waitFor();
      await admitNext(host.page);
      await guest.page.getByTestId('call').waitFor();
    }
    const [interpreter, family] = guests as [Participant, Participant];
    await Promise.all([waitForVideoFromAll(host.page, 3, 30_000), waitForVideoFromAll(patient.page, 3, 30_000), waitForVideoFromAll(interpreter.page, 3, 30_000)]);
    // The family member's page got every key wrong: it decodes nothing, and says so.
    const wrong = await pcStats(family.page);
    expect(wrong).toHaveLength(3);
    expect(wrong.every((s) => s.state === 'connected' && s.bytesReceived > 0 && s.framesDecoded === 0)).toBe(true);
    await waitUntil('cannot-decrypt shown', () => family.page.getByTestId('peer-encryption').evaluateAll((els) => els.map((e) => e.getAttribute('data-state'))), (s) => s.length === 3 && s.every((x) => x === 'cannot-decrypt'));
    // Its own frames are sealed with its own (right) key: the others decode them.
    await waitForVideoFromAll(host.page, 3);
  });

  it('refuses a fifth participant with a clear message, and a guest link that was already used', async () => {
    const fifth = await newParticipant(browser);
    await fifth.page.goto(await guestLink('Otro familiar'));
    await joinFromDeviceCheck(fifth.page);
    const ended = fifth.page.locator('[data-reason="room-full"]');
    await ended.waitFor();
    expect(await ended.innerText()).toMatch(/completa/);
    await fifth.context.close();

    const reused = await newParticipant(browser);
    await reused.page.goto(guestLinks[0]!);
    // The page asks about the link first (its public preview): a used one is named at once, with no device check.
    await reused.page.getByTestId('guest-link-unusable').waitFor();
    expect(await reused.page.getByTestId('device-check').count()).toBe(0);
    expect(await host.page.getByTestId('lobby-entry').count()).toBe(0);
    await reused.context.close();
  });

  it('resumes by itself within 5 s of the network coming back after a cut', async () => {
    // Back to two: the guests leave.
    for (const guest of guests.splice(0)) {
      await guest.page.getByTestId('hang-up').click();
      await guest.context.close();
    }
    await waitUntil('two in the call', async () => (await pcStats(host.page)).length, (n) => n === 1, 15_000);
    await waitForVideoFromAll(patient.page, 1);

    const ufrag = () => patient.page.evaluate(() => (globalThis as any).__pcs.filter((pc: any) => pc.connectionState !== 'closed').map((pc: any) => /a=ice-ufrag:(\S+)/.exec(pc.localDescription?.sdp ?? '')?.[1]).join() as string);
    const ufragBefore = await ufrag();
    await patient.context.setOffline(true);
    try {
      await patient.page.getByTestId('reconnecting').waitFor({ timeout: 5_000 });
      await new Promise((r) => setTimeout(r, 4000));
    } finally {
      await patient.context.setOffline(false);
    }
    const back = Date.now();
    // Signaling resumed (the banner goes), ICE restarted (new credentials), video flows again both ways.
    await patient.page.getByTestId('reconnecting').waitFor({ state: 'detached', timeout: 5_000 });
    await waitUntil('ICE restarted', ufrag, (u) => u !== ufragBefore && u !== '', 5_000);
    await Promise.all([waitForVideoFromAll(patient.page, 1, 5_000), waitForVideoFromAll(host.page, 1, 5_000)]);
    expect(Date.now() - back).toBeLessThan(5_000);
    expect(await patient.page.getByTestId('e2ee-status').getAttribute('data-state')).toBe('on');
  });

  it('ends the consultation for everyone when the clinician hangs up, and the room is gone', async () => {
    expect(web.node.ctx.consult.room(appointmentId)).toBeDefined();
    await host.page.getByTestId('hang-up').click();
    const ended = patient.page.getByTestId('call-ended');
    await ended.waitFor();
    expect(await ended.getAttribute('data-reason')).toBe('ended');
    await waitUntil('room destroyed', async () => web.node.ctx.consult.room(appointmentId), (r) => r === undefined, 5_000);
    expect(await totalFramesDecoded(patient.page)).toBe(0);
  });
});

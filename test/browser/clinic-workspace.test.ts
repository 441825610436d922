import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { currentTotpCode } from '../../src/auth/mfa/totp.js';
import { seriousAccessibilityViolations, screenshotStep } from './support/accessibility.js';
import { PASSWORD, startBrowserNode, type BrowserNode } from './support/browser-node.js';
import { launchChromium, newParticipant, waitForVideoFromAll, waitUntil, type Participant } from './support/chromium.js';
import { joinFromDeviceCheck, signInThroughConsult } from './support/consult-flow.js';

const JOURNEY = 'clinic-workspace';

/**
 * The clinician's day in real Chromium: sign-in with MFA, today's schedule showing the patient
 * who waits, "join and admit" from there, the call with the chart beside it, a SOAP note
 * written (autosaved as a draft) and signed during the call, an addendum, vitals, the phone
 * layout keeping the encryption state and safety code in view, patient search, and
 * break-the-glass for a patient outside the clinician's care. axe on every page visited.
 */
describe('clinician workspace in the browser', { timeout: 240_000 }, () => {
  let web: BrowserNode;
  let browser: Browser;
  let appointmentId: string;
  let clinician: { email: string; totpSecret?: string | undefined; practitionerId?: string | undefined };
  let patientAccount: { email: string; patientId?: string | undefined };
  let stranger: { patientId?: string | undefined };
  let doctor: Participant;
  let patient: Participant;

  beforeAll(async () => {
    web = await startBrowserNode();
    clinician = await web.account('doctora-clinica', 'clinician', 'Lucía Fernández');
    patientAccount = await web.account('paciente-clinica', 'patient', 'Tomás Romero');
    stranger = await web.account('fuera-de-cuidado', 'patient', 'Rosa Desconocida');
    appointmentId = await web.appointment(patientAccount.patientId!, clinician.practitionerId!);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await web?.stop();
  });

  async function expectAccessible(page: Page, step: string): Promise<void> {
    await screenshotStep(page, JOURNEY, step);
    expect(await seriousAccessibilityViolations(page), `axe on ${step}`).toEqual([]);
  }

  /** The server's own record of the notes about this patient (as the system, not through the page). */
  async function notesOnServer(): Promise<any[]> {
    const res = await web.node.request({ method: 'GET', url: `/fhir/R4/Composition?patient=${patientAccount.patientId}` });
    expect(res.statusCode).toBe(200);
    return (res.json().entry ?? []).map((e: { resource: unknown }) => e.resource);
  }

  it('signs the clinician in with MFA onto today\'s schedule, which shows the patient waiting', async () => {
    patient = await newParticipant(browser);
    await signInThroughConsult(patient.page, web.origin, appointmentId, patientAccount.email);
    await joinFromDeviceCheck(patient.page);
    await patient.page.getByTestId('waiting-room').waitFor();

    doctor = await newParticipant(browser);
    await doctor.page.setViewportSize({ width: 1366, height: 900 });
    const page = doctor.page;
    await page.goto(`${web.origin}/clinic`);
    await page.waitForURL(/\/sign-in\?next=%2Fclinic/);
    await expectAccessible(page, '01-sign-in');
    await page.fill('input[autocomplete="username"]', clinician.email);
    await page.fill('input[autocomplete="current-password"]', PASSWORD);
    await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(clinician.totpSecret!));
    await page.click('button[type="submit"]');
    await page.waitForURL(`${web.origin}/clinic`);

    const row = page.locator(`[data-testid="appointment-row"][data-appointment-id="${appointmentId}"]`);
    await row.waitFor();
    expect(await row.innerText()).toContain('Tomás Romero');
    // The schedule polls the waiting rooms: the patient appears without a reload.
    await row.locator('[data-testid="waiting-entry"]').waitFor({ timeout: 30_000 });
    expect(await row.locator('[data-testid="waiting-entry"]').getAttribute('data-e2ee')).toBe('true');
    await expectAccessible(page, '02-schedule-patient-waiting');
  });

  it('joins and admits the waiting patient from the schedule, with the chart beside the video and the call encrypted', async () => {
    const page = doctor.page;
    await page.locator(`[data-testid="appointment-row"][data-appointment-id="${appointmentId}"] [data-testid="join-and-admit"]`).click();
    await page.waitForURL(`${web.origin}/consult/${appointmentId}`);
    await page.getByTestId('device-check').waitFor();
    await expectAccessible(page, '03-device-check');
    await joinFromDeviceCheck(page);
    await page.getByTestId('clinician-call').waitFor();
    // Admitted from the schedule's click: no second step in the lobby.
    await patient.page.getByTestId('call').waitFor({ timeout: 30_000 });
    await waitForVideoFromAll(page, 1, 30_000);
    await page.getByTestId('call-chart').getByTestId('patient-header').waitFor();
    expect(await page.getByTestId('call-chart').getByTestId('patient-header').innerText()).toContain('Tomás Romero');
    // Video and chart side by side on a wide screen.
    expect(await page.getByTestId('call').isVisible()).toBe(true);
    expect(await page.getByTestId('call-chart').isVisible()).toBe(true);
    await waitUntil('encrypted both ways', () => page.getByTestId('strip-e2ee').getAttribute('data-state'), (s) => s === 'on');
    const code = await waitUntil('a safety code in the strip', () => page.getByTestId('strip-safety-code').first().innerText().catch(() => ''), (c) => /^\d{4} \d{4} \d{4}$/.test(c));
    expect(await patient.page.getByTestId('safety-code').first().innerText()).toBe(code);
    await expectAccessible(page, '04-call-with-chart');
  });

  it('saves the SOAP note as a draft while it is typed, and records vitals, a problem, an allergy, a prescription and a document, without leaving the call', async () => {
    const page = doctor.page;
    await page.getByTestId('note-subjective').fill('Tos seca desde hace 5 días.\nSin fiebre.');
    await page.getByTestId('note-objective').fill('Buen estado general por vídeo.');
    await page.getByTestId('note-assessment').fill('Probable infección respiratoria viral.');
    await page.getByTestId('note-plan').fill('Hidratación, control en 7 días.');
    await waitUntil('draft saved', async () => ({ state: await page.getByTestId('note-save-state').getAttribute('data-state'), id: await page.getByTestId('note-form').getAttribute('data-note-id') }), (s) => s.state === 'saved' && !!s.id, 20_000);
    await waitUntil('the whole draft on the server', notesOnServer, (notes) => notes.length === 1 && notes[0].status === 'preliminary' && notes[0].section?.length === 4, 20_000);
    const [draft] = await notesOnServer();
    expect(draft.section[0].text.div).toContain('<p>Tos seca desde hace 5 días.</p><p>Sin fiebre.</p>');
    expect(draft.event[0].detail[0].reference).toBe(`Appointment/${appointmentId}`);
    expect(draft.author[0].reference).toBe(`Practitioner/${clinician.practitionerId}`);

    await page.getByTestId('vital-heartRate').fill('88');
    await page.getByTestId('vital-systolic').fill('128');
    await page.getByTestId('vital-diastolic').fill('82');
    await page.getByTestId('save-vitals').click();
    await waitUntil('vitals listed', () => page.getByTestId('vitals-table').innerText().catch(() => ''), (text) => text.includes('128/82') && text.includes('88'));
    // The rest of the chart, from the same pane: a problem, an allergy, a prescription, a document.
    const chart = page.getByTestId('call-chart');
    await chart.getByTestId('problem-text').fill('Infección respiratoria aguda');
    await chart.getByTestId('add-problem').click();
    await waitUntil('problem listed', () => chart.getByTestId('problem-list').innerText(), (text) => text.includes('Infección respiratoria aguda'));
    await chart.getByTestId('allergy-substance').fill('Penicilina');
    await chart.getByTestId('add-allergy').click();
    await waitUntil('allergy listed', () => chart.getByTestId('allergy-list').innerText(), (text) => text.includes('Penicilina'));
    await chart.getByTestId('prescription-medication').fill('Paracetamol 500 mg');
    await chart.getByTestId('prescription-dosage').fill('1 comprimido cada 8 horas si hay dolor');
    await chart.getByTestId('prescribe').click();
    await waitUntil('prescription listed', () => chart.getByTestId('medication-list').innerText(), (text) => text.includes('Paracetamol 500 mg'));
    await chart.getByTestId('document-file').setInputFiles({ name: 'indicaciones.txt', mimeType: 'text/plain', buffer: Buffer.from('Beber abundante agua.\n') });
    await chart.getByTestId('document-title').fill('Indicaciones al alta');
    await chart.getByTestId('upload-document').click();
    await waitUntil('document listed', () => chart.getByTestId('document-list').innerText(), (text) => text.includes('Indicaciones al alta'));
    const prescriptions = await web.node.request({ method: 'GET', url: `/fhir/R4/MedicationRequest?patient=${patientAccount.patientId}` });
    expect(prescriptions.json().entry[0].resource).toMatchObject({ status: 'active', intent: 'order', requester: { reference: `Practitioner/${clinician.practitionerId}` }, dosageInstruction: [{ text: '1 comprimido cada 8 horas si hay dolor' }] });
    // The call went on meanwhile.
    expect(await patient.page.getByTestId('call').isVisible()).toBe(true);
  });

  it('signs the note during the call: final, the clinician as legal attester, then read-only with an addendum', async () => {
    const page = doctor.page;
    await page.getByTestId('sign-note').click();
    const signed = page.getByTestId('call-chart').locator('[data-testid="signed-note"][data-status="final"]').first();
    await signed.waitFor();
    expect(await signed.innerText()).toContain('Probable infección respiratoria viral.');
    // The signed note's form folds away; a fresh note is one click away.
    await page.getByTestId('call-chart').getByTestId('new-note').waitFor();
    const notes = await notesOnServer();
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ status: 'final', attester: [{ mode: 'legal', party: { reference: `Practitioner/${clinician.practitionerId}` } }] });
    expect(Date.parse(notes[0].attester[0].time)).toBeGreaterThan(Date.now() - 10 * 60_000);

    // The server keeps it as signed: an edit is refused.
    const edit = await web.node.request({ method: 'PUT', url: `/fhir/R4/Composition/${notes[0].id}`, payload: { ...notes[0], title: 'cambiada' }, headers: { 'if-match': `W/"${notes[0].meta.versionId}"` } });
    expect(edit.statusCode).toBe(409);
    expect(edit.json().issue[0].diagnostics).toContain('addendum');

    await signed.getByTestId('write-addendum').click();
    await signed.getByTestId('addendum-text').fill('El paciente refiere además dolor de garganta.');
    await signed.getByTestId('sign-addendum').click();
    await signed.getByTestId('addendum').waitFor();
    const after = await notesOnServer();
    const addendum = after.find((n) => n.relatesTo);
    expect(addendum).toMatchObject({ status: 'final', relatesTo: [{ code: 'appends', targetReference: { reference: `Composition/${notes[0].id}` } }] });
    await expectAccessible(page, '05-note-signed-with-addendum');
  });

  it('on a phone, shows video or chart one at a time while encryption, safety code and the waiting room stay in view', async () => {
    const page = doctor.page;
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByTestId('show-chart').click();
    await waitUntil('chart shown alone', async () => [await page.getByTestId('call-chart').isVisible(), await page.getByTestId('call').isVisible()], ([chart, video]) => chart === true && video === false);
    expect(await page.getByTestId('strip-e2ee').isVisible()).toBe(true);
    expect(await page.getByTestId('strip-safety-code').first().isVisible()).toBe(true);
    await expectAccessible(page, '06-phone-chart-tab');
    await page.getByTestId('show-video').click();
    await page.getByTestId('call').waitFor();
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it('finds the patient by name and opens the chart, with the signed note in it', async () => {
    const page = doctor.page;
    await page.getByTestId('hang-up').click();
    await page.goto(`${web.origin}/clinic/patients`);
    await page.getByTestId('patient-search').waitFor();
    await page.getByTestId('search-name').fill('Romero');
    await page.getByTestId('search-submit').click();
    await page.getByTestId('search-result').first().waitFor();
    await expectAccessible(page, '07-patient-search');
    await page.getByTestId('search-result').first().click();
    await page.waitForURL(`${web.origin}/clinic/patients/${patientAccount.patientId}`);
    await page.getByTestId('chart').waitFor();
    await page.locator('.earlier-notes summary').click();
    await page.locator('[data-testid="signed-note"][data-status="final"]').first().waitFor();
    await expectAccessible(page, '08-chart');
  });

  it('opens the record of a patient outside the clinician\'s care only by breaking the glass, with a reason', async () => {
    const page = doctor.page;
    await page.goto(`${web.origin}/clinic/patients/${stranger.patientId}`);
    await page.getByTestId('break-glass').waitFor();
    await expectAccessible(page, '09-break-glass');
    await page.getByTestId('break-glass-reason').fill('Paciente inconsciente en urgencias, necesito sus alergias.');
    await page.getByTestId('break-glass-password').fill(PASSWORD);
    // A code of the next 30-second step: the one used at sign-in can't be replayed.
    await page.getByTestId('break-glass-code').fill(currentTotpCode(clinician.totpSecret!, new Date(Date.now() + 30_000)));
    await page.getByTestId('break-glass-submit').click();
    await page.getByTestId('chart-page').waitFor();
    expect(await page.getByTestId('patient-header').innerText()).toContain('Rosa Desconocida');
    await expectAccessible(page, '10-chart-after-break-glass');
    const grants = await web.node.request({ method: 'GET', url: '/api/access/break-glass' });
    expect(grants.json().grants).toContainEqual(expect.objectContaining({ patient: `Patient/${stranger.patientId}`, practitioner: `Practitioner/${clinician.practitionerId}` }));
  });

  it('speaks English when the clinician switches language, dates and times included', async () => {
    const page = doctor.page;
    await page.getByTestId('language').selectOption('en');
    await page.getByTestId('nav-schedule').click();
    await page.getByTestId('schedule').waitFor();
    const heading = await page.getByRole('heading', { level: 1 }).innerText();
    expect(heading).toMatch(/^Schedule · [A-Z][a-z]+day, [A-Z][a-z]+ \d{1,2}$/);
    const row = page.locator(`[data-testid="appointment-row"][data-appointment-id="${appointmentId}"]`);
    expect(await row.innerText()).toContain('Video consultation');
    expect(await page.getByTestId('nav-patients').innerText()).toBe('Patients');
    await expectAccessible(page, '11-schedule-in-english');
  });
});

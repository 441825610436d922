import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../config/config.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { appointment, create, patient, practitioner } from '../test-support/fixtures.js';
import { testLogDir } from '../test-support/paths.js';
import { startTestNode, STORE_KINDS, testLogger, type TestNode } from '../test-support/test-node.js';
import { renderMail } from './mail-templates.js';
import { MAIL_DELIVERY_ACTOR, MailDelivery, smtpTransport } from './mail-delivery.js';
import { MailOutbox } from './mail-outbox.js';
import { toAuditEvent } from '../audit/audit-event-fhir.js';
import { createLogger } from '../logging/logger.js';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { Repository } from '../records/repository.js';
import { startTestSmtpServer, type ReceivedMail, type TestSmtpServer } from './test-smtp-server.js';

const NEW_PASSWORD = 'girasoles-bajo-la-tormenta-de-Salta-97';
const CLINIC_ZONE = 'America/Mexico_City';
/** 16:30 UTC is 10:30 in Mexico City (UTC-6 all year since 2022). */
const START = '2031-03-04T16:30:00.000Z';
const MOVED = '2031-03-06T15:00:00.000Z';

const textOf = (mail: ReceivedMail) => mail.parsed.text ?? '';
const htmlOf = (mail: ReceivedMail) => (typeof mail.parsed.html === 'string' ? mail.parsed.html : '');
const to = (address: string) => (mail: ReceivedMail) => mail.envelopeTo.includes(address);

describe.each(STORE_KINDS)('e-mail to patients and staff (%s)', (kind) => {
  let smtp: TestSmtpServer;
  let node: TestNode;
  /** Everything the tests put in e-mails that must never reach a log. */
  const secrets: string[] = [];

  beforeAll(async () => {
    smtp = await startTestSmtpServer();
    node = await startTestNode(kind, {
      TELESALUD_SMTP_URL: `smtp://${smtp.user}:${encodeURIComponent(smtp.password)}@127.0.0.1:${smtp.port}`,
      TELESALUD_SMTP_CA_FILE: smtp.caFile,
      TELESALUD_MAIL_FROM: 'Clínica Norte <no-reply@clinica-norte.example.org>',
      TELESALUD_MAIL_LANGUAGE: 'es',
      TELESALUD_CLINIC_TIME_ZONE: CLINIC_ZONE,
    });
    secrets.push(smtp.password, encodeURIComponent(smtp.password));
  });
  afterAll(async () => {
    await node?.stop();
    await smtp?.close();
  });

  const outboxRow = (id: string) => node.ctx.store.db.selectFrom('notification_outbox').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const messageIdOf = (mail: ReceivedMail) => /^<([0-9a-f-]{36})@telesalud>$/.exec(mail.parsed.messageId ?? '')?.[1];
  /** The `notification-sent` entries of one outbox message, once its sender has committed them. */
  const sentEntries = async (messageId: string, expected = 1) => {
    const query = () => node.ctx.store.db.selectFrom('audit_event').selectAll().where('action', '=', 'notification-sent').where('request_id', '=', `mail:${messageId}`).orderBy('seq').execute();
    await vi.waitFor(async () => expect(await query()).toHaveLength(expected));
    return query();
  };

  it("e-mails an invitation in the patient's language, over TLS, with a link that opens the invitation", async () => {
    const email = `ingrid.${kind}@example.org`;
    secrets.push(email, 'Ingrid', 'Lindqvist');
    const person = await create(node, patient('Lindqvist', ['Ingrid'], { communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-GB' }] }, preferred: true }] }));
    const res = await node.request({ method: 'POST', url: '/api/invitations', payload: { email, patientId: person.id } });
    expect(res.statusCode).toBe(201);
    const { url, emailed } = res.json();
    expect(emailed).toBe(true);
    secrets.push(url, url.slice(url.indexOf('#') + 1));

    const mail = await smtp.waitFor(to(email));
    expect(mail.secure).toBe(true);
    expect(mail.user).toBe(smtp.user);
    expect(mail.parsed.from?.value[0]).toEqual({ address: 'no-reply@clinica-norte.example.org', name: 'Clínica Norte' });
    expect(mail.parsed.subject).toBe('Your invitation to the patient portal');
    expect(textOf(mail)).toContain(url);
    expect(htmlOf(mail)).toContain(`href="${url}"`);
    expect(mail.parsed.html && htmlOf(mail)).toContain('lang="en"');
    // Minimum necessary: nothing of the record travels by e-mail.
    expect(mail.raw).not.toContain('Lindqvist');
    expect(mail.raw).not.toContain('Ingrid');

    // The link in the e-mail is the invitation: it opens, and it creates the account.
    const linked = /https:\/\/\S+\/invite#([A-Za-z0-9_-]{43})/.exec(textOf(mail));
    expect(linked).not.toBeNull();
    const token = linked![1]!;
    const preview = await node.app.inject({ method: 'GET', url: `/api/invitations/${token}/preview` });
    expect(preview.statusCode).toBe(200);
    expect(preview.json()).toMatchObject({ valid: true, role: 'patient' });
    const accepted = await new AuthTestClient(node).post('/api/invitations/accept', { token, password: NEW_PASSWORD });
    expect(accepted.statusCode).toBe(200);
    expect(accepted.json().account).toMatchObject({ email, role: 'patient', fhirRef: `Patient/${person.id}` });

    // Sent once; the sealed content (address, link) is gone from the outbox.
    const row = await outboxRow(messageIdOf(mail)!);
    expect(row).toMatchObject({ template: 'patient-invitation', status: 'sent', attempts: 1, ciphertext: null, wrapped_key: null });
    expect(smtp.received.filter(to(email))).toHaveLength(1);
    const audit = await node.ctx.store.db.selectFrom('audit_event').select(['detail']).where('action', '=', 'invitation-created').where('patient', '=', `Patient/${person.id}`).executeTakeFirstOrThrow();
    expect(JSON.stringify(audit.detail)).toContain(messageIdOf(mail)!);

    // Its handing-over to the relay is on record, under the patient: who (this node), what kind, which message.
    const [sent] = await sentEntries(messageIdOf(mail)!);
    expect(sent).toMatchObject({ actor: MAIL_DELIVERY_ACTOR, outcome: 'success', patient: `Patient/${person.id}` });
    expect(sent!.detail).toMatchObject({ message: messageIdOf(mail), template: 'patient-invitation', attempt: 1, node: node.ctx.nodeId });
    expect(JSON.stringify(sent)).not.toContain(email);
    expect(JSON.stringify(sent)).not.toContain(url);
    // Exported as a FHIR AuditEvent: DICOM "Export" (data leaving the system), the patient as entity.
    const event = toAuditEvent(sent!) as { type: { code: string }; action: string; entity: Array<{ what?: { reference: string } }>; agent: Array<{ who: { identifier?: { value: string } } }> };
    expect(event.type.code).toBe('110106');
    expect(event.action).toBe('R');
    expect(event.entity[0]!.what?.reference).toBe(`Patient/${person.id}`);
    expect(event.agent[0]!.who.identifier?.value).toBe(MAIL_DELIVERY_ACTOR);
  });

  it('tells the patient of a booking, a move and a cancellation, on the clinic clock, in the clinic language by default', async () => {
    const email = `rosario.${kind}@example.org`;
    secrets.push(email, 'Rosario', 'Quispe');
    const person = await create(node, patient('Quispe', ['Rosario'], { telecom: [{ system: 'email', value: email }] }));
    const doctor = await create(node, practitioner('Valdivia'));
    secrets.push('Valdivia');

    const booked = await create(node, appointment(person.id, doctor.id, START));
    const first = await smtp.waitFor((m) => to(email)(m) && m.parsed.subject === 'Cita confirmada');
    expect(textOf(first)).toContain('10:30');
    expect(textOf(first)).not.toContain('16:30');
    expect(textOf(first)).toMatch(/4 de marzo de 2031/);
    expect(textOf(first)).toContain('videoconsulta');
    expect(textOf(first)).toContain(`${node.config.publicUrl}/portal`);
    expect(first.raw).not.toContain('Valdivia');
    expect(first.raw).not.toContain('Quispe');

    const moved = await node.request({ method: 'PUT', url: `/fhir/R4/Appointment/${booked.id}`, payload: { ...booked, start: MOVED, end: new Date(Date.parse(MOVED) + 20 * 60_000).toISOString() }, headers: { 'if-match': 'W/"1"' } });
    expect(moved.statusCode).toBe(200);
    const second = await smtp.waitFor((m) => to(email)(m) && m.parsed.subject === 'Su cita ha cambiado de hora');
    expect(textOf(second)).toMatch(/6 de marzo de 2031.*9:00/);
    expect(textOf(second)).toMatch(/4 de marzo de 2031.*10:30/);

    const cancelled = await node.request({ method: 'PUT', url: `/fhir/R4/Appointment/${booked.id}`, payload: { ...(moved.json() as Record<string, unknown>), status: 'cancelled' }, headers: { 'if-match': 'W/"2"' } });
    expect(cancelled.statusCode).toBe(200);
    const third = await smtp.waitFor((m) => to(email)(m) && m.parsed.subject === 'Cita cancelada');
    expect(textOf(third)).toMatch(/6 de marzo de 2031.*9:00/);
    expect(smtp.received.filter(to(email)).map((m) => m.parsed.subject)).toEqual(['Cita confirmada', 'Su cita ha cambiado de hora', 'Cita cancelada']);
    const templates = [];
    for (const mail of [first, second, third]) {
      const [sent] = await sentEntries(messageIdOf(mail)!);
      expect(sent!.patient).toBe(`Patient/${person.id}`);
      templates.push((sent!.detail as { template: string }).template);
    }
    expect(templates).toEqual(['appointment-booked', 'appointment-rescheduled', 'appointment-cancelled']);

    // A write that changes nothing the patient must hear of sends nothing.
    const sent = smtp.received.length;
    const past = await create(node, appointment(person.id, doctor.id, '2020-01-07T16:00:00.000Z', 20, 'fulfilled'));
    expect(past.id).toBeDefined();
    await node.ctx.notifications!.delivery.deliverDue();
    expect(smtp.received.length).toBe(sent);
  });

  it('retries a message the relay refuses for now, and delivers it once', async () => {
    const email = `staff.retry.${kind}@clinica-norte.example.org`;
    secrets.push(email);
    const refusalsBefore = smtp.refusals;
    smtp.refuseNext(1, 451);
    const res = await node.request({ method: 'POST', url: '/api/invitations', payload: { email, role: 'clinician', language: 'en' } });
    expect(res.statusCode).toBe(201);
    secrets.push(res.json().url);
    const db = node.ctx.store.db;
    // The first try is refused: the message waits for its next attempt (a minute or more away).
    let row: Awaited<ReturnType<typeof outboxRow>> | undefined;
    for (let i = 0; i < 100 && row?.last_error !== 'smtp-451'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      row = await db.selectFrom('notification_outbox').selectAll().where('template', '=', 'staff-invitation').orderBy('created', 'desc').executeTakeFirst();
    }
    expect(smtp.refusals).toBe(refusalsBefore + 1);
    expect(row).toMatchObject({ status: 'pending', attempts: 1, last_error: 'smtp-451' });
    expect(new Date(row!.next_attempt_at).getTime()).toBeGreaterThan(Date.now() + 30_000);
    expect(smtp.received.filter(to(email))).toHaveLength(0);

    // When its time comes, it goes — once, however many passes follow.
    const later = new Date(Date.now() + 2 * 3_600_000);
    expect(await node.ctx.notifications!.delivery.deliverDue(later)).toBe(1);
    expect(await node.ctx.notifications!.delivery.deliverDue(later)).toBe(0);
    const mail = await smtp.waitFor(to(email));
    expect(mail.parsed.subject).toBe('Your clinic staff account');
    expect(smtp.received.filter(to(email))).toHaveLength(1);
    expect(await outboxRow(row!.id)).toMatchObject({ status: 'sent', attempts: 2, ciphertext: null });
    // A refused try is not a sending; a staff invitation concerns no patient.
    const [sent] = await sentEntries(row!.id);
    expect(sent).toMatchObject({ patient: null });
    expect(sent!.detail).toMatchObject({ template: 'staff-invitation', attempt: 2 });
  });

  it('gives up on a message the relay refuses for good, and keeps nothing of it', async () => {
    const email = `nobody.${kind}@clinica-norte.example.org`;
    secrets.push(email);
    smtp.refuseNext(1, 550);
    const res = await node.request({ method: 'POST', url: '/api/invitations', payload: { email, role: 'admin' } });
    expect(res.statusCode).toBe(201);
    secrets.push(res.json().url);
    let row;
    for (let i = 0; i < 100 && row?.status !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      row = await node.ctx.store.db.selectFrom('notification_outbox').selectAll().where('template', '=', 'staff-invitation').where('status', '=', 'failed').executeTakeFirst();
    }
    expect(row).toMatchObject({ status: 'failed', attempts: 1, last_error: 'smtp-550', ciphertext: null, nonce: null });
    expect(smtp.received.filter(to(email))).toHaveLength(0);
  });

  it("e-mails a consultation's guest link when the hosting clinician gives an address", async () => {
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const host = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `host.${kind}@clinica-norte.example.org`, role: 'clinician', name: 'Host Doctor', password: NEW_PASSWORD });
    const session = await node.ctx.sessions.create({ id: host.id, role: host.role }, { source: '127.0.0.1' });
    const person = await create(node, patient('Mamani', ['Elsa']));
    const visit = await create(node, appointment(person.id, host.practitionerId!, '2031-05-02T14:00:00.000Z'));
    const guest = `interprete.${kind}@example.org`;
    secrets.push(guest, 'Mamani');
    const post = (payload: Record<string, unknown>) =>
      node.app.inject({ method: 'POST', url: `/api/consult/appointments/${visit.id}/guest-links`, payload, cookies: { [SESSION_COOKIE]: session.token }, headers: { 'x-csrf-token': session.csrfToken, origin: node.config.publicUrl } });
    expect((await post({ label: 'Intérprete', email: 'not-an-address' })).statusCode).toBe(400);
    const res = await post({ label: 'Intérprete', email: guest, language: 'en' });
    expect(res.statusCode).toBe(201);
    const { url, emailed } = res.json();
    expect(emailed).toBe(true);
    secrets.push(url);
    const mail = await smtp.waitFor(to(guest));
    expect(mail.parsed.subject).toBe('Link to join a video consultation');
    expect(textOf(mail)).toContain(url);
    expect(mail.raw).not.toContain('Mamani');
    expect(mail.raw).not.toContain('Host Doctor');
    const [sent] = await sentEntries(messageIdOf(mail)!);
    expect(sent).toMatchObject({ patient: `Patient/${person.id}` });
    expect(sent!.detail).toMatchObject({ template: 'consult-guest-link' });
  });

  it('counts sent and failed e-mails in /metrics', async () => {
    // The last message was received before its sender marked it sent: wait for the outbox to settle.
    await vi.waitFor(async () => expect(await node.ctx.store.db.selectFrom('notification_outbox').select('id').where('status', 'in', ['pending', 'sending']).execute()).toHaveLength(0));
    const res = await node.request({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(Number(/^telesalud_mail_sent_total (\d+)$/m.exec(res.body)?.[1])).toBeGreaterThanOrEqual(6);
    expect(Number(/^telesalud_mail_failed_total (\d+)$/m.exec(res.body)?.[1])).toBe(1);
    expect(res.body).toMatch(/^telesalud_mail_outbox_messages\{state="failed"\} 1$/m);
  });

  it('logs message ids and templates, never an address, a name, a link or the relay password', async () => {
    const log = await readFile(path.join(testLogDir(), `${process.pid}.log`), 'utf8');
    const mailLines = log.split('\n').filter((line) => line.includes('"template"'));
    expect(mailLines.some((line) => line.includes('"e-mail sent"') && line.includes('"template":"patient-invitation"'))).toBe(true);
    expect(mailLines.some((line) => line.includes('will retry') && line.includes('smtp-451'))).toBe(true);
    for (const secret of secrets) expect(log, 'a log line holds e-mail content').not.toContain(secret);
  });

  it('lets every node deliver: concurrent claims never take the same message, and a lapsed claim is taken again', async () => {
    const db = node.ctx.store.db;
    const [nodeA, nodeB] = [new MailOutbox(db, node.ctx.keyRing), new MailOutbox(db, node.ctx.keyRing)];
    // Due far ahead, so this node's own loop leaves them to the test.
    const due = new Date(Date.now() + 10 * 86_400_000);
    const queued = new Set<string>();
    for (let i = 0; i < 24; i++) queued.add(await nodeA.enqueue(db, { template: 'staff-invitation', to: 'farm@example.org', language: 'es', link: 'https://x.example.org/invite#t', expiresAt: START }, due));
    const at = new Date(due.getTime() + 1000);
    const claims = (await Promise.all([nodeA.claimDue(8, 60_000, at), nodeB.claimDue(8, 60_000, at), nodeA.claimDue(8, 60_000, at), nodeB.claimDue(8, 60_000, at)])).flat();
    expect(claims.map((c) => c.id).sort()).toEqual([...queued].sort());
    expect(claims.every((c) => c.attempt === 1 && c.content?.to === 'farm@example.org')).toBe(true);
    expect(await nodeA.claimDue(50, 60_000, at)).toHaveLength(0);
    // The claiming node stopped mid-send: once its lease runs out, another node takes the messages again.
    const retaken = await nodeB.claimDue(50, 60_000, new Date(at.getTime() + 61_000));
    expect(retaken.map((c) => c.id).sort()).toEqual([...queued].sort());
    expect(retaken.every((c) => c.attempt === 2)).toBe(true);
    // The first claims are fenced off: a node that comes back after its lease ran out changes nothing.
    const [stale, fresh] = [claims.find((c) => c.id === retaken[0]!.id)!, retaken[0]!];
    expect(await nodeA.renew(stale, 60_000, at)).toBe(false);
    await nodeA.markRetry(stale, at, 'smtp-451');
    await nodeA.release(stale);
    await nodeA.markFailed(stale, 'test');
    expect(await outboxRow(fresh.id)).toMatchObject({ status: 'sending', attempts: 2, last_error: null });
    expect(await nodeB.renew(fresh, 60_000, at)).toBe(true);
    for (const c of retaken) await nodeB.markFailed(c, 'test');
  });

  it('sends a message again when its sender died after handing it over: same Message-ID, the second try audited as such', async () => {
    const db = node.ctx.store.db;
    const email = `twice.${kind}@example.org`;
    secrets.push(email);
    const person = await create(node, patient('Condori', ['Nilda']));
    const link = `https://x.example.org/invite#twice-${kind}`;
    secrets.push(link);
    // Due far ahead, so this node's own loop leaves it to the two "nodes" below.
    const due = new Date(Date.now() + 20 * 86_400_000);
    const id = await node.ctx.notifications!.outbox.enqueue(db, { template: 'patient-invitation', to: email, language: 'es', link, expiresAt: START, patient: `Patient/${person.id}` }, due);
    const settings = node.config.mail!;
    const renderContext = async () => ({ timeZone: CLINIC_ZONE, publicUrl: node.config.publicUrl });
    const policy = { leaseMs: 60_000 };

    // Node A hands the message to the relay, then dies before it can mark it sent.
    class DyingOutbox extends MailOutbox {
      override async markSent(): Promise<boolean> {
        throw new Error('node killed');
      }
    }
    const nodeA = new MailDelivery(new DyingOutbox(db, node.ctx.keyRing), await smtpTransport(settings), { from: settings.from, logger: createLogger('silent'), audit: node.ctx.audit, nodeId: 'node-a', renderContext, policy });
    await expect(nodeA.deliverDue(due)).rejects.toThrow('node killed');
    const first = await smtp.waitFor(to(email));
    expect(await outboxRow(id)).toMatchObject({ status: 'sending', attempts: 1 });

    // Node B does not touch it while A's lease holds…
    const nodeB = new MailDelivery(new MailOutbox(db, node.ctx.keyRing), await smtpTransport(settings), { from: settings.from, logger: testLogger(), audit: node.ctx.audit, nodeId: 'node-b', renderContext, policy });
    expect(await nodeB.deliverDue(new Date(due.getTime() + 30_000))).toBe(0);
    // …and sends it again once it ran out: at least once, never lost.
    expect(await nodeB.deliverDue(new Date(due.getTime() + 61_000))).toBe(1);
    await vi.waitFor(() => expect(smtp.received.filter(to(email))).toHaveLength(2));
    const [once, again] = smtp.received.filter(to(email));
    expect(once).toBe(first);
    // The copy is recognisably the same message: one Message-ID, the outbox row's.
    expect(again!.parsed.messageId).toBe(once!.parsed.messageId);
    expect(messageIdOf(again!)).toBe(id);
    expect(textOf(again!)).toBe(textOf(once!));
    expect(await outboxRow(id)).toMatchObject({ status: 'sent', attempts: 2, ciphertext: null });
    await nodeA.stop();
    await nodeB.stop();

    // The try A made never reached the record (it died first); B's says it may be the second copy.
    const [sent] = await sentEntries(id);
    expect(sent).toMatchObject({ patient: `Patient/${person.id}` });
    expect(sent!.detail).toMatchObject({ message: id, attempt: 2, node: 'node-b', claimedAgain: true });
    const log = await readFile(path.join(testLogDir(), `${process.pid}.log`), 'utf8');
    expect(log.split('\n').some((line) => line.includes(id) && line.includes('may reach the recipient twice'))).toBe(true);
  });
});

describe('delivery loop', () => {
  it('stops cleanly: the message in flight finishes, the rest of its batch is handed back, nothing is claimed afterwards', async () => {
    let release!: () => void;
    const inFlight = new Promise<void>((resolve) => (release = resolve));
    let claims = 0;
    const content = { template: 'staff-invitation', to: 'a@example.org', language: 'es', link: 'https://x.example.org/invite#t', expiresAt: START } as const;
    const [m1, m2] = ['m1', 'm2'].map((id) => ({ id, template: 'staff-invitation', attempt: 1, content, claimedAgain: false }));
    const outbox = {
      claimDue: async () => (++claims === 1 ? [m1, m2] : []),
      renew: vi.fn(async () => true),
      markSent: vi.fn(async () => true),
      markRetry: vi.fn(async () => undefined),
      markFailed: vi.fn(async () => undefined),
      release: vi.fn(async () => undefined),
    };
    const transport = { sendMail: vi.fn(async () => inFlight), close: vi.fn() };
    const audit = { recordIn: vi.fn(async () => undefined) };
    const delivery = new MailDelivery(outbox as unknown as MailOutbox, transport as never, { from: 'no-reply@example.org', logger: createLogger('silent'), audit, renderContext: async () => ({ timeZone: 'UTC', publicUrl: 'https://x.example.org' }), policy: { pollMs: 10 } });
    delivery.start();
    await vi.waitFor(() => expect(transport.sendMail).toHaveBeenCalledTimes(1));
    let stopped = false;
    const stopping = delivery.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(outbox.markSent).toHaveBeenCalledWith(m1, expect.any(Date), expect.any(Function));
    expect(transport.sendMail).toHaveBeenCalledTimes(1);
    expect(outbox.release).toHaveBeenCalledWith(m2);
    expect(outbox.markSent).toHaveBeenCalledTimes(1);
    expect(transport.close).toHaveBeenCalledTimes(1);
    const claimsAtStop = claims;
    await new Promise((r) => setTimeout(r, 60));
    expect(claims).toBe(claimsAtStop);
  });
});

describe('e-mail templates', () => {
  it('escapes what goes into HTML', () => {
    const mail = renderMail({ template: 'patient-invitation', to: 'a@example.org', language: 'es', link: 'https://x.example.org/invite#a"><script>x</script>&', expiresAt: START }, { timeZone: CLINIC_ZONE, publicUrl: 'https://x.example.org' });
    expect(mail.html).not.toContain('<script>');
    expect(mail.html).toContain('&quot;&gt;&lt;script&gt;');
    expect(mail.text).toContain('<script>');
  });

  it('writes in person and by video differently, and leaves the mode out of a cancellation', () => {
    const ctx = { timeZone: CLINIC_ZONE, publicUrl: 'https://x.example.org' };
    expect(renderMail({ template: 'appointment-booked', to: 'a@example.org', language: 'en', start: START, mode: 'in-person' }, ctx).text).toContain('in-person visit');
    expect(renderMail({ template: 'appointment-booked', to: 'a@example.org', language: 'en', start: START, mode: 'telehealth' }, ctx).text).toContain('video consultation');
    expect(renderMail({ template: 'appointment-cancelled', to: 'a@example.org', language: 'en', start: START, mode: 'telehealth' }, ctx).text).not.toContain('video consultation');
  });
});

describe('e-mail settings', () => {
  const valid = { TELESALUD_SMTP_URL: 'smtps://mailer:s3cr%40t@smtp.example.org:465', TELESALUD_MAIL_FROM: 'Clínica <no-reply@example.org>' };

  it('is off without TELESALUD_SMTP_URL, and on with a relay and a sender', () => {
    expect(loadConfig({}).mail).toBeUndefined();
    expect(loadConfig(valid).mail).toEqual({ smtpUrl: valid.TELESALUD_SMTP_URL, from: valid.TELESALUD_MAIL_FROM, caFile: undefined, defaultLanguage: 'es' });
  });

  it.each([
    [{ TELESALUD_SMTP_URL: 'http://mailer:hunter2-secret@smtp.example.org' }, 'TELESALUD_SMTP_URL'],
    [{ TELESALUD_SMTP_URL: 'smtp://mailer:hunter2-secret@' }, 'TELESALUD_SMTP_URL'],
    [{ TELESALUD_SMTP_URL: 'not a url hunter2-secret' }, 'TELESALUD_SMTP_URL'],
    [{ TELESALUD_SMTP_URL: 'smtp://mailer:hunter2-secret@smtp.example.org/path?x=1' }, 'TELESALUD_SMTP_URL'],
    [{ TELESALUD_SMTP_URL: valid.TELESALUD_SMTP_URL }, 'TELESALUD_MAIL_FROM'],
    [{ ...valid, TELESALUD_MAIL_FROM: 'no-reply@example.org\r\nBcc: x@evil.example' }, 'TELESALUD_MAIL_FROM'],
    [{ ...valid, TELESALUD_MAIL_LANGUAGE: 'fr' }, 'TELESALUD_MAIL_LANGUAGE'],
    [{ ...valid, TELESALUD_SMTP_CA_FILE: '/nonexistent/relay-ca.pem' }, 'TELESALUD_SMTP_CA_FILE'],
  ])('stops at start with a one-line reason naming the variable, never the password (%#)', (env, variable) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.startsWith(`${variable}: `)).toBe(true);
    expect(message).not.toContain('\n');
    expect(message).not.toContain('hunter2');
  });
});

import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { safeError } from '../logging/safe-error.js';
import { badRequest, conflict, forbidden, notFound } from '../records/fhir/outcomes.js';
import { Repository } from '../records/repository.js';
import type { AppContext } from '../server/app-context.js';
import { GUEST_LINK_DEFAULT_MINUTES, GUEST_LINK_MAX_MINUTES } from './consult-store.js';
import { JoinRights } from './join-rights.js';
import { SignalingConnection } from './signaling-connection.js';
import { MAX_MESSAGE_BYTES, SIGNALING_PATH } from './signaling-protocol.js';
import { waitingRoomRoutes } from './waiting-rooms.js';
import { MAIL_LANGUAGES, type MailLanguage } from '../notifications/mail-templates.js';
import { authPolicy } from '../auth/policy/auth-policy.js';
import { effectiveClinicTimeZone } from '../auth/policy/clinic-time-zone.js';

const FHIR_ID = '^[A-Za-z0-9\\-.]{1,64}$';
const GUEST_EMAIL = /^[^\s@]{1,64}@[^\s@]{1,189}\.[^\s@]{2,63}$/;
const appointmentParams = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', pattern: FHIR_ID } } } as const;

/**
 * Video consultations: the signaling WebSocket (SIGNALING_PATH), the host's invitations and
 * guest links, and the admin's traffic figures.
 */
export async function consultRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const ownOrigin = new URL(ctx.config.publicUrl).origin;
  const rooms = ctx.consult;

  // Before the websocket plugin's own preClose (which closes sockets without a word): tell every browser to reconnect elsewhere.
  app.addHook('preClose', async () => rooms.drain());
  await app.register(fastifyWebsocket, {
    options: { maxPayload: MAX_MESSAGE_BYTES },
    errorHandler: (error, socket, request) => {
      request.log.warn({ err: safeError(error) }, 'signaling socket failed');
      socket.terminate();
    },
  });

  app.get(
    SIGNALING_PATH,
    {
      websocket: true,
      // Guests have no session: this route authenticates in `join` (session cookie or guest token).
      config: { public: true },
      onRequest: async (request: FastifyRequest) => {
        // Cross-site WebSocket hijacking: browsers send the page's Origin, and cookies ride along whatever it is.
        if (request.headers.origin !== ownOrigin) throw forbidden('this signaling endpoint serves only pages of its own origin');
        if (rooms.draining || ctx.lifecycle.draining) throw Object.assign(new Error('this node is shutting down'), { statusCode: 503 });
        request.session = await ctx.sessions.resolve(request.cookies[SESSION_COOKIE]);
      },
    },
    (socket, request) => {
      new SignalingConnection(socket, rooms, ctx.logger.child({ reqId: request.id }), { session: request.session, source: request.ip, requestId: request.id });
    },
  );

  /** The appointment when the signed-in caller hosts its consultation; the only way to its invitations and guest links. */
  async function hostedAppointment(request: FastifyRequest, appointmentId: string): Promise<{ host: string; patient: string | undefined }> {
    const ref = request.session?.account.fhirRef;
    if (!ref || request.session?.account.role !== 'clinician') throw forbidden('only the clinician hosting this consultation can do that');
    const appointment = await rooms.rights.appointment(appointmentId, { requestId: request.id, source: request.ip });
    if (!appointment) throw notFound(`Appointment/${appointmentId} not found`);
    if (JoinRights.hostOf(appointment) !== ref) throw forbidden('only the clinician hosting this consultation can do that');
    const closed = JoinRights.closedReason(appointment);
    if (closed) throw conflict(closed);
    return { host: ref, patient: JoinRights.patientOf(appointment) };
  }

  app.post(
    '/api/consult/appointments/:id/invitations',
    {
      bodyLimit: 1024,
      schema: {
        params: appointmentParams,
        body: { type: 'object', additionalProperties: false, required: ['practitionerId'], properties: { practitionerId: { type: 'string', pattern: FHIR_ID } } },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const { practitionerId } = request.body as { practitionerId: string };
      const { host, patient } = await hostedAppointment(request, id);
      const invited = `Practitioner/${practitionerId}`;
      if (invited === host) throw badRequest('the host is already in this consultation', 'practitionerId');
      const records = new Repository(ctx.store.db, ctx.audit, SYSTEM_ACTOR, { requestId: request.id, source: request.ip });
      try {
        await records.read('Practitioner', practitionerId);
      } catch {
        throw notFound(`Practitioner/${practitionerId} not found`, 'practitionerId');
      }
      await rooms.store.invite(id, invited, host);
      await rooms.recordAudit({ actor: host, action: 'consult-invite', appointmentId: id, patient, outcome: 'success', source: request.ip, requestId: request.id, detail: { invited } });
      return reply.code(201).send({ appointmentId: id, practitionerId });
    },
  );

  app.post(
    '/api/consult/appointments/:id/guest-links',
    {
      bodyLimit: 1024,
      schema: {
        params: appointmentParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['label'],
          properties: {
            // Shown to everyone in the call ("Intérprete", "Hija"): short, one line.
            label: { type: 'string', minLength: 1, maxLength: 40, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
            expiresInMinutes: { type: 'integer', minimum: 5, maximum: GUEST_LINK_MAX_MINUTES },
            // Optional: the link is also e-mailed to the guest (only where e-mail is set up), in this language.
            email: { type: 'string', minLength: 3, maxLength: 254 },
            language: { type: 'string', enum: [...MAIL_LANGUAGES] },
          },
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const body = request.body as { label: string; expiresInMinutes?: number; email?: string; language?: MailLanguage };
      const label = body.label.trim();
      if (!label) throw badRequest('label must not be blank', 'label');
      const email = body.email?.trim().toLowerCase();
      if (email !== undefined && !GUEST_EMAIL.test(email)) throw badRequest('this is not an email address', 'email');
      if (email !== undefined && !ctx.notifications) throw badRequest('e-mail is not set up on this installation: pass the link on yourself', 'email');
      const { host, patient } = await hostedAppointment(request, id);
      const link = await rooms.store.createGuestLink({ appointmentId: id, label, createdBy: host, minutes: body.expiresInMinutes ?? GUEST_LINK_DEFAULT_MINUTES });
      const url = `${ctx.config.publicUrl}/consult/guest#${link.token}`;
      let emailed: string | undefined;
      if (email !== undefined && ctx.notifications) {
        // Only the link and its expiry: neither the patient nor the reason for the consultation.
        emailed = await ctx.notifications.queue(ctx.store.db, { template: 'consult-guest-link', to: email, language: body.language ?? ctx.notifications.defaultLanguage, link: url, expiresAt: link.expires.toISOString(), ...(patient ? { patient } : {}) });
        ctx.notifications.sendSoon();
      }
      await rooms.recordAudit({ actor: host, action: 'consult-guest-link', appointmentId: id, patient, outcome: 'success', source: request.ip, requestId: request.id, detail: { link: link.id, expires: link.expires.toISOString(), ...(emailed ? { emailMessage: emailed } : {}) } });
      // In the fragment: browsers send neither it to the server nor it in a Referer.
      return reply.code(201).send({ url, expiresAt: link.expires.toISOString(), emailed: emailed !== undefined });
    },
  );

  // What a guest's page shows before joining: when the consultation is, on the clinic's clock. Nothing
  // about people. An unknown, used or expired link (or a closed consultation) all get the same answer,
  // so the route tells nothing about which tokens exist. The token rides in the body, never in a URL.
  app.post(
    '/api/consult/guest-links/preview',
    {
      config: { public: true },
      bodyLimit: 512,
      schema: { body: { type: 'object', additionalProperties: false, required: ['token'], properties: { token: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,64}$' } } } },
    },
    async (request, reply) => {
      const { token } = request.body as { token: string };
      const unusable = () => reply.code(404).send({ error: 'not-usable', message: 'this guest link cannot be used: it may have expired or been used already. Ask the clinic for a new one' });
      const link = await rooms.store.findGuestLink(token);
      if (!link || link.usedAt !== undefined || link.expires.getTime() <= Date.now()) return unusable();
      // Read as the system, so the read of the Appointment is audited with this request's id and source.
      const appointment = (await rooms.rights.appointment(link.appointmentId, { requestId: request.id, source: request.ip })) as (Awaited<ReturnType<JoinRights['appointment']>> & { start?: unknown }) | undefined;
      if (!appointment || JoinRights.closedReason(appointment)) return unusable();
      const timeZone = effectiveClinicTimeZone(await authPolicy(ctx.store.db).current(), ctx.config.clinicTimeZone);
      return reply.header('cache-control', 'no-store').send({
        ...(typeof appointment.start === 'string' ? { start: appointment.start } : {}),
        linkExpiresAt: link.expires.toISOString(),
        clinic: { timeZone },
      });
    },
  );

  app.get('/api/consult/status', async (request) => {
    const isAdmin = request.session ? request.session.account.role === 'admin' : request.actor?.ref === 'admin-token';
    if (!isAdmin) throw forbidden('consultation figures are for administrators');
    return rooms.status();
  });

  // The clinician's schedule: who waits in which of their consultations right now.
  await waitingRoomRoutes(app, ctx);
}

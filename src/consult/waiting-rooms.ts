import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { forbidden } from '../records/fhir/outcomes.js';
import { isResourceId } from '../records/search/search-request.js';
import type { AppContext } from '../server/app-context.js';
import { JoinRights } from './join-rights.js';
import type { ParticipantKind } from './signaling-protocol.js';

/** A clinician's day rarely has more consultations than this; the schedule asks in one call. */
export const MAX_WAITING_ROOM_APPOINTMENTS = 100;

/** One of the clinician's consultation rooms as the schedule shows it. */
export interface WaitingRoomView {
  appointmentId: string;
  /** Whether a room is open (somebody joined and it has not ended). */
  open: boolean;
  hostPresent: boolean;
  /** In the room's waiting room, oldest first; `e2ee` says whether their browser encrypts end to end. */
  waiting: { id: string; kind: ParticipantKind; displayName: string; e2ee: boolean }[];
  /** Participants in the call, the host included. */
  admitted: number;
}

/**
 * GET /api/consult/waiting-rooms?appointments=<id>,<id>…: who waits, right now, in the
 * consultations the signed-in clinician hosts (the schedule polls it) — or, for reception, in any
 * of the clinic's consultations (the front desk sees every appointment of the day). Appointments
 * the caller does not host are left out without a word, so the answer is no oracle. Rooms live in this
 * node's memory or, in a farm, in Redis: ConsultRooms.read finds them either way. Admitting
 * happens in the call itself. Every room reported with somebody in it is audited as a read of
 * its Appointment (it tells who is waiting for which patient).
 */
export async function waitingRoomRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  app.get(
    '/api/consult/waiting-rooms',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['appointments'],
          properties: { appointments: { type: 'string', minLength: 1, maxLength: MAX_WAITING_ROOM_APPOINTMENTS * 37, pattern: '^[A-Za-z0-9\\-.]{1,64}(,[A-Za-z0-9\\-.]{1,64})*$' } },
        },
      },
    },
    async (request) => {
      const session = request.session;
      const reception = session?.account.role === 'reception';
      // The audit names the caller as every other access does: a Practitioner, or reception's account.
      const ref = reception ? request.actor?.ref : session?.account.fhirRef;
      if (!session || !(reception || session.account.role === 'clinician') || !ref) throw forbidden('waiting rooms are shown to the clinicians who host them and to reception');
      const requested = [...new Set((request.query as { appointments: string }).appointments.split(','))];
      if (requested.length > MAX_WAITING_ROOM_APPOINTMENTS) throw forbidden(`ask for at most ${MAX_WAITING_ROOM_APPOINTMENTS} appointments at a time`);
      // Ids that cannot be stored ids name no appointment: left out like any other.
      const ids = requested.filter(isResourceId);
      const rows = ids.length
        ? await ctx.store.db
            .selectFrom('appointment' as any)
            .select(['id', 'content'])
            .where(sql<boolean>`id = any(${sql.val(ids)}::uuid[])`)
            .where('deleted', '=', false)
            .execute()
        : [];
      const hosted = rows
        .map((row: any) => ({ id: String(row.id), appointment: (typeof row.content === 'string' ? JSON.parse(row.content) : row.content) as Parameters<typeof JoinRights.hostOf>[0] }))
        .filter(({ appointment }) => reception || JoinRights.hostOf(appointment) === ref);
      const rooms: WaitingRoomView[] = [];
      for (const { id, appointment } of hosted) {
        const view = await ctx.consult.read(id, (room): WaitingRoomView => {
          if (!room || room.ended) return { appointmentId: id, open: false, hostPresent: false, waiting: [], admitted: 0 };
          const everyone = [...room.participants.values()];
          return {
            appointmentId: id,
            open: true,
            hostPresent: everyone.some((p) => p.host),
            waiting: room.waiting().map((p) => ({ id: p.id, kind: p.kind, displayName: p.displayName, e2ee: p.e2ee })),
            admitted: room.admitted().length,
          };
        });
        rooms.push(view);
        if (view.open) {
          await ctx.audit.record({
            actor: ref,
            action: 'read',
            resourceType: 'Appointment',
            resourceId: id,
            ...(JoinRights.patientOf(appointment) ? { patient: JoinRights.patientOf(appointment)! } : {}),
            outcome: 'success',
            source: request.ip,
            requestId: request.id,
            detail: { waitingRoom: true, waiting: view.waiting.length },
          });
        }
      }
      rooms.sort((a, b) => requested.indexOf(a.appointmentId) - requested.indexOf(b.appointmentId));
      return { rooms };
    },
  );
}

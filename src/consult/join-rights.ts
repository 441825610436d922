import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import { SYSTEM_ACTOR, type RequestOrigin } from '../auth/actor.js';
import type { ActiveSession } from '../auth/sessions/session-store.js';
import type { Database } from '../db/schema.js';
import { FhirError } from '../records/fhir/outcomes.js';
import { Repository } from '../records/repository.js';
import { consultationMode } from '../records/telesalud-codes.js';
import { hasTelehealthConsent } from '../privacy/telehealth-consent.js';
import type { ConsultStore } from './consult-store.js';
import type { ParticipantKind, SignalingErrorCode } from './signaling-protocol.js';

/** Appointments in these states have no consultation to join. */
const CLOSED_STATUSES = new Set(['cancelled', 'noshow', 'entered-in-error']);

/** Who may join, as what. `principal` is the stable identity behind the join (for audit and resume), never a name. */
export interface JoinRight {
  appointmentId: string;
  kind: ParticipantKind;
  host: boolean;
  /** `Practitioner/…`, `Patient/…`, or `guest-link/<id>`. */
  principal: string;
  /** `Patient/…` of the appointment, for the audit trail. */
  patient: string | undefined;
  displayName: string;
  guestLinkId?: string;
}

export type JoinDecision = { ok: true; right: JoinRight } | { ok: false; code: SignalingErrorCode; message: string; reason: string };

interface AppointmentLike {
  status?: string;
  appointmentType?: { coding?: { system?: string; code?: string }[] };
  participant?: { actor?: { reference?: string } }[];
}

const NO_RIGHT = 'you have no right to join this consultation';
const NO_CONSENT = 'please read the privacy notice and agree to video consultations first (the consultation page asks before the device check)';
const BAD_GUEST_LINK = 'this guest link is not valid: it may have been used already or have expired; ask the clinician for a new one';

const refuse = (code: SignalingErrorCode, message: string, reason: string): JoinDecision => ({ ok: false, code, message, reason });

/**
 * The one place that decides who may enter a consultation and who hosts it: the appointment's
 * clinician (host) and patient, a clinician the host invited, and the holder of a guest link.
 * Appointments are read with the system's repository (the joiner may be a guest with no record
 * access at all); the read is audited like any other.
 */
export class JoinRights {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditLog,
    private readonly store: ConsultStore,
  ) {}

  /** The appointment if it exists; undefined for unknown, deleted or malformed ids (never an oracle: callers answer alike). */
  async appointment(appointmentId: string, origin: RequestOrigin): Promise<AppointmentLike | undefined> {
    const records = new Repository(this.db, this.audit, SYSTEM_ACTOR, origin);
    try {
      return (await records.read('Appointment', appointmentId)) as AppointmentLike;
    } catch (err) {
      if (err instanceof FhirError && (err.status === 404 || err.status === 410)) return undefined;
      throw err;
    }
  }

  /** Why an appointment has no consultation, or undefined when it has one. */
  static closedReason(appointment: AppointmentLike): string | undefined {
    if (consultationMode(appointment) !== 'telehealth') return 'this appointment is not a video consultation';
    if (CLOSED_STATUSES.has(appointment.status ?? '')) return `this appointment is ${appointment.status === 'noshow' ? 'marked as missed' : 'cancelled'}`;
    return undefined;
  }

  /** The appointment's clinician: its first Practitioner participant. */
  static hostOf(appointment: AppointmentLike): string | undefined {
    return appointment.participant?.map((p) => p.actor?.reference).find((ref) => ref?.startsWith('Practitioner/'));
  }

  static patientOf(appointment: AppointmentLike): string | undefined {
    return appointment.participant?.map((p) => p.actor?.reference).find((ref) => ref?.startsWith('Patient/'));
  }

  async forAccount(session: ActiveSession, appointmentId: string, origin: RequestOrigin, requestedName: string | undefined): Promise<JoinDecision> {
    const ref = session.account.fhirRef;
    if (!ref) return refuse('not-allowed', NO_RIGHT, 'account-without-record');
    const appointment = await this.appointment(appointmentId, origin);
    if (!appointment) return refuse('not-allowed', NO_RIGHT, 'unknown-appointment');
    const listed = appointment.participant?.some((p) => p.actor?.reference === ref) ?? false;
    let kind: ParticipantKind;
    if (ref.startsWith('Patient/') && session.account.role === 'patient' && listed) kind = 'patient';
    else if (ref.startsWith('Practitioner/') && session.account.role === 'clinician' && (listed || (await this.store.isInvited(appointmentId, ref)))) kind = 'clinician';
    else return refuse('not-allowed', NO_RIGHT, 'not-a-participant');
    // Only now that the joiner belongs to the appointment does it learn why it can't be joined.
    const closed = JoinRights.closedReason(appointment);
    if (closed) return refuse('not-allowed', closed, 'appointment-closed');
    // The patient agreed to telehealth under the current privacy notice — whatever the browser showed.
    if (kind === 'patient' && !(await hasTelehealthConsent(this.db, ref))) return refuse('not-allowed', NO_CONSENT, 'no-telehealth-consent');
    const host = kind === 'clinician' && JoinRights.hostOf(appointment) === ref;
    const account = await this.db.selectFrom('account').select('display_name').where('id', '=', session.account.id).executeTakeFirst();
    const displayName = (account?.display_name ?? requestedName ?? (kind === 'patient' ? 'Paciente' : 'Profesional')).slice(0, 120);
    return { ok: true, right: { appointmentId, kind, host, principal: ref, patient: JoinRights.patientOf(appointment), displayName } };
  }

  /**
   * A guest link names its appointment. `resuming` accepts a link already used — by this very
   * participant, which the caller checks against the room — so a dropped guest can come back.
   */
  async forGuest(token: string, origin: RequestOrigin, resuming: boolean, now = new Date()): Promise<JoinDecision> {
    const link = await this.store.findGuestLink(token);
    if (!link) return refuse('not-allowed', BAD_GUEST_LINK, 'unknown-guest-link');
    if (!resuming && (link.usedAt !== undefined || link.expires.getTime() <= now.getTime())) return refuse('not-allowed', BAD_GUEST_LINK, link.usedAt ? 'used-guest-link' : 'expired-guest-link');
    if (resuming && link.usedAt === undefined) return refuse('not-allowed', BAD_GUEST_LINK, 'resume-with-unused-guest-link');
    const appointment = await this.appointment(link.appointmentId, origin);
    if (!appointment) return refuse('not-allowed', BAD_GUEST_LINK, 'unknown-appointment');
    const closed = JoinRights.closedReason(appointment);
    if (closed) return refuse('not-allowed', closed, 'appointment-closed');
    return {
      ok: true,
      right: { appointmentId: link.appointmentId, kind: 'guest', host: false, principal: `guest-link/${link.id}`, patient: JoinRights.patientOf(appointment), displayName: link.label.slice(0, 120), guestLinkId: link.id },
    };
  }
}

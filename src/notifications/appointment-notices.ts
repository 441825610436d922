import { consultationMode } from '../records/telesalud-codes.js';
import type { FhirResource } from '../records/resource-types.js';
import type { AppointmentChange } from './mail-templates.js';

interface AppointmentLike {
  resourceType: 'Appointment';
  status?: string;
  start?: string;
  end?: string;
  appointmentType?: { coding?: { system?: string; code?: string }[] };
  participant?: { actor?: { reference?: string } }[];
}

/** What the patient should be told about a write of an Appointment, if anything. */
export interface AppointmentNotice {
  change: AppointmentChange;
  patientRef: string;
  start: string;
  end?: string;
  mode?: 'telehealth' | 'in-person';
  previousStart?: string;
}

/**
 * The patient hears of an appointment when it becomes booked, when a booked one moves, and when a
 * booked one is cancelled — only for appointments still to come (an import of past visits, or the
 * closing of one that happened, says nothing).
 */
export function appointmentNotice(written: FhirResource, previous: FhirResource | undefined, now = new Date()): AppointmentNotice | undefined {
  if (written.resourceType !== 'Appointment') return undefined;
  const next = written as AppointmentLike;
  const before = previous as AppointmentLike | undefined;
  const patientRef = next.participant?.map((p) => p.actor?.reference).find((r): r is string => typeof r === 'string' && r.startsWith('Patient/'));
  if (!patientRef || !next.start) return undefined;
  const wasBooked = before?.status === 'booked';
  let change: AppointmentChange | undefined;
  if (next.status === 'booked' && !wasBooked) change = 'booked';
  else if (next.status === 'booked' && wasBooked && before?.start && Date.parse(before.start) !== Date.parse(next.start)) change = 'rescheduled';
  else if (next.status === 'cancelled' && wasBooked) change = 'cancelled';
  if (!change) return undefined;
  const start = change === 'cancelled' && before?.start ? before.start : next.start;
  if (!(Date.parse(start) > now.getTime())) return undefined;
  const mode = consultationMode(next);
  return {
    change,
    patientRef,
    start,
    ...(next.end ? { end: next.end } : {}),
    ...(mode ? { mode } : {}),
    ...(change === 'rescheduled' && before?.start ? { previousStart: before.start } : {}),
  };
}

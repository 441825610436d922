import { fhirSearch, humanName, type Reference, type Resource } from './portal-api.js';

export const CONSULTATION_MODE_SYSTEM = 'https://telesalud.org/fhir/CodeSystem/consultation-mode';

export interface Appointment extends Resource {
  status: string;
  start?: string;
  end?: string;
  description?: string;
  slot?: Reference[];
  appointmentType?: { coding?: { system?: string; code?: string }[] };
  participant?: { actor?: Reference; status?: string }[];
}
export interface Slot extends Resource {
  start: string;
  end: string;
  status: string;
  schedule: Reference;
}
export interface Schedule extends Resource {
  actor?: Reference[];
  comment?: string;
}

/** Appointment states that still hold a time the patient will attend. */
const ACTIVE = new Set(['proposed', 'pending', 'booked', 'arrived', 'checked-in', 'waitlist']);
export const CANCELLABLE = new Set(['proposed', 'pending', 'booked']);

export const isTelehealth = (a: Appointment) => a.appointmentType?.coding?.some((c) => c.system === CONSULTATION_MODE_SYSTEM && c.code === 'telehealth') ?? false;
export const practitionerOf = (a: Appointment) => a.participant?.find((p) => p.actor?.reference?.startsWith('Practitioner/'))?.actor?.reference;

export interface MyAppointments {
  upcoming: Appointment[];
  past: Appointment[];
  names: Map<string, string>;
}

/** The patient's appointments with their practitioners' names; upcoming soonest first, past newest first. */
export async function loadAppointments(patientRef: string, now = new Date()): Promise<MyAppointments> {
  const { matches, included } = await fhirSearch<Appointment>(`Appointment?patient=${encodeURIComponent(patientRef)}&_include=Appointment:practitioner&_sort=date&_count=200`);
  const names = new Map<string, string>();
  for (const [ref, r] of included) if (r.resourceType === 'Practitioner') names.set(ref, humanName(r.name));
  const upcoming: Appointment[] = [];
  const past: Appointment[] = [];
  for (const a of matches) {
    const ends = Date.parse(a.end ?? a.start ?? '');
    if (ACTIVE.has(a.status) && ends >= now.getTime()) upcoming.push(a);
    else past.push(a);
  }
  past.reverse();
  return { upcoming, past, names };
}

export interface Offer {
  practitioner: string;
  name: string;
  scheduleIds: string[];
}

/** Practitioners offering telehealth schedules, by name. */
export async function loadOffers(): Promise<Offer[]> {
  const { matches, included } = await fhirSearch<Schedule>('Schedule?active=true&_include=Schedule:actor:Practitioner&_count=200');
  const byPractitioner = new Map<string, Offer>();
  for (const schedule of matches) {
    for (const actor of schedule.actor ?? []) {
      const ref = actor.reference;
      if (!ref?.startsWith('Practitioner/')) continue;
      const offer = byPractitioner.get(ref) ?? { practitioner: ref, name: humanName(included.get(ref)?.name) || actor.display || '', scheduleIds: [] };
      offer.scheduleIds.push(schedule.id);
      byPractitioner.set(ref, offer);
    }
  }
  return [...byPractitioner.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Free slots of these schedules from now to `days` ahead, soonest first. */
export async function loadFreeSlots(scheduleIds: string[], days = 21, now = new Date()): Promise<Slot[]> {
  if (scheduleIds.length === 0) return [];
  const until = new Date(now.getTime() + days * 86_400_000);
  // Whole days in the query, the exact "from now on" here: the node's shield reads some clock
  // times in a query ("…T21:00:…") as an address and refuses the request.
  const { matches } = await fhirSearch<Slot>(
    `Slot?schedule=${scheduleIds.map((id) => `Schedule/${id}`).join(',')}&status=free&start=ge${now.toISOString().slice(0, 10)}&start=le${until.toISOString().slice(0, 10)}&_sort=start&_count=200`,
  );
  return matches.filter((slot) => Date.parse(slot.start) >= now.getTime());
}

/** What a patient sends to book a telehealth appointment in a slot (patient-writes.ts says what is allowed). */
export function bookingFor(slot: Slot, patientRef: string, practitionerRef: string, reason: string): Record<string, unknown> {
  return {
    resourceType: 'Appointment',
    status: 'booked',
    appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: 'telehealth' }] },
    ...(reason.trim() ? { description: reason.trim().slice(0, 500) } : {}),
    start: slot.start,
    end: slot.end,
    slot: [{ reference: `Slot/${slot.id}` }],
    participant: [
      { actor: { reference: patientRef }, status: 'accepted' },
      { actor: { reference: practitionerRef }, status: 'needs-action' },
    ],
  };
}

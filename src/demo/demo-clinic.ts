import type { Repository } from '../records/repository.js';
import type { FhirResource } from '../records/resource-types.js';
import { CONSULTATION_MODE_SYSTEM, type ConsultationMode } from '../records/telesalud-codes.js';
import { pick, prng, syntheticPatient } from './synthetic-people.js';

export interface DemoClinicSummary {
  organizationId: string;
  practitionerIds: string[];
  patientIds: string[];
  appointmentIds: string[];
  day: string;
}

const PRACTITIONERS = [
  { given: ['Lucía'], family: 'Fernández Ortega', prefix: ['Dra.'], gender: 'female', specialty: 'Medicina familiar', language: 'es' },
  { given: ['James'], family: "O'Connor", prefix: ['Dr.'], gender: 'male', specialty: 'Internal medicine', language: 'en' },
  { given: ['María', 'José'], family: 'Núñez Ibáñez', prefix: ['Dra.'], gender: 'female', specialty: 'Pediatría', language: 'es' },
  { given: ['Samuel'], family: 'Okafor', prefix: ['Dr.'], gender: 'male', specialty: 'Psychiatry', language: 'en' },
];

const VISIT_REASONS = ['Control de hipertensión', 'Follow-up after discharge', 'Revisión de resultados de analítica', 'Persistent cough', 'Renovación de receta', 'Anxiety follow-up', 'Fiebre en niño de 4 años', 'Back pain'];

const PROBLEMS = [
  { system: 'http://snomed.info/sct', code: '38341003', display: 'Hypertensive disorder' },
  { system: 'http://snomed.info/sct', code: '44054006', display: 'Diabetes mellitus type 2' },
  { system: 'http://snomed.info/sct', code: '195967001', display: 'Asthma' },
  { system: 'http://snomed.info/sct', code: '35489007', display: 'Depressive disorder' },
];
const ALLERGIES = [
  { system: 'http://snomed.info/sct', code: '91936005', display: 'Allergy to penicillin' },
  { system: 'http://snomed.info/sct', code: '91935009', display: 'Allergy to peanuts' },
];
const MEDICATIONS = [
  { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '314076', display: 'Lisinopril 10 MG Oral Tablet' },
  { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '860975', display: 'Metformin 500 MG Oral Tablet' },
  { system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '745679', display: 'Salbutamol 100 MCG/ACTUAT inhaler' },
];

const SLOT_MINUTES = 20;

/**
 * A working clinic in one call: an organisation, four practitioners with a day of 20-minute
 * slots, patients with problems, allergies, medications and vitals, and that day's telehealth
 * appointments. Deterministic for a given seed.
 */
export async function seedDemoClinic(repo: Repository, options: { patients: number; day?: string; seed?: number }): Promise<DemoClinicSummary> {
  const random = prng(options.seed ?? 2026);
  const day = options.day ?? new Date().toISOString().slice(0, 10);
  const at = (minutesFromEight: number) => new Date(Date.parse(`${day}T08:00:00Z`) + minutesFromEight * 60_000).toISOString();

  const organization = await repo.create({
    resourceType: 'Organization',
    active: true,
    name: 'Hospital Universitario San Rafael',
    alias: ['HUSR telesalud'],
    telecom: [{ system: 'phone', value: '+34 910 000 000' }],
  });
  await repo.create({ resourceType: 'Location', status: 'active', name: 'Consulta virtual', mode: 'kind', managingOrganization: { reference: `Organization/${organization.id}` } });

  const practitioners: FhirResource[] = [];
  for (const [i, p] of PRACTITIONERS.entries()) {
    practitioners.push(
      await repo.create({
        resourceType: 'Practitioner',
        active: true,
        identifier: [{ system: 'https://telesalud.org/fhir/sid/licence', value: `COL-${28000 + i}` }],
        name: [{ family: p.family, given: p.given, prefix: p.prefix }],
        gender: p.gender,
        telecom: [{ system: 'email', value: `consulta${i + 1}@san-rafael.example.org` }],
        qualification: [{ code: { text: p.specialty } }],
        communication: [{ coding: [{ system: 'urn:ietf:bcp:47', code: p.language }] }],
      }),
    );
  }

  const patients: FhirResource[] = [];
  for (let i = 0; i < options.patients; i++) {
    const patient = await repo.create({ ...syntheticPatient(i, random), managingOrganization: { reference: `Organization/${organization.id}` } });
    patients.push(patient);
    await seedHistory(repo, patient, practitioners[i % practitioners.length]!, random, day);
  }

  const appointmentIds: string[] = [];
  let nextPatient = 0;
  for (const [index, practitioner] of practitioners.entries()) {
    const schedule = await repo.create({
      resourceType: 'Schedule',
      active: true,
      actor: [{ reference: `Practitioner/${practitioner.id}` }],
      planningHorizon: { start: at(0), end: at(9 * 60) },
      comment: 'Consulta de telesalud',
    });
    for (let slot = 0; slot < (8 * 60) / SLOT_MINUTES; slot++) {
      const start = at(60 + slot * SLOT_MINUTES);
      const end = at(60 + (slot + 1) * SLOT_MINUTES);
      // Each practitioner books different times of day, so a patient seen by two of them never
      // has two appointments at once, however few patients the demo has.
      const booked = slot % 4 === index % 4 && patients.length > 0;
      const created = await repo.create({ resourceType: 'Slot', schedule: { reference: `Schedule/${schedule.id}` }, status: booked ? 'busy' : 'free', start, end });
      if (!booked) continue;
      const patient = patients[nextPatient++ % patients.length]!;
      const mode: ConsultationMode = Math.floor(slot / 4) % 3 === 2 ? 'in-person' : 'telehealth';
      const appointment = await repo.create({
        resourceType: 'Appointment',
        status: 'booked',
        appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: mode }] },
        description: pick(random, VISIT_REASONS),
        start,
        end,
        slot: [{ reference: `Slot/${created.id}` }],
        participant: [
          { actor: { reference: `Patient/${patient.id}` }, status: 'accepted', required: 'required' },
          { actor: { reference: `Practitioner/${practitioner.id}` }, status: 'accepted', required: 'required' },
        ],
      });
      appointmentIds.push(appointment.id!);
    }
  }

  return {
    organizationId: organization.id!,
    practitionerIds: practitioners.map((p) => p.id!),
    patientIds: patients.map((p) => p.id!),
    appointmentIds,
    day,
  };
}

/** A past visit with vitals, a signed SOAP note, a problem and, for some, an allergy and a medication. */
async function seedHistory(repo: Repository, patient: FhirResource, practitioner: FhirResource, random: () => number, day: string): Promise<void> {
  const subject = { reference: `Patient/${patient.id}` };
  const visit = new Date(Date.parse(`${day}T09:00:00Z`) - (30 + Math.floor(random() * 300)) * 86_400_000).toISOString();
  const encounter = await repo.create({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR', display: 'virtual' },
    subject,
    participant: [{ individual: { reference: `Practitioner/${practitioner.id}` } }],
    period: { start: visit, end: new Date(Date.parse(visit) + 20 * 60_000).toISOString() },
  });
  const vitals = [
    { code: '8867-4', display: 'Heart rate', value: 60 + Math.round(random() * 40), unit: '/min' },
    { code: '8310-5', display: 'Body temperature', value: Math.round((36.2 + random() * 1.5) * 10) / 10, unit: 'Cel' },
    { code: '29463-7', display: 'Body weight', value: Math.round((50 + random() * 50) * 10) / 10, unit: 'kg' },
  ];
  for (const v of vitals) {
    await repo.create({
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: v.code, display: v.display }] },
      subject,
      encounter: { reference: `Encounter/${encounter.id}` },
      effectiveDateTime: visit,
      valueQuantity: { value: v.value, unit: v.unit, system: 'http://unitsofmeasure.org', code: v.unit },
    });
  }
  const problem = pick(random, PROBLEMS);
  await repo.create({
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
    code: { coding: [problem], text: problem.display },
    subject,
    encounter: { reference: `Encounter/${encounter.id}` },
    recordedDate: visit,
  });
  if (random() < 0.4) {
    const allergy = pick(random, ALLERGIES);
    await repo.create({
      resourceType: 'AllergyIntolerance',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', code: 'confirmed' }] },
      criticality: 'high',
      code: { coding: [allergy], text: allergy.display },
      patient: subject,
      recordedDate: visit,
    });
  }
  if (random() < 0.6) {
    const medication = pick(random, MEDICATIONS);
    await repo.create({
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      medicationCodeableConcept: { coding: [medication], text: medication.display },
      subject,
      encounter: { reference: `Encounter/${encounter.id}` },
      authoredOn: visit,
      requester: { reference: `Practitioner/${practitioner.id}` },
      dosageInstruction: [{ text: 'Una vez al día / once daily' }],
    });
  }
  await repo.create({
    resourceType: 'Composition',
    status: 'final',
    type: { coding: [{ system: 'http://loinc.org', code: '11506-3', display: 'Progress note' }] },
    subject,
    encounter: { reference: `Encounter/${encounter.id}` },
    date: visit,
    author: [{ reference: `Practitioner/${practitioner.id}` }],
    title: 'Nota de evolución (SOAP)',
    attester: [{ mode: 'legal', time: visit, party: { reference: `Practitioner/${practitioner.id}` } }],
    section: soapSections(problem.display),
  });
}

export function soapSections(problem: string) {
  const section = (code: string, title: string, text: string) => ({
    title,
    code: { coding: [{ system: 'http://loinc.org', code }] },
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${text}</div>` },
  });
  return [
    section('61150-9', 'Subjetivo / Subjective', 'Refiere encontrarse mejor; no dolor torácico.'),
    section('61149-1', 'Objetivo / Objective', 'Constantes dentro de la normalidad.'),
    section('51848-0', 'Evaluación / Assessment', `${problem}, estable.`),
    section('18776-5', 'Plan', 'Continuar tratamiento; control en 3 meses.'),
  ];
}

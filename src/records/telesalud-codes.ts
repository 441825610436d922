/** Code systems telesalud defines where FHIR R4 leaves the choice to the implementer. */
export const TELESALUD_CODE_SYSTEM_BASE = 'https://telesalud.org/fhir/CodeSystem';

/** Appointment.appointmentType coding that says how the consultation happens. */
export const CONSULTATION_MODE_SYSTEM = `${TELESALUD_CODE_SYSTEM_BASE}/consultation-mode`;
export const CONSULTATION_MODES = ['telehealth', 'in-person'] as const;
export type ConsultationMode = (typeof CONSULTATION_MODES)[number];

export const DOCUMENT_CATEGORY_SYSTEM = `${TELESALUD_CODE_SYSTEM_BASE}/document-category`;

/** Local identifier systems of the clinic's record. */
export const MRN_SYSTEM = 'https://telesalud.org/fhir/sid/mrn';
export const NATIONAL_ID_SYSTEM = 'https://telesalud.org/fhir/sid/national-id';

export function consultationMode(appointment: { appointmentType?: { coding?: { system?: string; code?: string }[] } }): ConsultationMode | undefined {
  const code = appointment.appointmentType?.coding?.find((c) => c.system === CONSULTATION_MODE_SYSTEM)?.code;
  return (CONSULTATION_MODES as readonly string[]).includes(code ?? '') ? (code as ConsultationMode) : undefined;
}

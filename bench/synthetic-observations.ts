/**
 * Vital-sign Observations for the benchmark dataset: valid under the R4 vital signs profile
 * (LOINC code, UCUM quantity, vital-signs category) and plausible, spread over two years.
 */
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const CATEGORY = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }] }];

interface Sign {
  loinc: string;
  display: string;
  unit: string;
  code: string;
  min: number;
  max: number;
  decimals: number;
}

const SIGNS: readonly Sign[] = [
  { loinc: '8867-4', display: 'Heart rate', unit: '/min', code: '/min', min: 48, max: 120, decimals: 0 },
  { loinc: '9279-1', display: 'Respiratory rate', unit: '/min', code: '/min', min: 10, max: 26, decimals: 0 },
  { loinc: '8310-5', display: 'Body temperature', unit: 'Cel', code: 'Cel', min: 35.8, max: 39.2, decimals: 1 },
  { loinc: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry', unit: '%', code: '%', min: 88, max: 100, decimals: 0 },
  { loinc: '29463-7', display: 'Body weight', unit: 'kg', code: 'kg', min: 45, max: 120, decimals: 1 },
  { loinc: '8302-2', display: 'Body height', unit: 'cm', code: 'cm', min: 150, max: 195, decimals: 0 },
];

const TWO_YEARS_MS = 2 * 365 * 24 * 3600_000;

const round = (value: number, decimals: number): number => Number(value.toFixed(decimals));

/** The `n`-th observation of a patient: a blood pressure panel one time in four, a single vital sign otherwise. */
export function syntheticObservation(patientId: string, n: number, random: () => number, pick: <T>(random: () => number, items: readonly T[]) => T, now: number) {
  const effectiveDateTime = new Date(now - Math.floor(random() * TWO_YEARS_MS)).toISOString();
  const base = {
    resourceType: 'Observation' as const,
    status: 'final' as const,
    category: CATEGORY,
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime,
  };
  if (n % 4 === 3) {
    const systolic = Math.round(100 + random() * 60);
    const diastolic = Math.round(55 + random() * (systolic - 70));
    const quantity = (value: number) => ({ value, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' });
    return {
      ...base,
      code: { coding: [{ system: LOINC, code: '85354-9', display: 'Blood pressure panel with all children optional' }], text: 'Blood pressure' },
      component: [
        { code: { coding: [{ system: LOINC, code: '8480-6', display: 'Systolic blood pressure' }] }, valueQuantity: quantity(systolic) },
        { code: { coding: [{ system: LOINC, code: '8462-4', display: 'Diastolic blood pressure' }] }, valueQuantity: quantity(diastolic) },
      ],
    };
  }
  const sign = pick(random, SIGNS);
  return {
    ...base,
    code: { coding: [{ system: LOINC, code: sign.loinc, display: sign.display }], text: sign.display },
    valueQuantity: { value: round(sign.min + random() * (sign.max - sign.min), sign.decimals), unit: sign.unit, system: UCUM, code: sign.code },
  };
}

import type { CodeableConcept, Observation, ObservationComponent, Quantity } from '@medplum/fhirtypes';
import type { ValidationIssue } from './validation.js';

/**
 * Plausibility of the core vital signs of the FHIR R4 vital signs profile, recognised by
 * their LOINC code on the Observation or on one of its components: the value must be a
 * UCUM quantity in a unit the profile allows and must be physically possible. The limits
 * are wide on purpose (neonates, ICU patients and record holders pass); they exist to stop
 * slips such as a heart rate of 900/min or a weight in grams sent as kilograms.
 */

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const BLOOD_PRESSURE_PANEL = '85354-9';
const SYSTOLIC = '8480-6';
const DIASTOLIC = '8462-4';

type Range = readonly [min: number, max: number];

interface VitalSign {
  name: string;
  /** UCUM code → plausible range in that unit. */
  units: ReadonlyMap<string, Range>;
}

const vitalSign = (name: string, units: Record<string, Range>): VitalSign => ({ name, units: new Map(Object.entries(units)) });
const scaled = ([min, max]: Range, factor: number): Range => [min * factor, max * factor];
const fahrenheit = ([min, max]: Range): Range => [min * 1.8 + 32, max * 1.8 + 32];

// 0 is asystole; fastest human ventricular rate reported is 600/min (Chhabra et al., Indian Pacing Electrophysiol J 2012).
const HEART_RATE: Range = [0, 600];
// 0 is apnoea; neonatal tachypnoea rarely passes 150/min (WHO calls 60/min fast breathing in infants).
const RESPIRATORY_RATE: Range = [0, 200];
// Survived extremes: 11.8 °C accidental hypothermia (Poland, 2014) and 46.5 °C heat stroke (Willie Jones, 1980).
const TEMPERATURE_CEL: Range = [10, 47];
// Saturation is a percentage of haemoglobin.
const SATURATION: Range = [0, 100];
// Lightest surviving newborn 212 g (Singapore, 2021); heaviest recorded human about 635 kg (Minnoch).
const WEIGHT_KG: Range = [0.1, 700];
// About 20 cm at 22 weeks' gestation; tallest recorded human 272 cm (Wadlow).
const HEIGHT_CM: Range = [15, 280];
// 212 g at 24 cm is a BMI of 3.7; 635 kg at 185 cm is 186.
const BMI: Range = [2, 250];
// About 19 cm at 22 weeks' gestation; extreme untreated hydrocephalus has reached about 94 cm.
const HEAD_CIRCUMFERENCE_CM: Range = [10, 100];
// Intra-arterial peaks of 480/350 mmHg in heavy leg press (MacDougall et al., J Appl Physiol 1985); floor of profound shock.
const SYSTOLIC_MMHG: Range = [20, 500];
// Korotkoff sounds can persist to 0 in severe aortic regurgitation.
const DIASTOLIC_MMHG: Range = [0, 400];

const OXYGEN_SATURATION = vitalSign('Oxygen saturation', { '%': SATURATION });

/** LOINC code → vital sign (the R4 vital signs profile's codes and units). */
const VITAL_SIGNS: ReadonlyMap<string, VitalSign> = new Map([
  ['8867-4', vitalSign('Heart rate', { '/min': HEART_RATE })],
  ['9279-1', vitalSign('Respiratory rate', { '/min': RESPIRATORY_RATE })],
  ['8310-5', vitalSign('Body temperature', { Cel: TEMPERATURE_CEL, '[degF]': fahrenheit(TEMPERATURE_CEL) })],
  ['59408-5', OXYGEN_SATURATION],
  ['2708-6', OXYGEN_SATURATION],
  ['29463-7', vitalSign('Body weight', { kg: WEIGHT_KG, g: scaled(WEIGHT_KG, 1000), '[lb_av]': scaled(WEIGHT_KG, 1 / 0.45359237) })],
  ['8302-2', vitalSign('Body height', { cm: HEIGHT_CM, m: scaled(HEIGHT_CM, 0.01), '[in_i]': scaled(HEIGHT_CM, 1 / 2.54) })],
  ['39156-5', vitalSign('Body mass index', { 'kg/m2': BMI })],
  ['9843-4', vitalSign('Head circumference', { cm: HEAD_CIRCUMFERENCE_CM, '[in_i]': scaled(HEAD_CIRCUMFERENCE_CM, 1 / 2.54) })],
  [SYSTOLIC, vitalSign('Systolic blood pressure', { 'mm[Hg]': SYSTOLIC_MMHG })],
  [DIASTOLIC, vitalSign('Diastolic blood pressure', { 'mm[Hg]': DIASTOLIC_MMHG })],
]);

/**
 * Problems with the vital signs an Observation records; empty for other observations.
 * Tolerates malformed input: structural problems are the structural validator's to report.
 */
export function checkVitalSigns(observation: Observation): ValidationIssue[] {
  if (observation.status === 'entered-in-error') return [];
  const issues: ValidationIssue[] = [];
  for (const sign of vitalSignsOf(observation.code)) checkMeasurement(observation, 'Observation', sign, issues);
  const components = asArray(observation.component);
  components.forEach((component, i) => {
    if (component) for (const sign of vitalSignsOf(component.code)) checkMeasurement(component, `Observation.component[${i}]`, sign, issues);
  });
  if (loincCodes(observation.code).includes(BLOOD_PRESSURE_PANEL)) checkBloodPressurePanel(observation, components, issues);
  return issues;
}

function checkMeasurement(measured: Observation | ObservationComponent, path: string, sign: VitalSign, issues: ValidationIssue[]): void {
  const quantity: Quantity | undefined = measured.valueQuantity;
  if (quantity === undefined || quantity === null) {
    if (!measured.dataAbsentReason) issues.push({ expression: `${path}.valueQuantity`, message: `${sign.name} needs a valueQuantity, or a dataAbsentReason saying why there is none` });
    return;
  }
  if (typeof quantity !== 'object') return; // the structural validator reports the wrong type
  if (quantity.system !== UCUM) issues.push({ expression: `${path}.valueQuantity.system`, message: `${sign.name} must be coded in UCUM (system ${UCUM})` });
  const range = typeof quantity.code === 'string' ? sign.units.get(quantity.code) : undefined;
  if (!range) {
    issues.push({ expression: `${path}.valueQuantity.code`, message: `${sign.name} must have a UCUM unit code among: ${[...sign.units.keys()].join(', ')}` });
    return;
  }
  const value = quantity.value;
  if (typeof value !== 'number') {
    issues.push({ expression: `${path}.valueQuantity.value`, message: `${sign.name} needs a numeric value` });
  } else if (value < range[0] || value > range[1]) {
    const unit = quantity.code;
    issues.push({ expression: `${path}.valueQuantity.value`, message: `${sign.name} of ${value} ${unit} is impossible: the plausible range is ${round(range[0])}–${round(range[1])} ${unit}` });
  }
}

function checkBloodPressurePanel(panel: Observation, components: (ObservationComponent | undefined)[], issues: ValidationIssue[]): void {
  if (panel.dataAbsentReason && components.length === 0) return;
  const systolic = components.findIndex((c) => loincCodes(c?.code).includes(SYSTOLIC));
  const diastolic = components.findIndex((c) => loincCodes(c?.code).includes(DIASTOLIC));
  if (systolic < 0) issues.push({ expression: 'Observation.component', message: `A blood pressure panel needs a systolic component (LOINC ${SYSTOLIC})` });
  if (diastolic < 0) issues.push({ expression: 'Observation.component', message: `A blood pressure panel needs a diastolic component (LOINC ${DIASTOLIC})` });
  const systolicQuantity = components[systolic]?.valueQuantity;
  const diastolicQuantity = components[diastolic]?.valueQuantity;
  const systolicValue = systolicQuantity?.value;
  const diastolicValue = diastolicQuantity?.value;
  const sameUnit = systolicQuantity?.code === diastolicQuantity?.code; // else the unit issue is the one to report
  if (sameUnit && typeof systolicValue === 'number' && typeof diastolicValue === 'number' && diastolicValue >= systolicValue) {
    issues.push({
      expression: `Observation.component[${diastolic}].valueQuantity.value`,
      message: `Diastolic pressure (${diastolicValue}) must be lower than systolic pressure (${systolicValue})`,
    });
  }
}

function vitalSignsOf(code: CodeableConcept | undefined): Set<VitalSign> {
  // A Set: 59408-5 and 2708-6 often code the same saturation together.
  return new Set(loincCodes(code).flatMap((loinc) => VITAL_SIGNS.get(loinc) ?? []));
}

function loincCodes(code: CodeableConcept | undefined): string[] {
  return asArray(code?.coding).flatMap((coding) => (coding?.system === LOINC && typeof coding.code === 'string' ? [coding.code] : []));
}

// Input has not been shape-checked yet when this runs; a non-array counts as empty.
function asArray<T>(value: T[] | undefined): (T | undefined)[] {
  return Array.isArray(value) ? value : [];
}

const round = (n: number): number => Number(n.toPrecision(4));

import type { Observation, ObservationComponent, Quantity } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { ResourceValidationError, validateResource } from './validation.js';
import { checkVitalSigns } from './vital-signs.js';

const UCUM = 'http://unitsofmeasure.org';
const loinc = (code: string, text?: string) => ({ coding: [{ system: 'http://loinc.org', code }], ...(text ? { text } : {}) });
const quantity = (value: number, code: string): Quantity => ({ value, unit: code, system: UCUM, code });

function vital(code: string, valueQuantity?: Quantity): Observation {
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: loinc(code),
    subject: { reference: 'Patient/5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d' },
    effectiveDateTime: '2025-03-03T09:05:00-05:00',
    ...(valueQuantity ? { valueQuantity } : {}),
  };
}

const bpComponent = (code: string, value: number, unit = 'mm[Hg]'): ObservationComponent => ({ code: loinc(code), valueQuantity: quantity(value, unit) });

function bloodPressure(systolic: number, diastolic: number): Observation {
  const panel = vital('85354-9');
  panel.code.text = 'Presión arterial';
  panel.component = [bpComponent('8480-6', systolic), bpComponent('8462-4', diastolic)];
  return panel;
}

const expressionsOf = (observation: Observation) => checkVitalSigns(observation).map((issue) => issue.expression);

describe('checkVitalSigns', () => {
  it.each([
    ['heart rate', '8867-4', 72, '/min'],
    ['neonatal heart rate', '8867-4', 165, '/min'],
    ['respiratory rate', '9279-1', 16, '/min'],
    ['body temperature', '8310-5', 36.8, 'Cel'],
    ['fever in Fahrenheit', '8310-5', 101.3, '[degF]'],
    ['oxygen saturation', '59408-5', 97, '%'],
    ['oxygen saturation (arterial)', '2708-6', 88, '%'],
    ['body weight', '29463-7', 68.5, 'kg'],
    ['preterm newborn weight', '29463-7', 640, 'g'],
    ['body weight in pounds', '29463-7', 151, '[lb_av]'],
    ['body height', '8302-2', 172, 'cm'],
    ['body height in metres', '8302-2', 1.72, 'm'],
    ['body height in inches', '8302-2', 67.7, '[in_i]'],
    ['BMI', '39156-5', 23.2, 'kg/m2'],
    ['head circumference', '9843-4', 34.5, 'cm'],
  ])('accepts a normal %s', (_, code, value, unit) => {
    expect(checkVitalSigns(vital(code, quantity(value, unit)))).toEqual([]);
  });

  it('accepts a normal blood pressure panel', () => {
    expect(checkVitalSigns(bloodPressure(118, 76))).toEqual([]);
  });

  it('accepts the extremes of neonatal and intensive care', () => {
    expect(checkVitalSigns(vital('8867-4', quantity(0, '/min')))).toEqual([]); // asystole
    expect(checkVitalSigns(vital('8310-5', quantity(28.5, 'Cel')))).toEqual([]); // therapeutic hypothermia
    expect(checkVitalSigns(vital('29463-7', quantity(0.45, 'kg')))).toEqual([]); // extremely preterm newborn
    expect(checkVitalSigns(vital('59408-5', quantity(62, '%')))).toEqual([]); // cyanotic heart disease
    expect(checkVitalSigns(bloodPressure(38, 18))).toEqual([]); // 23-week preterm newborn
  });

  it.each([
    ['heart rate of 900/min', '8867-4', 900, '/min'],
    ['negative respiratory rate', '9279-1', -4, '/min'],
    ['body temperature of 60 °C', '8310-5', 60, 'Cel'],
    ['body temperature in °C sent as °F', '8310-5', 37, '[degF]'],
    ['saturation above 100 %', '59408-5', 101, '%'],
    ['weight in grams sent as kilograms', '29463-7', 3400, 'kg'],
    ['height of 3 m', '8302-2', 300, 'cm'],
    ['BMI of 1', '39156-5', 1, 'kg/m2'],
    ['head circumference of 2 cm', '9843-4', 2, 'cm'],
  ])('rejects an impossible %s', (_, code, value, unit) => {
    expect(expressionsOf(vital(code, quantity(value, unit)))).toEqual(['Observation.valueQuantity.value']);
  });

  it('names the sign, the value and the plausible range', () => {
    expect(checkVitalSigns(vital('8867-4', quantity(900, '/min')))).toEqual([
      { expression: 'Observation.valueQuantity.value', message: 'Heart rate of 900 /min is impossible: the plausible range is 0–600 /min' },
    ]);
  });

  it('rejects a unit not allowed for the sign', () => {
    const issues = checkVitalSigns(vital('8867-4', quantity(72, 'kg')));
    expect(issues).toEqual([{ expression: 'Observation.valueQuantity.code', message: 'Heart rate must have a UCUM unit code among: /min' }]);
  });

  it('rejects a quantity without a unit code', () => {
    expect(expressionsOf(vital('8310-5', { value: 37, unit: '°C' }))).toEqual(['Observation.valueQuantity.system', 'Observation.valueQuantity.code']);
  });

  it('rejects units outside UCUM', () => {
    expect(expressionsOf(vital('29463-7', { value: 70, unit: 'kg', system: 'http://example.org/units', code: 'kg' }))).toEqual(['Observation.valueQuantity.system']);
  });

  it('rejects a quantity without a value', () => {
    expect(expressionsOf(vital('29463-7', { unit: 'kg', system: UCUM, code: 'kg' }))).toEqual(['Observation.valueQuantity.value']);
  });

  it('rejects a vital sign recorded as text or without any value', () => {
    expect(expressionsOf({ ...vital('8867-4'), valueString: '72 lpm' })).toEqual(['Observation.valueQuantity']);
    expect(expressionsOf(vital('8867-4'))).toEqual(['Observation.valueQuantity']);
  });

  describe('blood pressure panel', () => {
    it('rejects a diastolic pressure at or above the systolic', () => {
      expect(checkVitalSigns(bloodPressure(80, 95))).toEqual([
        { expression: 'Observation.component[1].valueQuantity.value', message: 'Diastolic pressure (95) must be lower than systolic pressure (80)' },
      ]);
      expect(expressionsOf(bloodPressure(90, 90))).toEqual(['Observation.component[1].valueQuantity.value']);
    });

    it('rejects impossible pressures in the component that has them', () => {
      expect(expressionsOf(bloodPressure(1200, 80))).toEqual(['Observation.component[0].valueQuantity.value']);
      expect(expressionsOf(bloodPressure(120, -5))).toEqual(['Observation.component[1].valueQuantity.value']);
    });

    it('rejects a component in the wrong unit', () => {
      const panel = bloodPressure(120, 80);
      panel.component![0] = bpComponent('8480-6', 16, 'kPa');
      expect(expressionsOf(panel)).toEqual(['Observation.component[0].valueQuantity.code']);
    });

    it('requires both systolic and diastolic components', () => {
      const panel = bloodPressure(120, 80);
      panel.component = panel.component!.slice(0, 1);
      expect(checkVitalSigns(panel)).toEqual([{ expression: 'Observation.component', message: 'A blood pressure panel needs a diastolic component (LOINC 8462-4)' }]);
      delete panel.component;
      expect(expressionsOf(panel)).toEqual(['Observation.component', 'Observation.component']);
    });

    it('accepts a component that was not measured, with its reason', () => {
      const panel = bloodPressure(120, 80);
      panel.component![1] = { code: loinc('8462-4'), dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error' }] } };
      expect(checkVitalSigns(panel)).toEqual([]);
    });
  });

  it('accepts an observation entered in error, whatever it holds', () => {
    expect(checkVitalSigns({ ...vital('8867-4', quantity(900, 'kg')), status: 'entered-in-error' })).toEqual([]);
    expect(checkVitalSigns({ ...bloodPressure(80, 120), status: 'entered-in-error' })).toEqual([]);
  });

  it('accepts a dataAbsentReason instead of a value', () => {
    const notMeasured = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'not-performed' }], text: 'Paciente sin tensiómetro en casa' };
    expect(checkVitalSigns({ ...vital('8310-5'), dataAbsentReason: notMeasured })).toEqual([]);
    expect(checkVitalSigns({ ...vital('85354-9'), dataAbsentReason: notMeasured })).toEqual([]);
  });

  it('reports a saturation coded with both LOINC codes once', () => {
    const saturation = vital('59408-5', quantity(140, '%'));
    saturation.code.coding!.push({ system: 'http://loinc.org', code: '2708-6' });
    expect(expressionsOf(saturation)).toEqual(['Observation.valueQuantity.value']);
  });

  it('leaves non-vital observations alone', () => {
    const glucose = { ...vital('2339-0', { value: 9000, unit: 'mg/dL', system: UCUM, code: 'mg/dL' }) };
    expect(checkVitalSigns(glucose)).toEqual([]);
    expect(checkVitalSigns({ ...vital('8867-4', quantity(900, '/min')), code: { text: 'Frecuencia cardíaca (sin código)' } })).toEqual([]);
    expect(checkVitalSigns({ ...vital('8867-4', quantity(900, '/min')), code: { coding: [{ system: 'http://snomed.info/sct', code: '8867-4' }] } })).toEqual([]);
  });

  it('is part of validateResource, together with every other problem', () => {
    const observation = { ...bloodPressure(80, 95), status: 'final', issued: 'hoy' };
    try {
      validateResource(observation, 'Observation');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ResourceValidationError);
      expect((err as ResourceValidationError).issues.map((issue) => issue.expression)).toEqual(['Observation.issued', 'Observation.component[1].valueQuantity.value']);
    }
    expect(() => validateResource(bloodPressure(118, 76), 'Observation')).not.toThrow();
  });
});

import { ENGLISH_FAMILY, ENGLISH_GIVEN, SPANISH_FAMILY, SPANISH_GIVEN } from '../demo/synthetic-people.js';

/**
 * Text that must never reach a log: every name the demo patients are made of, and a phrase
 * tests put in clinical notes. The log scan after the test run looks for each of them.
 */
export const CLINICAL_NOTE_MARKER = 'Dolor torácico opresivo irradiado';

export const HEALTH_DATA_MARKERS: string[] = [
  ...SPANISH_FAMILY,
  ...ENGLISH_FAMILY,
  ...Object.values(SPANISH_GIVEN).flat(),
  ...Object.values(ENGLISH_GIVEN).flat(),
  CLINICAL_NOTE_MARKER,
];

import { MRN_SYSTEM, NATIONAL_ID_SYSTEM } from '../records/telesalud-codes.js';

/**
 * Synthetic, deterministic people for the demo clinic and the benchmarks: Spanish and
 * English names (with the accents, apostrophes and ñ real records have). Nobody real.
 */
export const SPANISH_GIVEN = {
  female: ['Lucía', 'María José', 'Carmen', 'Sofía', 'Valentina', 'Ana Belén', 'Inés', 'Paula', 'Nuria', 'Ximena', 'Begoña', 'Rocío'],
  male: ['José Luis', 'Alejandro', 'Javier', 'Mateo', 'Íñigo', 'Andrés', 'Tomás', 'Raúl', 'Sebastián', 'Joaquín', 'Ramón', 'Héctor'],
};
export const SPANISH_FAMILY = ['García', 'Fernández', 'Núñez', 'Martínez', 'López', 'Sánchez', 'Pérez', 'Gómez', 'Díaz', 'Muñoz', 'Álvarez', 'Romero', 'Ortega', 'Castillo', 'Peña', 'Ibáñez'];
export const ENGLISH_GIVEN = {
  female: ['Margaret', 'Olivia', 'Charlotte', 'Grace', 'Hannah', 'Emily', 'Siobhan', 'Abigail', 'Chloe', 'Rebecca'],
  male: ['William', 'James', 'Oliver', 'Henry', 'Thomas', 'Daniel', 'Liam', 'Arthur', 'Samuel', 'Edward'],
};
export const ENGLISH_FAMILY = ["O'Brien", 'Thompson', 'Whitaker', 'Hughes', 'Fitzgerald', 'Campbell', 'Bennett', 'Morrison', "D'Arcy", 'Sinclair', 'Hargreaves', 'Okafor'];

/** A small deterministic PRNG (mulberry32): the same seed gives the same clinic on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

export function syntheticPatient(index: number, random: () => number) {
  const spanish = index % 3 !== 2;
  const gender = random() < 0.5 ? 'female' : 'male';
  const given = pick(random, (spanish ? SPANISH_GIVEN : ENGLISH_GIVEN)[gender]);
  const family = spanish ? [pick(random, SPANISH_FAMILY), pick(random, SPANISH_FAMILY)] : [pick(random, ENGLISH_FAMILY)];
  const year = 1935 + Math.floor(random() * 85);
  const month = 1 + Math.floor(random() * 12);
  const day = 1 + Math.floor(random() * 28);
  const mrn = `MRN-${String(100000 + index).padStart(7, '0')}`;
  return {
    resourceType: 'Patient' as const,
    active: true,
    identifier: [
      { use: 'usual' as const, system: MRN_SYSTEM, value: mrn },
      { use: 'official' as const, system: NATIONAL_ID_SYSTEM, value: `${String(10000000 + Math.floor(random() * 89999999))}${'TRWAGMYFPDXBNJZSQVHLCKE'[index % 23]}` },
    ],
    name: [{ use: 'official' as const, family: family.join(' '), given: given.split(' ') }],
    gender,
    birthDate: `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`,
    telecom: [
      { system: 'phone' as const, value: `+34 6${String(Math.floor(random() * 1e8)).padStart(8, '0')}`, use: 'mobile' as const },
      { system: 'email' as const, value: `paciente${index}@example.org` },
    ],
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: spanish ? 'es' : 'en' }] }, preferred: true }],
  };
}

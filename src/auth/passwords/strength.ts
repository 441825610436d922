/**
 * Strength estimation with zxcvbn-ts, configured once with the common, English and Spanish
 * dictionaries, the keyboard adjacency graphs, and a small dictionary of words that belong to this
 * service. The user's own name, email and the installation's context words go in per call.
 *
 * Feedback is zxcvbn's translation *keys* (no translations are loaded), e.g. warning
 * `similarToCommon`, suggestions `anotherWord`, `capitalization`: the browser app translates them
 * to es/en with the texts of @zxcvbn-ts/language-es-es and -en.
 */
import { ZxcvbnFactory, type ZxcvbnResult } from '@zxcvbn-ts/core';
import * as zxcvbnCommon from '@zxcvbn-ts/language-common';
import * as zxcvbnEn from '@zxcvbn-ts/language-en';
import * as zxcvbnEs from '@zxcvbn-ts/language-es-es';
import { foldAccents } from './breached-list.js';

/**
 * Only the first this-many code points are scored. zxcvbn's matching grows faster than linearly
 * with length (a 64-character l33t-heavy input took ~0.2 s here, 160 characters ~2–4 s); a
 * password whose first 64 characters are strong is strong.
 */
export const STRENGTH_CHECK_MAX_CHARS = 64;

/**
 * zxcvbn tries up to this many l33t substitutions per word (library default 100). At 100 a
 * 14-character password with digits and symbols took 200–400 ms; at 12 it takes ~15–50 ms and
 * still finds every realistic substitution ("P@ssw0rd", "h0sp1t4l").
 */
const L33T_MAX_SUBSTITUTIONS = 12;

/** Words of this service and trade that make a password guessable, whatever the language. */
export const SERVICE_WORDS: readonly string[] = [
  'telesalud', 'telehealth', 'telemedicina', 'telemedicine',
  'contraseña', 'contrasena', 'password', 'clave', 'secreto', 'secret', 'acceso', 'access',
  'bienvenido', 'bienvenida', 'welcome', 'usuario', 'user', 'login', 'admin', 'administrador',
  'hospital', 'clinica', 'clínica', 'clinic', 'salud', 'health', 'sanidad', 'medico', 'médico',
  'medica', 'médica', 'doctor', 'doctora', 'enfermera', 'enfermero', 'nurse', 'paciente', 'patient',
  'consulta', 'consultorio', 'urgencias', 'emergency', 'historia', 'receta',
];

let factory: ZxcvbnFactory | undefined;

function zxcvbn(): ZxcvbnFactory {
  factory ??= new ZxcvbnFactory({
    dictionary: {
      ...zxcvbnCommon.dictionary,
      ...zxcvbnEn.dictionary,
      ...zxcvbnEs.dictionary,
      'telesalud-service': [...SERVICE_WORDS],
    },
    graphs: zxcvbnCommon.adjacencyGraphs,
    l33tMaxSubstitutions: L33T_MAX_SUBSTITUTIONS,
    maxLength: STRENGTH_CHECK_MAX_CHARS,
    // Levenshtein matching makes every check 0.3–4 s here; the breached-list check covers near-misses better.
    useLevenshteinDistance: false,
  });
  return factory;
}

export interface StrengthEstimate {
  score: 0 | 1 | 2 | 3 | 4;
  /** log10 of the estimated guesses an attacker needs. */
  guessesLog10: number;
  /** zxcvbn translation keys: `warning` under `warnings.*`, each suggestion under `suggestions.*`. */
  feedback: { warning: string | null; suggestions: string[] };
}

/** Scores a normalised password; `userInputs` are words the attacker may know (name, email, site). */
export function estimateStrength(normalized: string, userInputs: readonly string[]): StrengthEstimate {
  const capped = capChars(normalized, STRENGTH_CHECK_MAX_CHARS);
  const result: ZxcvbnResult = zxcvbn().check(capped, [...userInputs]);
  return {
    score: result.score,
    guessesLog10: result.guessesLog10,
    feedback: { warning: result.feedback.warning, suggestions: [...result.feedback.suggestions] },
  };
}

/** Builds the zxcvbn dictionaries now (~0.2–0.4 s) instead of at the first check. */
export function preloadStrengthEstimator(): void {
  zxcvbn().check('warm up the matchers 2024', []);
}

function capChars(text: string, max: number): string {
  let out = '';
  let n = 0;
  for (const ch of text) {
    if (n++ >= max) break;
    out += ch;
  }
  return out;
}

/**
 * What the user's own data contributes to guessing: each input (name, email, username, phone…)
 * lowercased with accents folded, split into words and letter/digit runs, plus the words joined
 * ("María González" → maria, gonzalez, mariagonzalez); for an email only the part before the @
 * counts (the domain is shared by everyone at the hospital). Pieces shorter than
 * MIN_PERSONAL_TOKEN are dropped: a 3-letter name inside a password is too often a coincidence.
 */
export const MIN_PERSONAL_TOKEN = 4;

export function personalTokens(userInputs: readonly string[]): string[] {
  const tokens = new Set<string>();
  for (const input of userInputs) {
    let text = foldAccents(input.normalize('NFKC').toLowerCase()).trim();
    const at = text.lastIndexOf('@');
    if (at > 0) text = text.slice(0, at);
    const words = text.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
    const pieces = [...words, words.join('')];
    for (const word of words) pieces.push(...(word.match(/\p{L}+|\p{N}+/gu) ?? []));
    for (const piece of pieces) if ([...piece].length >= MIN_PERSONAL_TOKEN) tokens.add(piece);
  }
  return [...tokens];
}

/** The personal token a normalised password contains (case- and accent-insensitive), if any. */
export function findPersonalToken(normalized: string, tokens: readonly string[]): string | null {
  const folded = foldAccents(normalized.toLowerCase());
  const squeezed = folded.replace(/[^\p{L}\p{N}]+/gu, '');
  for (const token of tokens) {
    if (folded.includes(token) || squeezed.includes(token)) return token;
  }
  return null;
}

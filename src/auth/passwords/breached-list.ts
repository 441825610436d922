/**
 * The bundled list of common breached passwords (origin, licence and figures in
 * breached/README.md): 961,105 lowercase entries, sorted by byte value, one per line, Brotli-
 * compressed in the repository (2.4 MB). Loaded once, lazily, into one Buffer (8.2 MB) plus an
 * index of line starts (3.8 MB), and searched by binary search — about a fifth of the memory a
 * Set of the same strings takes.
 *
 * Matching is case-insensitive: cracking tools try case variants of every list entry first, so
 * "PASSWORD1234" is as breached as "password1234". Besides exact matches, a password made of a
 * listed word (4+ characters) with a little decoration before or after it (up to
 * MAX_DECORATION digits, symbols or spaces: "Barcelona2024!", "!!hospital123") is refused too:
 * that is exactly what the first rule sets of hashcat and John try. Accents are folded for that
 * base-word check ("Contraseña" → "contrasena", which is on the list).
 */
import { readFileSync } from 'node:fs';
import { brotliDecompressSync } from 'node:zlib';

/**
 * Resolves both from src/auth/passwords/ (tsx, vitest) and from dist/auth/passwords/ (the
 * compiled service): tsc does not copy data files, so the compiled code reads the one in src/.
 */
const LIST_URL = new URL('../../../src/auth/passwords/breached/common-passwords.txt.br', import.meta.url);

/** Most digits/symbols/spaces stripped around a base word for the "decorated" check. */
export const MAX_DECORATION = 8;
/** Shortest base word the decorated check looks up (the list holds nothing shorter). */
export const MIN_BASE_WORD = 4;

interface LoadedList {
  data: Buffer;
  /** starts[i] is the offset of line i; starts[count] is data.length (one past the last newline). */
  starts: Uint32Array;
  count: number;
}

let loaded: LoadedList | undefined;

export interface BreachedListStats {
  entries: number;
  compressedBytes: number;
  memoryBytes: number;
  loadMs: number;
}

let stats: BreachedListStats | undefined;

function load(): LoadedList {
  if (loaded) return loaded;
  const started = performance.now();
  const compressed = readFileSync(LIST_URL);
  const data = brotliDecompressSync(compressed);
  let count = 0;
  for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) count += 1;
  const starts = new Uint32Array(count + 1);
  let line = 0;
  starts[0] = 0;
  for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) starts[++line] = i + 1;
  loaded = { data, starts, count };
  stats = {
    entries: count,
    compressedBytes: compressed.length,
    memoryBytes: data.length + starts.byteLength,
    loadMs: performance.now() - started,
  };
  return loaded;
}

/** Loads the list now (at start-up) instead of at the first password check, and reports its figures. */
export function preloadBreachedList(): BreachedListStats {
  load();
  return stats!;
}

/** Exact, case-insensitive lookup of one (already normalised) text. */
export function isOnBreachedList(candidate: string): boolean {
  const list = load();
  const needle = Buffer.from(candidate.toLowerCase(), 'utf8');
  let lo = 0;
  let hi = list.count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    // Entry `mid` spans starts[mid] .. starts[mid + 1] - 1 (the newline excluded).
    const cmp = needle.compare(list.data, list.starts[mid]!, list.starts[mid + 1]! - 1);
    if (cmp === 0) return true;
    if (cmp < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return false;
}

export type BreachedMatch = 'exact' | 'decorated';

/**
 * Whether a normalised password is a common breached password (`exact`) or one with a little
 * decoration around a listed base word (`decorated`); `null` when neither.
 */
export function findBreachedMatch(normalized: string): BreachedMatch | null {
  const lower = normalized.toLowerCase();
  const lowerFolded = foldAccents(lower);
  if (isOnBreachedList(lower) || (lowerFolded !== lower && isOnBreachedList(lowerFolded))) return 'exact';

  // Decorated: strip leading and trailing runs of anything but letters, if short enough.
  const match = /^([^\p{L}]*)(.*?)([^\p{L}]*)$/su.exec(lower);
  if (!match) return null;
  const [, before = '', base = '', after = ''] = match;
  const decoration = [...before].length + [...after].length;
  if (decoration === 0 || decoration > MAX_DECORATION) return null;
  const folded = foldAccents(base);
  if ([...folded].length < MIN_BASE_WORD) return null;
  if (isOnBreachedList(base) || (folded !== base && isOnBreachedList(folded))) return 'decorated';
  return null;
}

/** "Contraseña" → "contrasena", "Müller" → "muller": the list itself is ASCII. */
export function foldAccents(text: string): string {
  return text.normalize('NFKD').replace(/\p{M}+/gu, '');
}

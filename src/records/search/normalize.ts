/** String search is case- and accent-insensitive: "nuñez", "NUNEZ" and "Núñez" all find Núñez. */
export function normalizeSearchString(value: string): string {
  return value.normalize('NFD').replace(/\p{M}+/gu, '').toLowerCase().replace(/\s+/g, ' ').trim();
}

/** Escape LIKE metacharacters so user input is matched literally. */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

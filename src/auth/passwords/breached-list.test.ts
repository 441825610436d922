import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { brotliDecompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { findBreachedMatch, isOnBreachedList, preloadBreachedList } from './breached-list.js';

const entries = brotliDecompressSync(readFileSync(new URL('./breached/common-passwords.txt.br', import.meta.url)))
  .toString('utf8')
  .split('\n')
  .slice(0, -1);

describe('breached password list', () => {
  it('ships at least 100,000 entries, loaded compactly', () => {
    const stats = preloadBreachedList();
    expect(stats.entries).toBe(entries.length);
    expect(stats.entries).toBeGreaterThanOrEqual(100_000);
    expect(stats.memoryBytes).toBeLessThan(16 * 1024 * 1024);
    expect(stats.compressedBytes).toBeLessThan(3 * 1024 * 1024);
    // Printable ASCII, lowercase, 4+ characters, unique and in byte order (for ASCII the same as
    // string order), which the binary search relies on.
    expect(entries.every((e) => /^[\x20-\x7e]{4,}$/.test(e) && e === e.toLowerCase())).toBe(true);
    for (let i = 1; i < entries.length; i += 1) {
      if (!(entries[i - 1]! < entries[i]!)) throw new Error(`out of order at line ${i}`);
    }
  });

  it('finds the famous ones, in any case', () => {
    for (const pw of ['password', '123456789', 'qwertyuiop', 'iloveyou', 'PASSWORD', 'IloveYou', 'qwertyuiop123', 'barcelona', 'contrasena']) {
      expect(isOnBreachedList(pw), pw).toBe(true);
    }
    expect(isOnBreachedList('zq-vixen-lantern-7731-Ñandú')).toBe(false);
    expect(isOnBreachedList('')).toBe(false);
  });

  it('agrees with a plain Set for listed entries and arbitrary text', () => {
    const set = new Set(entries);
    fc.assert(
      fc.property(fc.constantFrom(...entries.filter((_, i) => i % 97 === 0)), (entry) => isOnBreachedList(entry)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 24 }), (text) => isOnBreachedList(text) === set.has(text.toLowerCase())),
      { numRuns: 2000 },
    );
    // Neighbours of real entries (one character more or less) — where an off-by-one would show.
    fc.assert(
      fc.property(fc.constantFrom(...entries.filter((_, i) => i % 101 === 0)), fc.constantFrom('', '!', '~', ' '), (entry, extra) => {
        const longer = `${entry}${extra}`;
        const shorter = entry.slice(0, -1);
        return isOnBreachedList(longer) === set.has(longer) && isOnBreachedList(shorter) === set.has(shorter);
      }),
      { numRuns: 2000 },
    );
  });

  it('tells exact matches from decorated base words', () => {
    expect(findBreachedMatch('ILOVEYOU1234')).toBe('exact');
    expect(findBreachedMatch('Barcelona2024!')).toBe('decorated');
    expect(findBreachedMatch('!!Hospital123')).toBe('decorated');
    expect(findBreachedMatch('Contraseña123!')).toBe('decorated'); // "contrasena" is listed; accents fold
    expect(findBreachedMatch('P@ssw0rd2024!!')).toBe('decorated');
    // Long decoration carries real strength; a passphrase is not a listed word.
    expect(findBreachedMatch('love83920174659201!')).toBeNull();
    expect(findBreachedMatch('caballo correcto grapa batería')).toBeNull();
    expect(findBreachedMatch('2024!!!!')).toBeNull();
  });
});

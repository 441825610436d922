import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { consumeRecoveryCode, hashRecoveryCode, newRecoveryCodes, normaliseRecoveryCode, RECOVERY_ALPHABET, RECOVERY_CODE_BITS } from './recovery-codes.js';

describe('newRecoveryCodes', () => {
  it('gives ten distinct, formatted codes of 80 bits from an unambiguous alphabet, with matching hashes', () => {
    const { codes, hashes } = newRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(hashes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    expect(new Set(hashes).size).toBe(10);
    for (const c of codes) {
      expect(c).toMatch(/^[2-9a-km-np-z]{4}(-[2-9a-km-np-z]{4}){3}$/);
      expect(c).not.toMatch(/[01lo]/i);
    }
    expect(RECOVERY_ALPHABET).toHaveLength(32);
    expect(new Set(RECOVERY_ALPHABET).size).toBe(32);
    expect(RECOVERY_CODE_BITS).toBeGreaterThanOrEqual(60);
    hashes.forEach((h, i) => {
      expect(h).toMatch(/^rc1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
      expect(h).not.toContain(codes[i]!.replace(/-/g, ''));
      expect(consumeRecoveryCode(codes[i]!, hashes)).toBe(i);
    });
  });

  it('is unique across many sets and uses the whole alphabet', () => {
    const all = Array.from({ length: 100 }, () => newRecoveryCodes(10).codes).flat();
    expect(new Set(all).size).toBe(1000);
    const used = new Set(all.join('').replace(/-/g, ''));
    expect(used.size).toBe(32);
  });

  it('honours count and refuses silly counts', () => {
    expect(newRecoveryCodes(1).codes).toHaveLength(1);
    expect(newRecoveryCodes(16).hashes).toHaveLength(16);
    for (const bad of [0, -1, 1.5, 101, Number.NaN]) expect(() => newRecoveryCodes(bad)).toThrow(RangeError);
  });

  it('salts each hash: the same code hashes differently each time', () => {
    const code = newRecoveryCodes(1).codes[0]!;
    expect(hashRecoveryCode(code)).not.toBe(hashRecoveryCode(code));
  });
});

describe('consumeRecoveryCode', () => {
  it('is single use once the caller marks the returned entry used', () => {
    const { codes, hashes } = newRecoveryCodes(5);
    const stored: Array<string | null> = [...hashes];
    const i = consumeRecoveryCode(codes[2]!, stored);
    expect(i).toBe(2);
    stored[i] = null; // what the caller persists
    expect(consumeRecoveryCode(codes[2]!, stored)).toBe(-1);
    // the others still work, and a removed entry (deleted row) works the same way
    expect(consumeRecoveryCode(codes[4]!, stored)).toBe(4);
    const remaining = stored.filter((h): h is string => h !== null && h !== stored[4]);
    expect(consumeRecoveryCode(codes[4]!, remaining)).toBe(-1);
    expect(consumeRecoveryCode(codes[0]!, remaining)).toBe(0);
    // '' and undefined also count as used
    expect(consumeRecoveryCode(codes[0]!, ['', undefined, hashes[0]])).toBe(2);
    expect(consumeRecoveryCode(codes[0]!, [])).toBe(-1);
  });

  it('normalises case, spaces and dashes', () => {
    const { codes, hashes } = newRecoveryCodes(3);
    const c = codes[1]!;
    const bare = c.replace(/-/g, '');
    for (const typed of [c, c.toUpperCase(), bare, ` ${bare.slice(0, 8)} ${bare.slice(8)} `, bare.replace(/(.)/g, '$1 '), c.replace(/-/g, ' - '), c.replace(/-/g, '\u2013')]) {
      expect(consumeRecoveryCode(typed, hashes)).toBe(1);
    }
    expect(normaliseRecoveryCode(c.toUpperCase())).toBe(bare);
  });

  it('refuses wrong, truncated, extended or foreign input', () => {
    const { codes, hashes } = newRecoveryCodes(3);
    const c = codes[0]!;
    const other = newRecoveryCodes(1).codes[0]!;
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'a' ? 'b' : 'a') + s.slice(i + 1);
    for (const bad of [other, flip(c, 0), flip(c, c.length - 1), c.slice(0, -1), `${c}a`, '', 'x'.repeat(10_000), c.replace('-', '_'), `l${c.slice(1)}`, `0${c.slice(1)}`, `O${c.slice(1)}`, `1${c.slice(1)}`]) {
      expect(consumeRecoveryCode(bad, hashes)).toBe(-1);
    }
    expect(consumeRecoveryCode(undefined as unknown as string, hashes)).toBe(-1);
  });

  it('never matches random input (property)', () => {
    const { hashes } = newRecoveryCodes(10);
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => consumeRecoveryCode(s, hashes) === -1));
  });

  it('throws on a corrupted stored hash rather than silently skipping it', () => {
    const { codes, hashes } = newRecoveryCodes(2);
    expect(() => consumeRecoveryCode(codes[0]!, ['sha256$abc', hashes[0]!])).toThrow(/rc1/);
    expect(() => consumeRecoveryCode(codes[0]!, [hashes[0]!.replace(/\$[^$]+$/, '$AAAA')])).toThrow(/rc1/);
  });

  it('a stored hash does not verify a different code (no cross-match between codes)', () => {
    const { codes, hashes } = newRecoveryCodes(10);
    codes.forEach((c, i) => {
      hashes.forEach((h, j) => expect(consumeRecoveryCode(c, [h])).toBe(i === j ? 0 : -1));
    });
  });
});

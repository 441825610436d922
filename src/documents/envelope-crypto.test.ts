import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DocumentIntegrityError, openDocument, rewrapKey, sealDocument, type SealedDocument } from './envelope-crypto.js';
import { KeyRing, UnknownKeyError, kekFromBytes } from './key-ring.js';

const kek1 = kekFromBytes(randomBytes(32));
const kek2 = kekFromBytes(randomBytes(32));
const ring1 = new KeyRing([kek1], kek1.id);

type BinaryField = 'wrappedKey' | 'nonce' | 'ciphertext' | 'tag';
const BINARY_FIELDS: BinaryField[] = ['wrappedKey', 'nonce', 'ciphertext', 'tag'];

function flipBit(sealed: SealedDocument, field: BinaryField, bit: number): SealedDocument {
  const altered = Buffer.from(sealed[field]);
  altered[bit >> 3]! ^= 1 << (bit & 7);
  return { ...sealed, [field]: altered };
}

function expectIntegrityFailure(open: () => unknown): void {
  let error: unknown;
  try {
    open();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(DocumentIntegrityError);
  expect((error as Error).message).toMatch(/failed its integrity check/);
}

describe('sealDocument / openDocument', () => {
  it.each([
    ['empty', 0],
    ['1 byte', 1],
    ['5 MiB', 5 * 1024 * 1024],
  ])('round-trips a %s document', (_name, size) => {
    const plaintext = randomBytes(size);
    const sealed = sealDocument(ring1, plaintext, 'doc-1');
    expect(sealed.kekId).toBe(kek1.id);
    expect(sealed.nonce).toHaveLength(12);
    expect(sealed.tag).toHaveLength(16);
    expect(sealed.wrappedKey).toHaveLength(60);
    expect(sealed.ciphertext).toHaveLength(size);
    expect(openDocument(ring1, sealed, 'doc-1').equals(plaintext)).toBe(true);
  });

  it('does not store the plaintext', () => {
    const plaintext = Buffer.from('Diagnóstico: hipertensión arterial. '.repeat(20));
    const sealed = sealDocument(ring1, plaintext, 'doc-1');
    expect(sealed.ciphertext.includes(plaintext.subarray(0, 16))).toBe(false);
  });

  it('gives two different seals for the same plaintext', () => {
    const plaintext = Buffer.from('same content');
    const a = sealDocument(ring1, plaintext, 'doc-1');
    const b = sealDocument(ring1, plaintext, 'doc-1');
    expect(a.nonce.equals(b.nonce)).toBe(false);
    expect(a.wrappedKey.equals(b.wrappedKey)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    expect(a.tag.equals(b.tag)).toBe(false);
  });

  describe('refuses altered documents', () => {
    const sealed = sealDocument(ring1, randomBytes(1000), 'doc-1');

    for (const field of BINARY_FIELDS) {
      it(`a flipped bit in ${field} (first, middle and last bit)`, () => {
        const bits = sealed[field].length * 8;
        for (const bit of [0, bits >> 1, bits - 1]) {
          expectIntegrityFailure(() => openDocument(ring1, flipBit(sealed, field, bit), 'doc-1'));
        }
      });

      it(`a truncated or extended ${field}`, () => {
        expectIntegrityFailure(() => openDocument(ring1, { ...sealed, [field]: sealed[field].subarray(0, -1) }, 'doc-1'));
        expectIntegrityFailure(() =>
          openDocument(ring1, { ...sealed, [field]: Buffer.concat([sealed[field], Buffer.alloc(1)]) }, 'doc-1'),
        );
      });
    }

    it('any single flipped bit anywhere', () => {
      fc.assert(
        fc.property(fc.constantFrom(...BINARY_FIELDS), fc.nat(), (field, n) => {
          const bit = n % (sealed[field].length * 8);
          expectIntegrityFailure(() => openDocument(ring1, flipBit(sealed, field, bit), 'doc-1'));
        }),
        { numRuns: 200 },
      );
    });

    it('the wrong associatedData', () => {
      expectIntegrityFailure(() => openDocument(ring1, sealed, 'doc-2'));
      expectIntegrityFailure(() => openDocument(ring1, sealed, ''));
    });

    it('content or wrapped key moved from another document row', () => {
      const other = sealDocument(ring1, randomBytes(1000), 'doc-2');
      const { wrappedKey, ...content } = other;
      expectIntegrityFailure(() => openDocument(ring1, { ...content, wrappedKey: sealed.wrappedKey }, 'doc-2'));
      expectIntegrityFailure(() => openDocument(ring1, { ...sealed, wrappedKey }, 'doc-1'));
      expectIntegrityFailure(() => openDocument(ring1, { ...content, wrappedKey }, 'doc-1'));
    });

    it('a different KEK under the same id', () => {
      const impostor = { id: kek1.id, key: randomBytes(32) };
      expectIntegrityFailure(() => openDocument(new KeyRing([impostor], impostor.id), sealed, 'doc-1'));
    });

    it('a kekId swapped to another KEK the ring holds', () => {
      const both = new KeyRing([kek1, kek2], kek1.id);
      expectIntegrityFailure(() => openDocument(both, { ...sealed, kekId: kek2.id }, 'doc-1'));
    });
  });

  it('names the missing KEK when the ring does not hold it', () => {
    const sealed = sealDocument(ring1, Buffer.from('x'), 'doc-1');
    const ring2 = new KeyRing([kek2], kek2.id);
    expect(() => openDocument(ring2, sealed, 'doc-1')).toThrow(UnknownKeyError);
    expect(() => openDocument(ring2, sealed, 'doc-1')).toThrow(kek1.id);
  });
});

describe('rewrapKey', () => {
  const plaintext = randomBytes(4096);
  const sealed = sealDocument(ring1, plaintext, 'doc-1');
  const rotated = new KeyRing([kek2, kek1], kek2.id);

  it('re-wraps under the new current KEK; old and new wrapped keys both open', () => {
    const rewrapped = rewrapKey(rotated, sealed, 'doc-1');
    expect(rewrapped.kekId).toBe(kek2.id);
    expect(rewrapped.wrappedKey.equals(sealed.wrappedKey)).toBe(false);

    expect(openDocument(rotated, { ...sealed, ...rewrapped }, 'doc-1').equals(plaintext)).toBe(true);
    expect(openDocument(rotated, sealed, 'doc-1').equals(plaintext)).toBe(true);
    // Once every row is re-wrapped, the old KEK can be retired.
    expect(openDocument(new KeyRing([kek2], kek2.id), { ...sealed, ...rewrapped }, 'doc-1').equals(plaintext)).toBe(true);
  });

  it('re-wraps to an explicit KEK id', () => {
    const there = rewrapKey(rotated, sealed, 'doc-1', kek2.id);
    const back = rewrapKey(rotated, there, 'doc-1', kek1.id);
    expect(back.kekId).toBe(kek1.id);
    expect(openDocument(ring1, { ...sealed, ...back }, 'doc-1').equals(plaintext)).toBe(true);
  });

  it('refuses an altered wrapped key or the wrong associatedData', () => {
    expectIntegrityFailure(() => rewrapKey(rotated, flipBit(sealed, 'wrappedKey', 100), 'doc-1'));
    expectIntegrityFailure(() => rewrapKey(rotated, sealed, 'doc-2'));
  });

  it('refuses an unknown target KEK id', () => {
    expect(() => rewrapKey(rotated, sealed, 'doc-1', '0000000000000000')).toThrow(UnknownKeyError);
  });
});

import { hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeyRing, kekFromBytes, UnknownKeyError } from '../../documents/key-ring.js';
import { newTotpSecret, sealTotpSecret } from '../mfa/totp.js';
import { openAccountTotpSecret, resealAccountTotpSecret, sealAccountTotpSecret, totpSealedKekId, totpSecretKekId } from './account-keys.js';

const a = kekFromBytes(randomBytes(32));
const b = kekFromBytes(randomBytes(32));

/** How secrets were sealed before the KEK id was recorded: HKDF of the current key, no tag. */
function legacySeal(secret: string, key: Buffer, accountId: string): string {
  return sealTotpSecret(secret, Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'telesalud/totp/v1', 32)), accountId);
}

describe('TOTP secrets sealed under a named key-encryption key', () => {
  it('records the KEK id in the stored value and opens it under that key only', () => {
    const secret = newTotpSecret();
    const sealed = sealAccountTotpSecret(new KeyRing([a], a.id), secret, 'acc-1');
    expect(sealed.startsWith(`kek.${a.id}.v1.`)).toBe(true);
    expect(totpSealedKekId(sealed)).toBe(a.id);
    expect(sealed).not.toContain(secret);
    // After a rotation the ring's current key is b; the value still names a, which the ring keeps.
    expect(openAccountTotpSecret(new KeyRing([b, a], b.id), sealed, 'acc-1')).toBe(secret);
    expect(() => openAccountTotpSecret(new KeyRing([b], b.id), sealed, 'acc-1')).toThrow(UnknownKeyError);
    expect(() => openAccountTotpSecret(new KeyRing([a], a.id), sealed, 'acc-2')).toThrow();
  });

  it('a swapped KEK id does not open the value', () => {
    const sealed = sealAccountTotpSecret(new KeyRing([a], a.id), newTotpSecret(), 'acc-1');
    expect(() => openAccountTotpSecret(new KeyRing([a, b], a.id), sealed.replace(a.id, b.id), 'acc-1')).toThrow(/authentication failed/);
  });

  it('opens values sealed before ids were recorded, under any key of the ring, and re-seals them tagged', () => {
    const secret = newTotpSecret();
    const legacy = legacySeal(secret, a.key, 'acc-1');
    expect(totpSealedKekId(legacy)).toBeUndefined();
    const ring = new KeyRing([b, a], b.id);
    expect(openAccountTotpSecret(ring, legacy, 'acc-1')).toBe(secret);
    expect(totpSecretKekId(ring, legacy, 'acc-1')).toBe(a.id);
    const resealed = resealAccountTotpSecret(ring, legacy, 'acc-1');
    expect(resealed.fromKekId).toBe(a.id);
    expect(totpSealedKekId(resealed.sealed)).toBe(b.id);
    expect(openAccountTotpSecret(new KeyRing([b], b.id), resealed.sealed, 'acc-1')).toBe(secret);
    expect(() => openAccountTotpSecret(new KeyRing([b], b.id), legacy, 'acc-1')).toThrow(/authentication failed/);
    expect(totpSecretKekId(new KeyRing([b], b.id), legacy, 'acc-1')).toBeUndefined();
  });
});

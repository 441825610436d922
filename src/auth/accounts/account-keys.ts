import { hkdfSync } from 'node:crypto';
import type { KeyRing } from '../../documents/key-ring.js';

/**
 * The key that seals TOTP secrets at rest, derived from the current key-encryption key for this
 * purpose only, so a database dump alone yields no second factor.
 */
export function totpSealingKey(ring: KeyRing): Buffer {
  return Buffer.from(hkdfSync('sha256', ring.current().key, Buffer.alloc(0), 'telesalud/totp/v1', 32));
}

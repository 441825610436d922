/**
 * Frame keys: 32 random bytes per participant, imported as AES-GCM-256 for frames and as
 * HKDF material for the ratchet. Shared by the key manager (page) and the frame cryptor
 * (worker), so both step a key forward the same way.
 */
export const FRAME_KEY_BYTES = 32;
/** How far a receiver ratchets by itself to follow a sender that stepped forward when someone joined. */
export const MAX_RATCHET_STEPS = 8;
/** keyId travels in two bytes of the frame trailer and in `e2ee-key.keyId`. */
export const KEY_ID_MODULO = 0x10000;

const RATCHET_SALT = new TextEncoder().encode('telesalud frame key ratchet v1');
const CHAT_INFO = new TextEncoder().encode('telesalud chat key v1');

export function newFrameKeyBytes(): ArrayBuffer {
  return crypto.getRandomValues(new Uint8Array(FRAME_KEY_BYTES)).buffer;
}

/** The next key in the chain: whoever holds key n can compute n+1, nobody can go back. */
export async function ratchetFrameKey(raw: ArrayBuffer): Promise<ArrayBuffer> {
  const base = await crypto.subtle.importKey('raw', raw, 'HKDF', false, ['deriveBits']);
  return crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: RATCHET_SALT, info: new Uint8Array(0) }, base, FRAME_KEY_BYTES * 8);
}

export function importFrameKey(raw: ArrayBuffer): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/** Chat messages use a key derived from the sender's frame key, never the frame key itself. */
export async function chatKeyFrom(raw: ArrayBuffer): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey('raw', raw, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: CHAT_INFO }, base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

export const nextKeyId = (keyId: number): number => (keyId + 1) % KEY_ID_MODULO;
/** Steps from `from` forward to `to` on the keyId circle. */
export const keyIdDistance = (from: number, to: number): number => (to - from + KEY_ID_MODULO) % KEY_ID_MODULO;

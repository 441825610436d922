import { fromBase64Url, toBase64Url } from './base64url.js';

/**
 * The identity of one join: an ECDH P-256 key pair made fresh each time the page joins.
 * Its public half travels in `join.identityKey`; the private half never leaves this page
 * (non-extractable). Pairwise secrets with each peer wrap the frame keys, and the safety
 * code shown on both screens is derived from both public halves, so a server that swapped
 * keys would show two different codes.
 */
export interface Identity {
  keyPair: CryptoKeyPair;
  /** Raw uncompressed public point, base64url. */
  publicKey: string;
}

const ECDH = { name: 'ECDH', namedCurve: 'P-256' } as const;
const WRAP_INFO = new TextEncoder().encode('telesalud e2ee key wrapping v1');
const SAFETY_INFO = new TextEncoder().encode('telesalud safety code v1');

export async function createIdentity(): Promise<Identity> {
  const keyPair = (await crypto.subtle.generateKey(ECDH, false, ['deriveBits'])) as CryptoKeyPair;
  const raw = await crypto.subtle.exportKey('raw', keyPair.publicKey);
  return { keyPair, publicKey: toBase64Url(raw) };
}

/** Both public keys in a fixed order, so both ends derive the same bytes. */
function sortedPair(a: string, b: string): Uint8Array<ArrayBuffer> {
  const [first, second] = [a, b].sort();
  const x = fromBase64Url(first!);
  const y = fromBase64Url(second!);
  const out = new Uint8Array(x.length + y.length);
  out.set(x, 0);
  out.set(y, x.length);
  return out;
}

/** ECDH → HKDF-SHA-256 (salt: both public keys) → AES-GCM-256 key that wraps frame keys. */
export async function pairwiseWrappingKey(own: Identity, peerPublicKey: string): Promise<CryptoKey> {
  const peerKey = await crypto.subtle.importKey('raw', fromBase64Url(peerPublicKey), ECDH, false, []);
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: peerKey }, own.keyPair.privateKey, 256);
  const hkdf = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: sortedPair(own.publicKey, peerPublicKey), info: WRAP_INFO },
    hkdf,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/**
 * Twelve digits in three groups of four from SHA-256 over both public keys (sorted): the
 * same on both screens only when each side holds the other's real key. 40 bits is enough
 * for a comparison made live, where an attacker gets one try.
 */
export async function safetyCode(ownPublicKey: string, peerPublicKey: string): Promise<string> {
  const pair = sortedPair(ownPublicKey, peerPublicKey);
  const input = new Uint8Array(SAFETY_INFO.length + pair.length);
  input.set(SAFETY_INFO, 0);
  input.set(pair, SAFETY_INFO.length);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', input));
  const groups: string[] = [];
  for (let i = 0; i < 3; i++) {
    // 32 bits per group reduced mod 10^4: the bias (< 1e-5) does not matter here.
    const n = ((digest[i * 4]! << 24) | (digest[i * 4 + 1]! << 16) | (digest[i * 4 + 2]! << 8) | digest[i * 4 + 3]!) >>> 0;
    groups.push(String(n % 10_000).padStart(4, '0'));
  }
  return groups.join(' ');
}

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyEncryptionKey, KeyRing } from './key-ring.js';

/** One encrypted document as stored: each field is its own column, kept exactly as returned. */
export interface SealedDocument {
  /** Which KEK wrapped the data key (see KeyRing). */
  kekId: string;
  wrappedKey: Buffer;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** The document (or its wrapped key) was altered, moved to another row, or sealed under a different key. */
export class DocumentIntegrityError extends Error {
  constructor() {
    super('the document failed its integrity check: it was altered, moved to another record, or sealed under a different key');
    this.name = 'DocumentIntegrityError';
  }
}

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
// wrappedKey layout: nonce (12 bytes) ‖ encrypted data key (32 bytes) ‖ GCM tag (16 bytes).
const WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES;

export function sealDocument(ring: KeyRing, plaintext: Buffer, associatedData: string): SealedDocument {
  const kek = ring.current();
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(ALGORITHM, dataKey, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { kekId: kek.id, wrappedKey: wrap(kek, dataKey, associatedData), nonce, ciphertext, tag: cipher.getAuthTag() };
  } finally {
    dataKey.fill(0);
  }
}

export function openDocument(ring: KeyRing, sealed: SealedDocument, associatedData: string): Buffer {
  // Node's GCM accepts any nonce length and tags down to 4 bytes: insist on the sizes we write.
  if (sealed.nonce.length !== NONCE_BYTES || sealed.tag.length !== TAG_BYTES) throw new DocumentIntegrityError();
  const dataKey = unwrap(ring, sealed, associatedData);
  let plaintext: Buffer | undefined;
  try {
    const decipher = createDecipheriv(ALGORITHM, dataKey, sealed.nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(sealed.tag);
    plaintext = decipher.update(sealed.ciphertext);
    // final() is where GCM verifies the tag; until it passes, the bytes from update() are unauthenticated.
    decipher.final();
    return plaintext;
  } catch {
    plaintext?.fill(0);
    throw new DocumentIntegrityError();
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Re-wraps a document's data key under another KEK (the current one by default) without touching its
 * content; this is the step `telesalud keys rotate` runs for every document. associatedData must be the
 * value the document was sealed with, because it is bound into the wrapped key too.
 */
export function rewrapKey(
  ring: KeyRing,
  sealed: Pick<SealedDocument, 'kekId' | 'wrappedKey'>,
  associatedData: string,
  toKekId?: string,
): { kekId: string; wrappedKey: Buffer } {
  const target = toKekId === undefined ? ring.current() : ring.byId(toKekId);
  const dataKey = unwrap(ring, sealed, associatedData);
  try {
    return { kekId: target.id, wrappedKey: wrap(target, dataKey, associatedData) };
  } finally {
    dataKey.fill(0);
  }
}

/** Binds the wrapped key to its KEK id and to the document, so it cannot be replayed onto another row. */
function wrapAad(kekId: string, associatedData: string): Buffer {
  // The KEK id is hex, so the NUL separator makes the encoding unambiguous.
  return Buffer.from(`telesalud/document-key/v1\0${kekId}\0${associatedData}`, 'utf8');
}

function wrap(kek: KeyEncryptionKey, dataKey: Buffer, associatedData: string): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv(ALGORITHM, kek.key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(wrapAad(kek.id, associatedData));
  return Buffer.concat([nonce, cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
}

/** Returns the data key; the caller zeroes it. The stored kekId is in the AAD, so a swapped id fails too. */
function unwrap(ring: KeyRing, sealed: Pick<SealedDocument, 'kekId' | 'wrappedKey'>, associatedData: string): Buffer {
  const kek = ring.byId(sealed.kekId);
  if (sealed.wrappedKey.length !== WRAPPED_KEY_BYTES) throw new DocumentIntegrityError();
  const nonce = sealed.wrappedKey.subarray(0, NONCE_BYTES);
  const encrypted = sealed.wrappedKey.subarray(NONCE_BYTES, NONCE_BYTES + KEY_BYTES);
  const tag = sealed.wrappedKey.subarray(NONCE_BYTES + KEY_BYTES);
  let dataKey: Buffer | undefined;
  try {
    const decipher = createDecipheriv(ALGORITHM, kek.key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(wrapAad(kek.id, associatedData));
    decipher.setAuthTag(tag);
    // GCM emits everything from update(); keeping that one buffer means the copy we zero is the only copy.
    dataKey = decipher.update(encrypted);
    decipher.final();
    return dataKey;
  } catch {
    dataKey?.fill(0);
    throw new DocumentIntegrityError();
  }
}

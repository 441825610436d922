import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { KeyRing } from '../documents/key-ring.js';

/**
 * The sealed container of a telesalud backup: one text header, then AES-256-GCM frames.
 *
 *   TELESALUD-BACKUP 1\n
 *   {"format":1,"kekId":…,"salt":…,"keyCheck":…,…}\n
 *   frame*: u32 ciphertext length | ciphertext+tag
 *
 * The archive key is derived (HKDF-SHA-256, random salt) from the master key that already
 * protects the documents, so whoever can restore the documents can open the archive and nobody
 * else can; the master key itself is never written. Each frame's nonce is its index and its
 * associated data binds the header, the index and whether it is the last frame, so frames can
 * not be altered, reordered, dropped or truncated away without the reader noticing.
 */
export const ARCHIVE_MAGIC = 'TELESALUD-BACKUP 1\n';
const FRAME_PLAINTEXT_BYTES = 1024 * 1024;
const TAG_BYTES = 16;
const MAX_HEADER_BYTES = 4096;

export interface ArchiveHeader {
  format: 1;
  createdAt: string;
  telesaludVersion: string;
  /** Which master key (by id, never its bytes) the archive key is derived from. */
  kekId: string;
  salt: string;
  /** HMAC of a fixed label under the archive key: tells "wrong key" apart from "damaged". */
  keyCheck: string;
}

export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

function archiveKey(masterKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, salt, 'telesalud backup archive v1', 32));
}

function keyCheckOf(key: Buffer): Buffer {
  return createHmac('sha256', key).update('telesalud backup key check').digest();
}

function nonce(index: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

function associatedData(headerDigest: Buffer, index: number, final: boolean): Buffer {
  const aad = Buffer.alloc(headerDigest.length + 9);
  headerDigest.copy(aad);
  aad.writeBigUInt64BE(BigInt(index), headerDigest.length);
  aad[headerDigest.length + 8] = final ? 1 : 0;
  return aad;
}

/** Encrypts a byte stream into the archive format (header first). */
export function sealArchive(keyRing: KeyRing, telesaludVersion: string): Transform {
  const kek = keyRing.current();
  const salt = randomBytes(32);
  const key = archiveKey(kek.key, salt);
  const header: ArchiveHeader = { format: 1, createdAt: new Date().toISOString(), telesaludVersion, kekId: kek.id, salt: salt.toString('base64'), keyCheck: keyCheckOf(key).toString('base64') };
  const headerBytes = Buffer.from(`${ARCHIVE_MAGIC}${JSON.stringify(header)}\n`);
  const digest = createHash('sha256').update(headerBytes).digest();
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let index = 0;

  const frame = (plaintext: Buffer, final: boolean): Buffer => {
    const cipher = createCipheriv('aes-256-gcm', key, nonce(index));
    cipher.setAAD(associatedData(digest, index, final));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    index += 1;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    return Buffer.concat([length, body]);
  };

  return new Transform({
    construct(callback) {
      this.push(headerBytes);
      callback();
    },
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      while (pendingBytes > FRAME_PLAINTEXT_BYTES) {
        const all = Buffer.concat(pending);
        this.push(frame(all.subarray(0, FRAME_PLAINTEXT_BYTES), false));
        pending = [all.subarray(FRAME_PLAINTEXT_BYTES)];
        pendingBytes = pending[0]!.length;
      }
      callback();
    },
    flush(callback: TransformCallback) {
      // The last frame is always written, even empty: its flag is what proves nothing was cut off.
      this.push(frame(Buffer.concat(pending), true));
      callback();
    },
  });
}

/**
 * Decrypts an archive stream, refusing a wrong key before any content and a damaged, reordered
 * or truncated archive at the frame where it happens. `onHeader` sees the header once it is read.
 */
export function openArchive(keyRing: KeyRing, onHeader?: (header: ArchiveHeader) => void): Transform {
  let buffered: Buffer = Buffer.alloc(0);
  let key: Buffer | undefined;
  let digest: Buffer | undefined;
  let index = 0;
  let sawFinal = false;

  const readHeader = (): boolean => {
    const end = buffered.indexOf(0x0a, ARCHIVE_MAGIC.length);
    if (end < 0) {
      if (buffered.length > MAX_HEADER_BYTES) throw new ArchiveError('not a telesalud backup: the header is missing or too long');
      return false;
    }
    if (buffered.subarray(0, ARCHIVE_MAGIC.length).toString('latin1') !== ARCHIVE_MAGIC) throw new ArchiveError('not a telesalud backup (or a newer format this version does not read)');
    let header: ArchiveHeader;
    try {
      header = JSON.parse(buffered.subarray(ARCHIVE_MAGIC.length, end).toString('utf8')) as ArchiveHeader;
    } catch {
      throw new ArchiveError('the backup header is damaged');
    }
    if (header.format !== 1 || typeof header.salt !== 'string' || typeof header.kekId !== 'string' || typeof header.keyCheck !== 'string') throw new ArchiveError('the backup header is damaged');
    let kek;
    try {
      kek = keyRing.byId(header.kekId);
    } catch {
      throw new ArchiveError(`wrong key: this backup was made with master key ${header.kekId}, which this installation's key ring (${keyRing.ids().join(', ')}) does not hold`);
    }
    const candidate = archiveKey(kek.key, Buffer.from(header.salt, 'base64'));
    const check = Buffer.from(header.keyCheck, 'base64');
    const expected = keyCheckOf(candidate);
    if (check.length !== expected.length || !timingSafeEqual(check, expected)) throw new ArchiveError('wrong key, or a damaged header: the archive key does not match');
    key = candidate;
    digest = createHash('sha256').update(buffered.subarray(0, end + 1)).digest();
    buffered = buffered.subarray(end + 1);
    onHeader?.(header);
    return true;
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
        if (!key && !readHeader()) return callback();
        while (buffered.length >= 4) {
          const length = buffered.readUInt32BE(0);
          if (length < TAG_BYTES || length > FRAME_PLAINTEXT_BYTES + TAG_BYTES) throw new ArchiveError(`the backup is damaged at frame ${index}`);
          if (buffered.length < 4 + length) break;
          if (sawFinal) throw new ArchiveError('the backup has data after its last frame');
          const body = buffered.subarray(4, 4 + length);
          buffered = buffered.subarray(4 + length);
          // Whether this frame is the last one is only known by trying: the writer's flag is in the AAD.
          const final = buffered.length === 0 ? tryOpen(body, true) ?? tryOpen(body, false) : tryOpen(body, false);
          if (!final) throw new ArchiveError(`the backup is damaged at frame ${index}: it fails its integrity check`);
          sawFinal = final.final;
          index += 1;
          this.push(final.plaintext);
        }
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback: TransformCallback) {
      if (!key) return callback(new ArchiveError('not a telesalud backup: the file ends before its header'));
      if (buffered.length > 0 || !sawFinal) return callback(new ArchiveError('the backup is truncated: its last frame is missing'));
      callback();
    },
  });

  function tryOpen(body: Buffer, final: boolean): { plaintext: Buffer; final: boolean } | undefined {
    const decipher = createDecipheriv('aes-256-gcm', key!, nonce(index));
    decipher.setAAD(associatedData(digest!, index, final));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      return { plaintext: Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]), final };
    } catch {
      return undefined;
    }
  }
}

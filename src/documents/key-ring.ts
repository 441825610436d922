import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { createSecretFileOnce, readSecretFile } from '../config/secret-file.js';

/** A key-encryption key (KEK): wraps the per-document data keys, never touches document content. */
export interface KeyEncryptionKey {
  /** First 16 hex chars of SHA-256(key): names the KEK in stored rows and errors without revealing it. */
  id: string;
  key: Buffer;
}

const KEY_BYTES = 32;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A stored row names a KEK that this ring does not hold (lost or retired key, or a wrong key file). */
export class UnknownKeyError extends Error {
  constructor(readonly kekId: string, known: string[]) {
    super(`unknown key-encryption key id "${kekId}"; this key ring holds ${known.map((id) => `"${id}"`).join(', ')}`);
    this.name = 'UnknownKeyError';
  }
}

export function kekFromBytes(key: Buffer): KeyEncryptionKey {
  if (key.length !== KEY_BYTES) {
    throw new Error(`a key-encryption key must be ${KEY_BYTES} bytes, got ${key.length}`);
  }
  // Copy so a caller that zeroes or reuses its buffer cannot change the ring underneath us.
  const own = Buffer.from(key);
  return { id: createHash('sha256').update(own).digest('hex').slice(0, 16), key: own };
}

/** The KEKs this process can use: `current` wraps new data keys, every one of them can unwrap. */
export class KeyRing {
  readonly #byId = new Map<string, KeyEncryptionKey>();
  readonly #current: KeyEncryptionKey;

  constructor(keks: KeyEncryptionKey[], currentId: string) {
    for (const kek of keks) {
      if (!this.#byId.has(kek.id)) this.#byId.set(kek.id, kek);
    }
    const current = this.#byId.get(currentId);
    if (!current) throw new UnknownKeyError(currentId, [...this.#byId.keys()]);
    this.#current = current;
  }

  current(): KeyEncryptionKey {
    return this.#current;
  }

  byId(id: string): KeyEncryptionKey {
    const kek = this.#byId.get(id);
    if (!kek) throw new UnknownKeyError(id, this.ids());
    return kek;
  }

  /** Current first, then older KEKs in the order they were given. */
  ids(): string[] {
    return [this.#current.id, ...[...this.#byId.keys()].filter((id) => id !== this.#current.id)];
  }
}

export interface LoadKeyRingOptions {
  /** From TELESALUD_MASTER_KEY: takes precedence over any key file. */
  masterKey?: Buffer;
  /** From TELESALUD_MASTER_KEY_FILE: must exist, it is never created. */
  masterKeyFile?: string;
  dataDir: string;
  /** Create `<dataDir>/master.key` on first start when it is missing. */
  createIfMissing: boolean;
}

export async function loadKeyRing(opts: LoadKeyRingOptions): Promise<KeyRing> {
  if (opts.masterKey) {
    const kek = kekFromBytes(opts.masterKey);
    return new KeyRing([kek], kek.id);
  }
  const file = opts.masterKeyFile ?? path.join(opts.dataDir, 'master.key');
  // An explicit key file that is missing is a misconfiguration: a fresh key would silently orphan every document.
  const mayCreate = opts.createIfMissing && opts.masterKeyFile === undefined;
  try {
    return await readKeyFile(file);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    if (!mayCreate) throw new Error(`${file}: key file not found`);
  }
  await createKeyFile(opts.dataDir, file);
  return readKeyFile(file);
}

async function readKeyFile(file: string): Promise<KeyRing> {
  const text = await readSecretFile(file, 'master key');

  const keks: KeyEncryptionKey[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // Error messages name the line, never its content: the content is key material.
    if (!STRICT_BASE64.test(line)) throw new Error(`${file}: line ${index + 1} is not base64`);
    const key = Buffer.from(line, 'base64');
    if (key.length !== KEY_BYTES) {
      throw new Error(`${file}: line ${index + 1} holds a ${key.length}-byte key; keys must be ${KEY_BYTES} bytes`);
    }
    keks.push(kekFromBytes(key));
    key.fill(0);
  }
  const first = keks[0];
  if (!first) throw new Error(`${file}: holds no key`);
  return new KeyRing(keks, first.id);
}

async function createKeyFile(dataDir: string, file: string): Promise<void> {
  const key = randomBytes(KEY_BYTES);
  const line = `${key.toString('base64')}\n`;
  key.fill(0);
  await createSecretFileOnce(dataDir, file, line);
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { createSecretFileOnce, readSecretFileSync } from '../config/secret-file.js';

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
  constructor(readonly kekId: string, known: string[], reloadError?: string) {
    super(`unknown key-encryption key id "${kekId}"; this key ring holds ${known.map((id) => `"${id}"`).join(', ')}${reloadError ? ` (re-reading the key file failed: ${reloadError})` : ''}`);
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

/**
 * Where a ring's keys come from, re-readable: `telesalud keys rotate` rewrites the key file while
 * nodes run, and a node picks the new file up without a restart.
 */
export interface KeyRingSource {
  /** Names the source in errors (a path or an environment variable), never its content. */
  readonly name: string;
  /** The key file behind it, when there is one: what `keys rotate` and `keys retire` rewrite. */
  readonly file?: string;
  /** Reads the keys afresh, synchronously: it runs inside the request that met an unknown key. */
  read(): { keks: KeyEncryptionKey[]; currentId: string };
  /** A cheap fingerprint (a file's inode, size and mtime): when it changes, read() may give something new. */
  version?(): string;
}

export interface KeyRingReloadOptions {
  /** When a row names a key the ring lacks and the source looks unchanged: at most one re-read per this interval. */
  unknownReloadMs?: number;
  /** How often current() checks whether the source changed, so new documents move to a new key. */
  refreshCheckMs?: number;
  now?: () => number;
  /** Told the ids after a re-read that changed the ring (ids only: never key material), or the reason it failed. */
  onReload?: (event: { ids: string[] } | { error: string }) => void;
}

const UNKNOWN_RELOAD_MS = 2_000;
const REFRESH_CHECK_MS = 30_000;

/** The KEKs this process can use: `current` wraps new data keys, every one of them can unwrap. */
export class KeyRing {
  #byId = new Map<string, KeyEncryptionKey>();
  #current!: KeyEncryptionKey;
  readonly #source: KeyRingSource | undefined;
  readonly #unknownReloadMs: number;
  readonly #refreshCheckMs: number;
  readonly #now: () => number;
  readonly #onReload: KeyRingReloadOptions['onReload'];
  #lastReload = 0;
  #lastCheck = 0;
  #version: string | undefined;
  #reloadError: string | undefined;

  constructor(keks: KeyEncryptionKey[], currentId: string, source?: KeyRingSource, options: KeyRingReloadOptions = {}) {
    this.#set(keks, currentId);
    this.#source = source;
    this.#unknownReloadMs = options.unknownReloadMs ?? UNKNOWN_RELOAD_MS;
    this.#refreshCheckMs = options.refreshCheckMs ?? REFRESH_CHECK_MS;
    this.#now = options.now ?? Date.now;
    this.#onReload = options.onReload;
    this.#version = source?.version?.();
    this.#lastCheck = this.#now();
  }

  /** A ring that re-reads `source` when it needs to; the first read happens here (and throws here). */
  static fromSource(source: KeyRingSource, options: KeyRingReloadOptions = {}): KeyRing {
    const version = source.version?.();
    const { keks, currentId } = source.read();
    const ring = new KeyRing(keks, currentId, source, options);
    // The version seen before the read: a change in between is caught by the next check.
    ring.#version = version;
    return ring;
  }

  /** The source this ring re-reads, if any (a key file: what `keys rotate` rewrites). */
  get source(): KeyRingSource | undefined {
    return this.#source;
  }

  current(): KeyEncryptionKey {
    this.#refreshIfChanged();
    return this.#current;
  }

  byId(id: string): KeyEncryptionKey {
    let kek = this.#byId.get(id);
    // Another node (or `keys rotate`) may have re-wrapped this row under a key that reached our file
    // since: re-read at once when the file changed, and otherwise at most once per interval.
    if (!kek && this.#source && (this.#changed() || this.#now() - this.#lastReload >= this.#unknownReloadMs)) {
      this.reload();
      kek = this.#byId.get(id);
    }
    if (!kek) throw new UnknownKeyError(id, this.ids(), this.#reloadError);
    return kek;
  }

  /** Current first, then older KEKs in the order they were given. */
  ids(): string[] {
    return [this.#current.id, ...[...this.#byId.keys()].filter((id) => id !== this.#current.id)];
  }

  /** Re-reads the source now. A source that fails to read leaves the ring as it was: true when it changed. */
  reload(): boolean {
    if (!this.#source) return false;
    this.#lastReload = this.#now();
    this.#lastCheck = this.#lastReload;
    let version: string | undefined;
    try {
      version = this.#source.version?.();
    } catch {
      version = undefined;
    }
    // Remembered even when the read fails: a broken file is retried when it changes (or per interval), not per request.
    this.#version = version;
    try {
      const { keks, currentId } = this.#source.read();
      const before = this.ids().join(',');
      this.#set(keks, currentId);
      this.#reloadError = undefined;
      const changed = this.ids().join(',') !== before;
      if (changed) this.#onReload?.({ ids: this.ids() });
      return changed;
    } catch (err) {
      // Keep serving with the keys we have; the reason shows in the next UnknownKeyError.
      this.#reloadError = err instanceof Error ? err.message : String(err);
      this.#onReload?.({ error: this.#reloadError });
      return false;
    }
  }

  #refreshIfChanged(): void {
    if (!this.#source?.version || this.#now() - this.#lastCheck < this.#refreshCheckMs) return;
    this.#lastCheck = this.#now();
    if (this.#changed()) this.reload();
  }

  /** Whether the source looks different from what was last read (a stat, not a read). */
  #changed(): boolean {
    if (!this.#source?.version) return false;
    try {
      return this.#source.version() !== this.#version;
    } catch {
      return false; // a key file briefly unreadable: keep the keys we have
    }
  }

  #set(keks: KeyEncryptionKey[], currentId: string): void {
    const byId = new Map<string, KeyEncryptionKey>();
    for (const kek of keks) {
      if (!byId.has(kek.id)) byId.set(kek.id, kek);
    }
    const current = byId.get(currentId);
    if (!current) throw new UnknownKeyError(currentId, [...byId.keys()]);
    this.#byId = byId;
    this.#current = current;
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

export async function loadKeyRing(opts: LoadKeyRingOptions & KeyRingReloadOptions): Promise<KeyRing> {
  if (opts.masterKey) {
    const kek = kekFromBytes(opts.masterKey);
    return new KeyRing([kek], kek.id);
  }
  const file = masterKeyFilePath(opts);
  const source = keyFileSource(file);
  // An explicit key file that is missing is a misconfiguration: a fresh key would silently orphan every document.
  const mayCreate = opts.createIfMissing && opts.masterKeyFile === undefined;
  try {
    return KeyRing.fromSource(source, opts);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    if (!mayCreate) throw new Error(`${file}: key file not found`);
  }
  await createKeyFile(opts.dataDir, file);
  return KeyRing.fromSource(source, opts);
}

/** The key file a ring loads from (and `keys rotate` rewrites): TELESALUD_MASTER_KEY_FILE or `<dataDir>/master.key`. */
export function masterKeyFilePath(opts: { masterKeyFile?: string | undefined; dataDir: string }): string {
  return opts.masterKeyFile ?? path.join(opts.dataDir, 'master.key');
}

/** A key file as a ring source: every read goes through the permission check. */
export function keyFileSource(file: string): KeyRingSource {
  return {
    name: file,
    file,
    read: () => parseKeyFile(readSecretFileSync(file, 'master key'), file),
    version() {
      try {
        const stat = statSync(file);
        return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
      } catch {
        return 'missing';
      }
    },
  };
}

/** One base64 key a line, first = current; blank lines and `#` comments ignored. */
export function parseKeyFile(text: string, file: string): { keks: KeyEncryptionKey[]; currentId: string } {
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
  return { keks, currentId: first.id };
}

/** The text of a key file holding `keks` in this order (the first becomes current). */
export function formatKeyFile(keks: KeyEncryptionKey[], comment: string): string {
  return [`# ${comment}`, '# telesalud master keys: the first wraps new document keys, the others still unwrap old ones.', ...keks.map((k) => k.key.toString('base64')), ''].join('\n');
}

export function newKek(): KeyEncryptionKey {
  const key = randomBytes(KEY_BYTES);
  try {
    return kekFromBytes(key);
  } finally {
    key.fill(0);
  }
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

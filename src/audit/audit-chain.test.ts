import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalEntry, chainHash, GENESIS_HASH, storableDetail, storableText, type ChainedFields } from './audit-chain.js';
import { checkCheckpointSignature, signCheckpoint } from './audit-checkpoint.js';
import { AUDIT_PUBLIC_KEY_FILE, AUDIT_SIGNING_KEY_FILE, loadAuditSigningKey, parseAuditPublicKey, parseAuditSigningKey } from './audit-signing-key.js';

const entry: ChainedFields = {
  seq: 1,
  recorded: '2025-01-02T03:04:05.678Z',
  actor: 'Practitioner/p1',
  action: 'read',
  resourceType: 'Patient',
  resourceId: 'a1',
  patient: 'Patient/a1',
  outcome: 'success',
  source: '10.0.0.1',
  requestId: 'req-1',
  detail: { results: 2, b: [1, 'ñ'], a: null },
};

describe('audit chain format 1', () => {
  it('serialises an entry as a fixed-order JSON array with sorted detail keys (frozen: rows hashed with it exist)', () => {
    expect(canonicalEntry(entry)).toBe(
      '["telesalud-audit/1",1,"2025-01-02T03:04:05.678Z","Practitioner/p1","read","Patient","a1","Patient/a1","success","10.0.0.1","req-1",{"a":null,"b":[1,"ñ"],"results":2}]',
    );
    // Same value as `(head -c 32 /dev/zero; printf '%s' "$canonical") | sha256sum`.
    expect(chainHash(GENESIS_HASH, entry).toString('hex')).toBe('1bf8eb009b7665f470ba0e1a48476c9897d5d22fdd09325df938f649cffa7faa');
  });

  it('does not depend on the key order jsonb gives back, but on every field, the position and the previous hash', () => {
    const base = chainHash(GENESIS_HASH, entry);
    expect(chainHash(GENESIS_HASH, { ...entry, detail: { a: null, results: 2, b: [1, 'ñ'] } }).equals(base)).toBe(true);
    const variants: ChainedFields[] = [
      { ...entry, seq: 2 },
      { ...entry, recorded: '2025-01-02T03:04:05.679Z' },
      { ...entry, actor: 'Practitioner/p2' },
      { ...entry, action: 'update' },
      { ...entry, resourceType: null },
      { ...entry, resourceId: 'a2' },
      { ...entry, patient: null },
      { ...entry, outcome: 'denied' },
      { ...entry, source: '10.0.0.2' },
      { ...entry, requestId: null },
      { ...entry, detail: null },
      { ...entry, detail: { results: 3, b: [1, 'ñ'], a: null } },
      // null and "null" must differ: no field can pass for another value.
      { ...entry, patient: 'null' as string | null, resourceId: null },
    ];
    const hashes = new Set([base.toString('hex'), ...variants.map((v) => chainHash(GENESIS_HASH, v).toString('hex'))]);
    expect(hashes.size).toBe(variants.length + 1);
    expect(chainHash(Buffer.alloc(32, 1), entry).equals(base)).toBe(false);
  });

  it('replaces what PostgreSQL would refuse to store (NUL, unpaired surrogates), in text and in detail keys and values', () => {
    expect(storableText('a\u0000b')).toBe('a\ufffdb');
    expect(storableText('x\ud800y')).toBe('x\ufffdy');
    expect(storableText('x\udc00')).toBe('x\ufffd');
    expect(storableText('emoji 😀 ok')).toBe('emoji 😀 ok');
    expect(storableText('twice \u0000\u0000')).toBe('twice \ufffd\ufffd');
    const detail = storableDetail({ 'k\u0000': ['v\ud800'], skip: undefined, n: 1.5, nested: { ...(JSON.parse('{"__proto__":"x"}') as object), date: new Date('2025-01-01T00:00:00Z') } }) as Record<string, unknown>;
    expect(JSON.stringify(detail)).toBe('{"k\ufffd":["v\ufffd"],"n":1.5,"nested":{"__proto__":"x","date":"2025-01-01T00:00:00.000Z"}}');
    expect(storableDetail(undefined)).toBeNull();
  });
});

describe('audit checkpoints', () => {
  const key = parseAuditSigningKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'test');
  const other = parseAuditSigningKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'test');
  const keys = new Map([[key.keyId, key]]);
  const hash = chainHash(GENESIS_HASH, entry);

  it('signs (seq, hash, time, key) so that any change to them is refused', () => {
    const cp = signCheckpoint(key, 41, hash, new Date('2025-01-02T03:04:05.678Z'));
    expect(checkCheckpointSignature(keys, cp)).toEqual({ ok: true });
    expect(checkCheckpointSignature(keys, { ...cp, seq: 40 }).ok).toBe(false);
    expect(checkCheckpointSignature(keys, { ...cp, hash: Buffer.alloc(32) }).ok).toBe(false);
    expect(checkCheckpointSignature(keys, { ...cp, signedAt: '2025-01-02T03:04:05.679Z' }).ok).toBe(false);
    expect(checkCheckpointSignature(keys, { ...cp, signature: Buffer.alloc(64) }).ok).toBe(false);
    expect(checkCheckpointSignature(keys, { ...cp, signature: Buffer.alloc(3) }).ok).toBe(false);
  });

  it('refuses a checkpoint signed by a key that is not trusted, naming the key', () => {
    const forged = signCheckpoint(other, 41, hash, new Date());
    const check = checkCheckpointSignature(keys, forged);
    expect(check.ok).toBe(false);
    expect(!check.ok && check.reason).toContain(other.keyId);
    // Claiming the trusted key's id does not help either.
    expect(checkCheckpointSignature(keys, { ...forged, keyId: key.keyId }).ok).toBe(false);
  });
});

describe('audit signing key', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    while (dirs.length) await rm(dirs.pop()!, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-audit-key-'));
    dirs.push(dir);
    return dir;
  };

  it('is generated once in the data dir (0600, with its public key beside it) and reused', async () => {
    const dataDir = await tempDir();
    expect(await loadAuditSigningKey({ dataDir, createIfMissing: false })).toBeUndefined();
    const first = await loadAuditSigningKey({ dataDir, createIfMissing: true });
    const again = await loadAuditSigningKey({ dataDir, createIfMissing: true });
    expect(first?.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(again?.keyId).toBe(first?.keyId);
    expect((await stat(path.join(dataDir, AUDIT_SIGNING_KEY_FILE))).mode & 0o777).toBe(0o600);
    const pub = parseAuditPublicKey(await readFile(path.join(dataDir, AUDIT_PUBLIC_KEY_FILE), 'utf8'), 'pub');
    expect(pub.keyId).toBe(first?.keyId);
  });

  it('two processes starting at once end up with one key', async () => {
    const dataDir = await tempDir();
    const keys = await Promise.all(Array.from({ length: 6 }, () => loadAuditSigningKey({ dataDir, createIfMissing: true })));
    expect(new Set(keys.map((k) => k?.keyId)).size).toBe(1);
  });

  it('comes from TELESALUD_AUDIT_SIGNING_KEY (base64 of the PKCS#8 PEM) before any file', async () => {
    const dataDir = await tempDir();
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const fromEnv = await loadAuditSigningKey({ dataDir, envValue: Buffer.from(pem).toString('base64'), createIfMissing: true });
    expect(fromEnv?.keyId).toBe(parseAuditSigningKey(pem, 'pem').keyId);
    await expect(stat(path.join(dataDir, AUDIT_SIGNING_KEY_FILE))).rejects.toThrow();
  });

  it('refuses a key that is not Ed25519, not a key, or readable by others — without quoting it', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(() => parseAuditSigningKey(Buffer.from(rsa).toString('base64'), 'TELESALUD_AUDIT_SIGNING_KEY')).toThrow(/must be Ed25519/);
    expect(() => parseAuditSigningKey('bm90IGEga2V5', 'TELESALUD_AUDIT_SIGNING_KEY')).toThrow(/^TELESALUD_AUDIT_SIGNING_KEY: not a PKCS#8 private key/);
    const dataDir = await tempDir();
    await loadAuditSigningKey({ dataDir, createIfMissing: true });
    const file = path.join(dataDir, AUDIT_SIGNING_KEY_FILE);
    await chmod(file, 0o644);
    await expect(loadAuditSigningKey({ dataDir, createIfMissing: true })).rejects.toThrow(/chmod 600/);
    await writeFile(file, 'garbage', { mode: 0o600 });
    await chmod(file, 0o600);
    await expect(loadAuditSigningKey({ dataDir, createIfMissing: true })).rejects.toThrow(/not a PKCS#8 private key/);
  });
});

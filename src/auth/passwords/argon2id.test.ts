import { hash as rawArgon2Hash, type Algorithm } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';
import {
  ARGON2ID_PARAMS,
  InvalidPasswordHashError,
  MAX_PASSWORD_INPUT_UNITS,
  hashPassword,
  isArgon2Hash,
  needsRehash,
  verifyPassword,
} from './argon2id.js';

// Real parameters: each hash or verify below costs ~60 ms, so the count is kept low.
const PASSWORD = 'el perro come manzanas verdes';

describe('argon2id password hashing', () => {
  it('hashes with argon2id v1.3 and the stated parameters, salted', async () => {
    expect(ARGON2ID_PARAMS).toEqual({ memoryKiB: 65_536, iterations: 3, parallelism: 1, outputBytes: 32 });
    const [a, b] = await Promise.all([hashPassword(PASSWORD), hashPassword(PASSWORD)]);
    // 16-byte salt → 22 base64 characters, 32-byte hash → 43.
    expect(a).toMatch(/^\$argon2id\$v=19\$m=65536,t=3,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(b).not.toBe(a);
    expect(needsRehash(a)).toBe(false);

    expect(await verifyPassword(a, PASSWORD)).toBe(true);
    expect(await verifyPassword(b, PASSWORD)).toBe(true);
    const wrong = ['', 'el perro come manzanas verde', 'El perro come manzanas verdes', `${PASSWORD} `, 'x'.repeat(64)];
    const results = await Promise.all(wrong.map((w) => verifyPassword(a, w)));
    expect(results).toEqual(wrong.map(() => false));
  });

  it('treats the same text in composed and decomposed Unicode as one password', async () => {
    const composed = 'Mañana señalé el camión'.normalize('NFC');
    const decomposed = composed.normalize('NFD');
    expect(decomposed).not.toBe(composed);
    const stored = await hashPassword(decomposed);
    expect(await verifyPassword(stored, composed)).toBe(true);
  });

  it('asks for a rehash when the parameters or the variant change', async () => {
    const weaker = await hashPassword(PASSWORD, { ...ARGON2ID_PARAMS, memoryKiB: 1024, iterations: 1 });
    expect(weaker).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
    expect(needsRehash(weaker)).toBe(true);
    expect(await verifyPassword(weaker, PASSWORD)).toBe(true); // still signs in, then gets rehashed

    const argon2i = await rawArgon2Hash(PASSWORD, { algorithm: 1 as Algorithm, memoryCost: 65_536, timeCost: 3, parallelism: 1 });
    expect(argon2i.startsWith('$argon2i$')).toBe(true);
    expect(needsRehash(argon2i)).toBe(true);

    expect(needsRehash('not a hash')).toBe(true);
    expect(needsRehash('$2b$12$abcdefghijklmnopqrstuuJ1JuZ3b1Qx3Q2o1nE5lT7oX3mVZ5Gm')).toBe(true);
  });

  it('answers false for an unknown account, after spending a verify', async () => {
    const started = performance.now();
    expect(await verifyPassword(null, PASSWORD)).toBe(false);
    expect(await verifyPassword(null, '')).toBe(false);
    // The dummy hash uses the real parameters: not a free, instant "no".
    expect(performance.now() - started).toBeGreaterThan(5);
  });

  it('refuses damaged hashes loudly and over-long input at once', async () => {
    await expect(verifyPassword('$argon2id$v=19$m=65536,t=3,p=1$garbage', PASSWORD)).rejects.toBeInstanceOf(InvalidPasswordHashError);
    await expect(verifyPassword('', PASSWORD)).rejects.toBeInstanceOf(InvalidPasswordHashError);
    expect(isArgon2Hash('plain text')).toBe(false);

    const huge = 'a'.repeat(MAX_PASSWORD_INPUT_UNITS + 1);
    const stored = '$argon2id$v=19$m=65536,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$4gHqUHbNHmHs1zqcTzKxhH0cBqwr6fFhLJ7LE9Udxic';
    const started = performance.now();
    expect(await verifyPassword(stored, huge)).toBe(false);
    expect(performance.now() - started).toBeLessThan(20);
    await expect(hashPassword(huge)).rejects.toBeInstanceOf(RangeError);
  });
});

import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { HOTP, Secret, TOTP, URI } from 'otpauth';
import { describe, expect, it, vi } from 'vitest';
import {
  currentTotpCode,
  newTotpSecret,
  normaliseTotpSecret,
  openTotpSecret,
  resealTotpSecret,
  sealTotpSecret,
  totpEnrolment,
  totpStep,
  verifyTotp,
} from './totp.js';

/** RFC 6238 appendix B: the SHA-1 seed "12345678901234567890" (ASCII), in base32. */
const RFC_SECRET = Secret.fromLatin1('12345678901234567890').base32;
const at = (seconds: number) => new Date(seconds * 1000);

describe('newTotpSecret', () => {
  it('is 160 bits of base32 and different every time', () => {
    const secrets = new Set(Array.from({ length: 200 }, () => newTotpSecret()));
    expect(secrets.size).toBe(200);
    for (const s of secrets) {
      expect(s).toMatch(/^[A-Z2-7]{32}$/);
      expect(Secret.fromBase32(s).bytes.length).toBe(20);
    }
  });
});

describe('RFC 6238 test vectors (SHA-1, truncated to 6 digits)', () => {
  // Appendix B gives 8-digit codes; a 6-digit code is the same value mod 10^6, i.e. its last six digits.
  const vectors: Array<[number, string]> = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ];
  it.each(vectors)('T=%i → %s', (seconds, eight) => {
    const six = eight.slice(-6);
    expect(currentTotpCode(RFC_SECRET, at(seconds))).toBe(six);
    expect(verifyTotp(RFC_SECRET, six, { now: at(seconds) })).toEqual({ ok: true, step: Math.floor(seconds / 30) });
  });

  it('agrees with otpauth\'s own TOTP for random secrets and times', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.integer({ min: 0, max: 4_000_000_000 }), (bytes, seconds) => {
        const secret = new Secret({ buffer: bytes.slice().buffer });
        const expected = TOTP.generate({ secret, timestamp: seconds * 1000 });
        expect(currentTotpCode(secret.base32, at(seconds))).toBe(expected);
      }),
    );
  });
});

describe('verifyTotp', () => {
  const secret = newTotpSecret();
  const now = new Date('2025-03-01T10:00:10Z');
  const step = totpStep(now);
  const codeAt = (offsetSteps: number) => currentTotpCode(secret, new Date(now.getTime() + offsetSteps * 30_000));

  it('accepts the current code and returns its step', () => {
    expect(verifyTotp(secret, codeAt(0), { now })).toEqual({ ok: true, step });
  });

  it('accepts ±1 step of drift and refuses ±2', () => {
    expect(verifyTotp(secret, codeAt(-1), { now })).toEqual({ ok: true, step: step - 1 });
    expect(verifyTotp(secret, codeAt(1), { now })).toEqual({ ok: true, step: step + 1 });
    // (a ±2 code could collide with one inside the window with probability ~3·10^-6; the
    // secret is random per run, so guard the assertion rather than let it flake)
    for (const off of [-2, 2]) {
      const c = codeAt(off);
      if ([-1, 0, 1].some((o) => codeAt(o) === c)) continue;
      expect(verifyTotp(secret, c, { now })).toEqual({ ok: false, reason: 'invalid' });
    }
  });

  it('window 0 accepts only the current step', () => {
    expect(verifyTotp(secret, codeAt(0), { now, window: 0 }).ok).toBe(true);
    const prev = codeAt(-1);
    if (prev !== codeAt(0)) expect(verifyTotp(secret, prev, { now, window: 0 })).toEqual({ ok: false, reason: 'invalid' });
    expect(() => verifyTotp(secret, codeAt(0), { now, window: 10 })).toThrow(RangeError);
  });

  it('refuses a wrong code', () => {
    const valid = new Set([-1, 0, 1].map(codeAt));
    const wrong = ['000000', '123456', '999999'].find((c) => !valid.has(c))!;
    expect(verifyTotp(secret, wrong, { now })).toEqual({ ok: false, reason: 'invalid' });
  });

  it('refuses a replayed code: the same step, and an older one', () => {
    const first = verifyTotp(secret, codeAt(0), { now });
    expect(first.ok).toBe(true);
    const lastUsedStep = first.ok ? first.step : -1;
    expect(verifyTotp(secret, codeAt(0), { now, lastUsedStep })).toEqual({ ok: false, reason: 'replayed' });
    // an older code still inside the drift window
    if (codeAt(-1) !== codeAt(0)) expect(verifyTotp(secret, codeAt(-1), { now, lastUsedStep })).toEqual({ ok: false, reason: 'replayed' });
    // the next step's code is fine, and then its own replay is refused
    const next = new Date(now.getTime() + 30_000);
    const second = verifyTotp(secret, codeAt(1), { now: next, lastUsedStep });
    expect(second).toEqual({ ok: true, step: step + 1 });
    expect(verifyTotp(secret, codeAt(1), { now: next, lastUsedStep: step + 1 })).toEqual({ ok: false, reason: 'replayed' });
  });

  it('a code accepted early (clock ahead) cannot be reused when its step arrives', () => {
    const early = verifyTotp(secret, codeAt(1), { now });
    expect(early).toEqual({ ok: true, step: step + 1 });
    const later = new Date(now.getTime() + 30_000);
    expect(verifyTotp(secret, codeAt(1), { now: later, lastUsedStep: step + 1 })).toEqual({ ok: false, reason: 'replayed' });
  });

  it('normalises spaces', () => {
    const c = codeAt(0);
    expect(verifyTotp(secret, `${c.slice(0, 3)} ${c.slice(3)}`, { now }).ok).toBe(true);
    expect(verifyTotp(secret, ` ${c}\t\n`, { now }).ok).toBe(true);
  });

  it.each(['12a456', '', '1234567', '12345', '12-456', '１２３４５６', '١٢٣٤٥٦', '123456'.repeat(20), '0x1234'])('refuses malformed %j', (bad) => {
    expect(verifyTotp(secret, bad, { now })).toEqual({ ok: false, reason: 'malformed' });
  });

  it('refuses non-string input as malformed rather than crashing', () => {
    expect(verifyTotp(secret, 123456 as unknown as string, { now })).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyTotp(secret, undefined as unknown as string, { now })).toEqual({ ok: false, reason: 'malformed' });
  });

  it('refuses malformed input before computing any HMAC', () => {
    const spy = vi.spyOn(HOTP, 'generate');
    try {
      expect(verifyTotp(secret, '12a456', { now }).ok).toBe(false);
      expect(spy).not.toHaveBeenCalled();
      verifyTotp(secret, '123456', { now });
      expect(spy).toHaveBeenCalledTimes(3); // the whole window, no early exit
    } finally {
      spy.mockRestore();
    }
  });

  it('a bad secret is a programming error, not a wrong code', () => {
    expect(() => verifyTotp('not base32!', '123456')).toThrow(TypeError);
  });

  it('never accepts anything but the window\'s codes (property)', () => {
    const valid = new Set([-1, 0, 1].map(codeAt));
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (input) => {
        const r = verifyTotp(secret, input, { now });
        if (r.ok) expect(valid.has(input.replace(/\s+/g, ''))).toBe(true);
      }),
    );
  });

  it('rejects a non-integer lastUsedStep', () => {
    expect(() => verifyTotp(secret, codeAt(0), { now, lastUsedStep: 1.5 })).toThrow(TypeError);
    expect(verifyTotp(secret, codeAt(0), { now, lastUsedStep: null }).ok).toBe(true);
  });
});

describe('secrets', () => {
  it('normalises case, spaces and padding, and refuses short or non-base32 secrets', () => {
    const s = newTotpSecret();
    expect(normaliseTotpSecret(s.toLowerCase().replace(/(.{4})/g, '$1 '))).toBe(s);
    expect(normaliseTotpSecret(`${RFC_SECRET}====`)).toBe(RFC_SECRET);
    expect(() => normaliseTotpSecret('JBSWY3DPEHPK3PXP')).toThrow(/128 bits/); // 80 bits
    expect(() => normaliseTotpSecret('01234567890123456789012345678901')).toThrow(TypeError);
    expect(() => normaliseTotpSecret('')).toThrow(TypeError);
  });
});

describe('totpEnrolment', () => {
  it('builds a key URI with issuer, account, secret, algorithm, digits and period, and an SVG QR code', async () => {
    const secret = newTotpSecret();
    const { uri, qrSvg } = await totpEnrolment(secret, { issuer: 'telesalud', account: 'dra.garcía+1@example.org' });
    const u = new URL(uri);
    expect(u.protocol).toBe('otpauth:');
    expect(u.host).toBe('totp');
    expect(decodeURIComponent(u.pathname)).toBe('/telesalud:dra.garcía+1@example.org');
    expect(u.searchParams.get('issuer')).toBe('telesalud');
    expect(u.searchParams.get('secret')).toBe(secret);
    expect(u.searchParams.get('algorithm')).toBe('SHA1');
    expect(u.searchParams.get('digits')).toBe('6');
    expect(u.searchParams.get('period')).toBe('30');
    // The URI round-trips through otpauth's parser to the same generator.
    const parsed = URI.parse(uri);
    expect(parsed).toBeInstanceOf(TOTP);
    expect((parsed as TOTP).generate({ timestamp: 1e12 })).toBe(currentTotpCode(secret, new Date(1e12)));

    expect(qrSvg.trimStart()).toMatch(/^<svg/);
    expect(qrSvg).toContain('</svg>');
    expect(qrSvg).not.toMatch(/<script|href|<image|url\(/i);
  });

  it('refuses an issuer with ":" or an empty account', async () => {
    await expect(totpEnrolment(newTotpSecret(), { issuer: 'tele:salud', account: 'a@b.c' })).rejects.toThrow(TypeError);
    await expect(totpEnrolment(newTotpSecret(), { issuer: 'telesalud', account: '' })).rejects.toThrow(TypeError);
  });
});

describe('sealTotpSecret / openTotpSecret', () => {
  const key = randomBytes(32);
  const secret = newTotpSecret();

  it('round-trips, in the compact v1 format, with a fresh nonce each time', () => {
    const sealed = sealTotpSecret(secret, key);
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(sealed).not.toContain(secret);
    expect(openTotpSecret(sealed, key)).toBe(secret);
    expect(sealTotpSecret(secret, key)).not.toBe(sealed);
  });

  it('throws on a wrong key', () => {
    expect(() => openTotpSecret(sealTotpSecret(secret, key), randomBytes(32))).toThrow(/authentication failed/);
  });

  it('throws on any tampering with nonce, ciphertext or tag', () => {
    const sealed = sealTotpSecret(secret, key);
    const parts = sealed.split('.');
    for (const i of [1, 2, 3]) {
      const bytes = Buffer.from(parts[i]!, 'base64url');
      for (const pos of [0, bytes.length - 1]) {
        const t = Buffer.from(bytes);
        t[pos]! ^= 0x01;
        const forged = parts.map((p, j) => (j === i ? t.toString('base64url') : p)).join('.');
        expect(() => openTotpSecret(forged, key)).toThrow();
      }
    }
  });

  it('throws on malformed input', () => {
    const sealed = sealTotpSecret(secret, key);
    for (const bad of ['', 'v1', 'v2' + sealed.slice(2), sealed + '.x', sealed.replace(/\.[^.]+$/, '.'), sealed.replace('.', '.!'), 'v1...']) {
      expect(() => openTotpSecret(bad, key)).toThrow();
    }
    expect(() => sealTotpSecret(secret, randomBytes(16))).toThrow(/32-byte/);
  });

  it('binds to an owner when asked: a sealed secret moved to another account does not open', () => {
    const sealed = sealTotpSecret(secret, key, 'user-1');
    expect(openTotpSecret(sealed, key, 'user-1')).toBe(secret);
    expect(() => openTotpSecret(sealed, key, 'user-2')).toThrow();
    expect(() => openTotpSecret(sealed, key)).toThrow();
    expect(() => openTotpSecret(sealTotpSecret(secret, key), key, 'user-1')).toThrow();
  });

  it('reseals under a new key for key rotation', () => {
    const newKey = randomBytes(32);
    const resealed = resealTotpSecret(sealTotpSecret(secret, key, 'u'), key, newKey, 'u');
    expect(openTotpSecret(resealed, newKey, 'u')).toBe(secret);
    expect(() => openTotpSecret(resealed, key, 'u')).toThrow();
  });
});

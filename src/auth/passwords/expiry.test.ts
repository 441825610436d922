import { describe, expect, it } from 'vitest';
import { passwordExpiry } from './expiry.js';
import { DEFAULT_PASSWORD_POLICY, parsePasswordPolicy, type PasswordRole } from './policy.js';

const DAY = 86_400_000;
const changedAt = new Date('2025-03-01T09:30:00Z');
const at = (days: number): Date => new Date(changedAt.getTime() + days * DAY);

describe('password expiry', () => {
  it('never expires patients by default', () => {
    expect(passwordExpiry(changedAt, 'patient', DEFAULT_PASSWORD_POLICY, at(3650))).toEqual({
      expiresAt: null,
      expired: false,
      warn: false,
      daysLeft: null,
    });
  });

  it.each(['clinician', 'reception', 'admin'] as const)('expires %s after 180 days, warning in the last 14', (role) => {
    const check = (days: number) => passwordExpiry(changedAt, role, DEFAULT_PASSWORD_POLICY, at(days));
    expect(check(0)).toEqual({ expiresAt: at(180), expired: false, warn: false, daysLeft: 180 });
    expect(check(165)).toMatchObject({ expired: false, warn: false, daysLeft: 15 });
    expect(check(166)).toMatchObject({ expired: false, warn: true, daysLeft: 14 });
    expect(check(179.99)).toMatchObject({ expired: false, warn: true, daysLeft: 1 });
    expect(check(180)).toMatchObject({ expired: true, warn: false, daysLeft: 0 });
    expect(check(400)).toMatchObject({ expired: true, warn: false, daysLeft: 0 });
    // A clock that says the change is in the future (skew) is simply not expired.
    expect(check(-1)).toMatchObject({ expired: false, warn: false, daysLeft: 181 });
  });

  it('follows an admin policy per role', () => {
    const policy = parsePasswordPolicy({ expiryDays: { patient: 365, clinician: 90, admin: 30 }, warningDays: 7 });
    expect(passwordExpiry(changedAt, 'patient', policy, at(360))).toMatchObject({ expiresAt: at(365), warn: true, expired: false });
    expect(passwordExpiry(changedAt, 'clinician', policy, at(82))).toMatchObject({ expiresAt: at(90), warn: false });
    expect(passwordExpiry(changedAt, 'clinician', policy, at(83))).toMatchObject({ warn: true });
    expect(passwordExpiry(changedAt, 'admin', policy, at(30))).toMatchObject({ expiresAt: at(30), expired: true });
    const noWarning = parsePasswordPolicy({ warningDays: 0 });
    expect(passwordExpiry(changedAt, 'admin', noWarning, at(179.9))).toMatchObject({ warn: false, expired: false });
  });

  it('refuses a role the policy does not know', () => {
    expect(() => passwordExpiry(changedAt, 'visitor' as PasswordRole, DEFAULT_PASSWORD_POLICY, at(1))).toThrow(/visitor/);
  });
});

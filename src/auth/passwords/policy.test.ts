import { describe, expect, it } from 'vitest';
import { DEFAULT_PASSWORD_POLICY, PasswordPolicyError, parsePasswordPolicy } from './policy.js';

function issuesOf(input: unknown): { field: string; message: string }[] {
  try {
    parsePasswordPolicy(input);
  } catch (err) {
    expect(err).toBeInstanceOf(PasswordPolicyError);
    expect((err as Error).message).not.toContain('\n');
    return [...(err as PasswordPolicyError).issues];
  }
  throw new Error(`policy was accepted: ${JSON.stringify(input)}`);
}

describe('password policy', () => {
  it('defaults to the values of issue 3', () => {
    expect(DEFAULT_PASSWORD_POLICY).toEqual({
      minLength: 12,
      maxLength: 128,
      minScore: 3,
      historySize: 5,
      expiryDays: { patient: null, clinician: 180, reception: 180, admin: 180 },
      warningDays: 14,
      contextWords: [],
    });
    expect(Object.isFrozen(DEFAULT_PASSWORD_POLICY)).toBe(true);
    expect(Object.isFrozen(DEFAULT_PASSWORD_POLICY.expiryDays)).toBe(true);
  });

  it('lets an admin change one value at a time, keeping the rest', () => {
    const policy = parsePasswordPolicy({ minLength: 14, expiryDays: { clinician: 90 }, contextWords: [' Hospital San Juan '] });
    expect(policy).toEqual({
      ...DEFAULT_PASSWORD_POLICY,
      minLength: 14,
      expiryDays: { patient: null, clinician: 90, reception: 180, admin: 180 },
      contextWords: ['Hospital San Juan'],
    });
    expect(parsePasswordPolicy({})).toEqual(DEFAULT_PASSWORD_POLICY);
    // Stricter is always fine; so is turning expiry on for patients or off for staff.
    expect(parsePasswordPolicy({ minScore: 4, historySize: 24, expiryDays: { patient: 365, admin: null } }).expiryDays)
      .toEqual({ patient: 365, clinician: 180, reception: 180, admin: null });
    // Changes apply on top of a given base, e.g. the policy currently in force.
    expect(parsePasswordPolicy({ minLength: 64, maxLength: 64 })).toMatchObject({ minLength: 64, maxLength: 64 });
    const current = parsePasswordPolicy({ minLength: 16 });
    expect(parsePasswordPolicy({ warningDays: 7 }, current)).toMatchObject({ minLength: 16, warningDays: 7 });
  });

  it.each([
    [{ minLength: 7 }, 'minLength'],
    [{ minLength: 12.5 }, 'minLength'],
    [{ minLength: '12' }, 'minLength'],
    [{ minScore: 1 }, 'minScore'],
    [{ minScore: 5 }, 'minScore'],
    [{ historySize: -1 }, 'historySize'],
    [{ maxLength: 32 }, 'maxLength'],
    [{ maxLength: 1_000_000 }, 'maxLength'],
    [{ warningDays: -1 }, 'warningDays'],
    [{ warningDays: 14, expiryDays: { clinician: 10 } }, 'warningDays'],
    [{ expiryDays: { clinician: 0 } }, 'expiryDays.clinician'],
    [{ expiryDays: { clinician: '180' } }, 'expiryDays.clinician'],
    [{ expiryDays: { visitor: 90 } }, 'expiryDays.visitor'],
    [{ expiryDays: [180] }, 'expiryDays'],
    [{ contextWords: 'hospital' }, 'contextWords'],
    [{ contextWords: ['ok', ''] }, 'contextWords.1'],
    [{ minLenght: 6 }, 'minLenght'],
  ])('refuses %j, naming %s', (input, field) => {
    expect(issuesOf(input).map((i) => i.field)).toContain(field);
  });

  it('refuses what is not an object', () => {
    for (const input of [null, 12, 'strict', [], undefined]) expect(issuesOf(input)[0]?.field).toBe('(policy)');
  });

  it('reports every problem at once, each with its field', () => {
    const issues = issuesOf({ minLength: 4, minScore: 0, historySize: -5, maxLength: 10_000, colour: 'red' });
    expect(issues.map((i) => i.field).sort()).toEqual(['colour', 'historySize', 'maxLength', 'minLength', 'minScore']);
    expect(issues.find((i) => i.field === 'minLength')?.message).toBe('must be a whole number from 8 to 64');
  });
});

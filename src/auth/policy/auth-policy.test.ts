import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { AuthPolicyError, AuthPolicyStore, DEFAULT_AUTH_POLICY, parseAuthPolicy } from './auth-policy.js';

describe('parseAuthPolicy', () => {
  it('changes only the fields given and keeps the rest', () => {
    const policy = parseAuthPolicy({ password: { historySize: 8 }, sessions: { absoluteHours: 8 } });
    expect(policy.password.historySize).toBe(8);
    expect(policy.password.minLength).toBe(12);
    expect(policy.session).toEqual({ idleMinutes: { patient: 30, clinician: 15, reception: 15, admin: 15 }, absoluteHours: 8 });
    expect(policy.mfaRequired).toEqual(DEFAULT_AUTH_POLICY.mfaRequired);
  });

  it('lists every problem at once and refuses what would weaken the service', () => {
    let error: unknown;
    try {
      parseAuthPolicy({ password: { minScore: 1, expiryDays: { nurse: 3 } }, mfaRequired: { clinician: 'yes' }, sessions: { absoluteHours: 0, idleMinutes: 5 } });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AuthPolicyError);
    expect((error as AuthPolicyError).issues.map((i) => i.field).sort()).toEqual(['mfaRequired.clinician', 'password.expiryDays.nurse', 'password.minScore', 'sessions.absoluteHours', 'sessions.idleMinutes']);
    expect(() => parseAuthPolicy({ sessions: { idleMinutes: { patient: 120 }, absoluteHours: 1 } })).toThrow(/sessions\.idleMinutes\.patient: must not be longer than the absolute lifetime/);
    expect(() => parseAuthPolicy([])).toThrow(AuthPolicyError);
  });
});

describe.each(STORE_KINDS)('stored policy (%s)', (kind) => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode(kind);
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('reaches another node once its cache runs out, and keeps concurrent changes of different fields', async () => {
    const here = new AuthPolicyStore(node.ctx.store.db, 60_000);
    // A cache long enough that two updates on a loaded machine finish inside it.
    const elsewhere = new AuthPolicyStore(node.ctx.store.db, 2_000);
    expect((await elsewhere.current()).mfaRequired.patient).toBe(false);
    await Promise.all([here.update({ mfaRequired: { patient: true } }, 'test:a'), here.update({ password: { warningDays: 30 } }, 'test:b')]);
    expect((await here.current()).mfaRequired.patient).toBe(true);
    expect((await elsewhere.current()).mfaRequired.patient).toBe(false); // still cached
    await new Promise((r) => setTimeout(r, 2_100));
    const seen = await elsewhere.current();
    expect(seen.mfaRequired.patient).toBe(true);
    expect(seen.password.warningDays).toBe(30);
    const { changed } = await here.update({ mfaRequired: { patient: true } }, 'test:c');
    expect(changed).toEqual([]);
  });
});

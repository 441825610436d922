import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../actor.js';
import { createAccount } from '../accounts/account-service.js';
import { currentTotpCode, TOTP_PERIOD_SECONDS } from '../mfa/totp.js';
import { Repository } from '../../records/repository.js';
import { MRN_SYSTEM, NATIONAL_ID_SYSTEM } from '../../records/telesalud-codes.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { create, signInSession } from '../../test-support/fixtures.js';
import { EMERGENCY_LOOKUP_LIMIT, EMERGENCY_LOOKUP_MAX_MATCHES } from './emergency-lookup.js';

const PASSWORD = 'marea-lenta-sobre-Valparaiso-2031';
type Who = 'clinician' | 'hurried' | 'oncall' | 'patient' | 'admin';
interface Person {
  cookies: Record<string, string>;
  csrf: string;
  accountId: string;
  ref: string;
  totpSecret?: string;
}

const person = (family: string, given: string, birthDate: string, mrn: string, nationalId: string) => ({
  resourceType: 'Patient',
  active: true,
  identifier: [
    { system: MRN_SYSTEM, value: mrn },
    { system: NATIONAL_ID_SYSTEM, value: nationalId },
  ],
  name: [{ use: 'official', family, given: [given] }],
  gender: 'female',
  birthDate,
  telecom: [{ system: 'phone', value: '+34 600 000 111' }],
});

describe.each(STORE_KINDS)('emergency patient lookup (%s)', (kind) => {
  let node: TestNode;
  const people = {} as Record<Who, Person>;
  let lucia: string; // a patient in nobody's care, reached only through the lookup
  let twins: string[];
  let obrien: string;

  const as = (who: Who, options: InjectOptions): Promise<LightMyRequestResponse> =>
    node.app.inject({ ...options, cookies: people[who].cookies, headers: { 'x-csrf-token': people[who].csrf, origin: node.config.publicUrl, ...(options.headers ?? {}) } });
  const lookup = (who: Who, body: Record<string, unknown>) => as(who, { method: 'POST', url: '/api/access/emergency-lookup', payload: body });
  const auditOf = async (requestId: string) => {
    await node.ctx.audit.drain();
    return node.ctx.store.db.selectFrom('audit_event').select(['actor', 'action', 'outcome', 'patient', 'resource_id', 'detail']).where('request_id', '=', requestId).orderBy('seq').execute();
  };
  const requestId = async (who: Who) => {
    await node.ctx.audit.drain();
    const row = await node.ctx.store.db.selectFrom('audit_event').select('request_id').where('actor', '=', people[who].ref).where('action', '=', 'emergency-lookup').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    return row.request_id!;
  };

  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    const accounts: Record<Who, { email: string; role: 'clinician' | 'patient' | 'admin' }> = {
      clinician: { email: 'urgencias@clinica.example.org', role: 'clinician' },
      hurried: { email: 'guardia@clinica.example.org', role: 'clinician' },
      oncall: { email: 'reten@clinica.example.org', role: 'clinician' },
      patient: { email: 'paciente@example.org', role: 'patient' },
      admin: { email: 'admin@clinica.example.org', role: 'admin' },
    };
    for (const [who, a] of Object.entries(accounts) as [Who, (typeof accounts)[Who]][]) {
      const made = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { ...a, password: PASSWORD });
      const ref = made.patientId ? `Patient/${made.patientId}` : made.practitionerId ? `Practitioner/${made.practitionerId}` : `account:${made.id}`;
      people[who] = { ...(await signInSession(node, a.email, PASSWORD, made.totpSecret)), accountId: made.id, ref, ...(made.totpSecret ? { totpSecret: made.totpSecret } : {}) };
    }
    lucia = (await create(node, person('García López', 'Lucía', '1961-04-17', 'MRN-0700123', '48123456K'))).id;
    obrien = (await create(node, person("O'Brien", 'Siobhan', '1977-12-02', 'MRN-0700456', '39123456B'))).id;
    // Four people sharing a family name and a birth date: more than the lookup ever names.
    twins = [];
    for (const given of ['Ana', 'Bea', 'Carla', 'Diana']) twins.push((await create(node, person('Ibáñez', given, '1990-01-01', `MRN-090000${twins.length}`, `5${twins.length}000000T`))).id);
  }, 120_000);
  afterAll(async () => {
    await node?.stop();
  });

  it('finds an out-of-care patient by exact identifier, shows only who they are, and audits the ids returned', async () => {
    // The normal search does not reach her: she is in nobody's care.
    const normal = await as('clinician', { method: 'GET', url: '/fhir/R4/Patient?identifier=MRN-0700123' });
    expect(normal.statusCode).toBe(200);
    expect(normal.json().entry ?? []).toEqual([]);

    const res = await lookup('clinician', { identifier: 'MRN-0700123' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body.tooMany).toBe(false);
    expect(body.matches).toEqual([
      {
        id: lucia,
        name: 'Lucía García López',
        birthDate: '1961-04-17',
        identifiers: [
          { kind: 'mrn', last: '0123' },
          { kind: 'national-id', last: '456K' },
        ],
      },
    ]);
    // Nothing beyond that: no whole identifier, no phone, no gender.
    expect(res.body).not.toContain('MRN-0700123');
    expect(res.body).not.toContain('48123456K');
    expect(res.body).not.toContain('+34');
    expect(res.body).not.toContain('female');

    // A national ID typed with its letter in lower case is still the same ID.
    expect((await lookup('clinician', { identifier: ' 48123456k ' })).json().matches.map((m: any) => m.id)).toEqual([lucia]);

    const rows = await auditOf(await requestId('clinician'));
    // One entry, naming the patient returned: she sees it among who accessed her record.
    expect(rows).toEqual([expect.objectContaining({ actor: people.clinician.ref, action: 'emergency-lookup', outcome: 'success', patient: `Patient/${lucia}`, detail: { criteria: 'identifier', returned: [lucia] } })]);
    // The criteria themselves are not kept in the trail.
    expect(JSON.stringify(rows)).not.toContain('48123456');
  });

  it('finds by family name and birth date: the whole name or one whole part of it, never a prefix', async () => {
    const ids = async (family: string, birthDate: string) => {
      const res = await lookup('clinician', { family, birthDate });
      expect(res.statusCode).toBe(200);
      return res.json().matches.map((m: any) => m.id);
    };
    expect(await ids('garcia lopez', '1961-04-17')).toEqual([lucia]);
    expect(await ids('García', '1961-04-17')).toEqual([lucia]);
    expect(await ids('LOPEZ', '1961-04-17')).toEqual([lucia]);
    expect(await ids('Garc', '1961-04-17')).toEqual([]);
    // Apostrophes are names, not attacks: through the shield, as typed.
    expect(await ids("o'brien", '1977-12-02')).toEqual([obrien]);
    expect(await ids('García', '1961-04-18')).toEqual([]);
    // A lookup that found nobody is audited too, with an empty list.
    const rows = await auditOf(await requestId('clinician'));
    expect(rows).toEqual([expect.objectContaining({ outcome: 'success', patient: null, detail: { criteria: 'family-and-birth-date', returned: [] } })]);
  });

  it(`names nobody when more than ${EMERGENCY_LOOKUP_MAX_MATCHES} patients fit`, async () => {
    const res = await lookup('clinician', { family: 'Ibanez', birthDate: '1990-01-01' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ matches: [], tooMany: true });
    const rows = await auditOf(await requestId('clinician'));
    expect(rows).toEqual([expect.objectContaining({ patient: null, detail: { criteria: 'family-and-birth-date', returned: [], tooMany: true } })]);
    // One of them, by identifier, is found.
    const one = await lookup('clinician', { identifier: 'MRN-0900000' });
    expect(one.json().matches.map((m: any) => m.id)).toEqual([twins[0]]);
  });

  it('refuses vague or mixed criteria with a clear reason, and unknown fields', async () => {
    for (const body of [{}, { identifier: 'MRN' }, { family: 'García' }, { birthDate: '1961-04-17' }, { identifier: 'MRN-0700123', family: 'García', birthDate: '1961-04-17' }, { family: 'G', birthDate: '1961-04-17' }, { family: 'García', birthDate: '1961-02-30' }, { family: 'García', birthDate: '17/04/1961' }, { identifier: 'MRN-0700123', gender: 'female' }]) {
      const res = await lookup('clinician', body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().message).toBeTruthy();
    }
  });

  it('is only for clinicians: patients and admins are refused, and the refusal is audited', async () => {
    for (const who of ['patient', 'admin'] as const) {
      const res = await lookup(who, { identifier: 'MRN-0700123' });
      expect(res.statusCode).toBe(403);
      expect(res.body).not.toContain(lucia);
      const rows = await auditOf(await requestId(who));
      expect(rows).toEqual([expect.objectContaining({ action: 'emergency-lookup', outcome: 'denied', detail: { refused: 'not-a-clinician' } })]);
    }
    // The bootstrap token is no clinician either.
    expect((await node.request({ method: 'POST', url: '/api/access/emergency-lookup', payload: { identifier: 'MRN-0700123' } })).statusCode).toBe(403);
    // Without a session: not signed in.
    expect((await node.app.inject({ method: 'POST', url: '/api/access/emergency-lookup', payload: { identifier: 'MRN-0700123' } })).statusCode).toBe(401);
  });

  it(`allows ${EMERGENCY_LOOKUP_LIMIT} lookups an hour per clinician, even when they arrive at once`, async () => {
    const burst = await Promise.all(Array.from({ length: EMERGENCY_LOOKUP_LIMIT + 3 }, () => lookup('hurried', { identifier: 'MRN-0700123' })));
    const codes = burst.map((r) => r.statusCode).sort();
    expect(codes.filter((c) => c === 200)).toHaveLength(EMERGENCY_LOOKUP_LIMIT);
    expect(codes.filter((c) => c === 429)).toHaveLength(3);
    const refused = burst.find((r) => r.statusCode === 429)!;
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.body).not.toContain(lucia);
    await node.ctx.audit.drain();
    const denied = await node.ctx.store.db.selectFrom('audit_event').select('detail').where('actor', '=', people.hurried.ref).where('action', '=', 'emergency-lookup').where('outcome', '=', 'denied').execute();
    expect(denied).toHaveLength(3);
    expect(denied[0]!.detail).toMatchObject({ refused: 'rate-limited' });
    // Another clinician's lookups are their own.
    expect((await lookup('oncall', { identifier: 'MRN-0700123' })).statusCode).toBe(200);
  });

  it('leads to break-the-glass: the id returned opens the record after a reason and re-authentication', async () => {
    const [match] = (await lookup('oncall', { identifier: 'MRN-0700123' })).json().matches;
    expect((await as('oncall', { method: 'GET', url: `/fhir/R4/Patient/${match.id}` })).statusCode).toBe(404);
    const row = await node.ctx.store.db.selectFrom('account').select('totp_last_step').where('id', '=', people.oncall.accountId).executeTakeFirstOrThrow();
    const now = Math.floor(Date.now() / 1000 / TOTP_PERIOD_SECONDS);
    const step = Math.max(now, Number(row.totp_last_step ?? 0) + 1);
    if (step > now) await new Promise((r) => setTimeout(r, 1000 * (step * TOTP_PERIOD_SECONDS - Date.now() / 1000) + 100));
    const opened = await as('oncall', {
      method: 'POST',
      url: '/api/access/break-glass',
      payload: { patientId: match.id, reason: 'Paciente inconsciente en urgencias', password: PASSWORD, code: currentTotpCode(people.oncall.totpSecret!, new Date(step * TOTP_PERIOD_SECONDS * 1000)) },
    });
    expect(opened.statusCode).toBe(201);
    expect((await as('oncall', { method: 'GET', url: `/fhir/R4/Patient/${match.id}` })).statusCode).toBe(200);
  }, 60_000);
});

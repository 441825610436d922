import type { TestNode } from './test-node.js';
import { CONSULTATION_MODE_SYSTEM } from '../records/telesalud-codes.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';

/** Small builders for valid resources, so tests say only what differs. */
export const patient = (family: string, given: string[], extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  name: [{ family, given }],
  gender: 'female',
  birthDate: '1980-02-03',
  ...extra,
});

export const practitioner = (family: string) => ({ resourceType: 'Practitioner', name: [{ family, given: ['Ana'] }], active: true });

export const appointment = (patientId: string, practitionerId: string, start: string, minutes = 20, status = 'booked') => ({
  resourceType: 'Appointment',
  status,
  appointmentType: { coding: [{ system: CONSULTATION_MODE_SYSTEM, code: 'telehealth' }] },
  start,
  end: new Date(Date.parse(start) + minutes * 60_000).toISOString(),
  participant: [
    { actor: { reference: `Patient/${patientId}` }, status: 'accepted' },
    { actor: { reference: `Practitioner/${practitionerId}` }, status: 'accepted' },
  ],
});

export const heartRate = (patientId: string, value: number, when: string) => ({
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
  subject: { reference: `Patient/${patientId}` },
  effectiveDateTime: when,
  valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});

export async function create(node: TestNode, resource: Record<string, unknown>): Promise<any> {
  const res = await node.request({ method: 'POST', url: `/fhir/R4/${resource.resourceType}`, payload: resource });
  if (res.statusCode !== 201) throw new Error(`create ${String(resource.resourceType)} failed: ${res.statusCode} ${res.body}`);
  return res.json();
}

export async function search(node: TestNode, query: string): Promise<any> {
  const res = await node.request({ method: 'GET', url: `/fhir/R4/${query}` });
  if (res.statusCode !== 200) throw new Error(`search ${query} failed: ${res.statusCode} ${res.body}`);
  return res.json();
}

export const ids = (bundle: any, mode = 'match'): string[] => bundle.entry.filter((e: any) => e.search?.mode === mode).map((e: any) => e.resource.id);

/** Signs in through the API and answers what a browser would then hold: the session cookie and its CSRF token. */
export async function signInSession(node: TestNode, email: string, password: string, totpSecret?: string): Promise<{ cookies: Record<string, string>; csrf: string }> {
  const res = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email, password, ...(totpSecret ? { code: currentTotpCode(totpSecret) } : {}) } });
  if (res.statusCode !== 200) throw new Error(`sign-in ${res.statusCode} ${res.body}`);
  return { cookies: { [SESSION_COOKIE]: res.cookies.find((c) => c.name === SESSION_COOKIE)!.value }, csrf: res.json().csrfToken as string };
}

import type { Selectable } from 'kysely';
import type { Database } from '../db/schema.js';
import { TELESALUD_CODE_SYSTEM_BASE } from '../records/telesalud-codes.js';

/**
 * An audit_event row as a FHIR R4 AuditEvent: the exchange format auditors and SIEMs read
 * (IHE BALP / DICOM PS3.15 vocabulary). The mapping is read-only: the row, whose hash chain
 * covers it, stays the record of truth; this is a view of it.
 */
export type AuditRow = Pick<
  Selectable<Database['audit_event']>,
  'seq' | 'actor' | 'action' | 'resource_type' | 'resource_id' | 'patient' | 'outcome' | 'source' | 'request_id' | 'detail'
> & { recorded: Date | string };

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const AUDIT_EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const SECURITY_SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const EXTRA_SECURITY_ROLE = 'http://terminology.hl7.org/CodeSystem/extra-security-role-type';
/** telesalud's own action names (audit_event.action), as a subtype beside the standard codes. */
export const AUDIT_ACTION_SYSTEM = `${TELESALUD_CODE_SYSTEM_BASE}/audit-action`;
/** Identifiers of actors that are not FHIR resources: accounts, OAuth clients, the admin token, the system. */
export const AUDIT_ACTOR_SYSTEM = 'https://telesalud.org/fhir/sid/audit-actor';

interface Coding {
  system: string;
  code: string;
  display: string;
}

const REST: Coding = { system: AUDIT_EVENT_TYPE, code: 'rest', display: 'RESTful Operation' };
const dcm = (code: string, display: string): Coding => ({ system: DCM, code, display });
const rest = (code: string, display: string): Coding => ({ system: RESTFUL_INTERACTION, code, display });

/** Per action: event type, standard subtype, and the CRUDE action code. */
const KINDS: Record<string, { type: Coding; subtype?: Coding; action: 'C' | 'R' | 'U' | 'D' | 'E' }> = {
  read: { type: REST, subtype: rest('read', 'read'), action: 'R' },
  vread: { type: REST, subtype: rest('vread', 'vread'), action: 'R' },
  history: { type: REST, subtype: rest('history-instance', 'history-instance'), action: 'R' },
  search: { type: REST, subtype: rest('search-type', 'search-type'), action: 'E' },
  create: { type: REST, subtype: rest('create', 'create'), action: 'C' },
  update: { type: REST, subtype: rest('update', 'update'), action: 'U' },
  delete: { type: REST, subtype: rest('delete', 'delete'), action: 'D' },
  download: { type: dcm('110106', 'Export'), action: 'R' },
  upload: { type: dcm('110107', 'Import'), action: 'C' },
  seed: { type: dcm('110107', 'Import'), action: 'C' },
  'sign-in': { type: dcm('110114', 'User Authentication'), subtype: dcm('110122', 'Login'), action: 'E' },
  'sign-in-failed': { type: dcm('110114', 'User Authentication'), subtype: dcm('110122', 'Login'), action: 'E' },
  'account-locked': { type: dcm('110113', 'Security Alert'), action: 'E' },
  'token-issued': { type: dcm('110114', 'User Authentication'), subtype: dcm('110122', 'Login'), action: 'E' },
  'token-refused': { type: dcm('110114', 'User Authentication'), subtype: dcm('110122', 'Login'), action: 'E' },
  'client-added': { type: dcm('110136', 'Security Roles Changed'), action: 'C' },
  'client-revoked': { type: dcm('110136', 'Security Roles Changed'), action: 'D' },
  'app-revoked': { type: dcm('110136', 'Security Roles Changed'), action: 'D' },
  'audit-search': { type: dcm('110101', 'Audit Log Used'), action: 'E' },
  'audit-export': { type: dcm('110101', 'Audit Log Used'), subtype: dcm('110106', 'Export'), action: 'R' },
  // An e-mail about a patient handed to the SMTP relay: data leaving the system.
  'notification-sent': { type: dcm('110106', 'Export'), action: 'R' },
  // Retention removed the oldest entries (the range is in the detail).
  'audit-truncated': { type: dcm('110101', 'Audit Log Used'), action: 'D' },
};
/** Actions added later (consultations, break-the-glass…) still map: as application activity, with their own code as subtype. */
const OTHER = { type: dcm('110100', 'Application Activity'), action: 'E' as const };

/** The kinds of audit entry the standard codes call data access (the rest are security events). */
export const DATA_ACCESS_ACTIONS = ['read', 'vread', 'history', 'search', 'create', 'update', 'delete', 'download', 'upload', 'seed'] as const;

export function toAuditEvent(row: AuditRow): Record<string, unknown> {
  const kind = KINDS[row.action] ?? OTHER;
  const detail = isObject(row.detail) ? row.detail : undefined;
  const entity: Record<string, unknown>[] = [];
  // One entity per patient: the entry's patient, or each of the patients one search showed.
  const patients = row.patient ? [row.patient] : Array.isArray(detail?.patients) ? detail.patients.filter((p): p is string => typeof p === 'string') : [];
  for (const patient of patients) {
    entity.push({ what: { reference: patient }, type: { system: ENTITY_TYPE, code: '1', display: 'Person' }, role: { system: OBJECT_ROLE, code: '1', display: 'Patient' } });
  }
  const resourceRef = row.resource_type && row.resource_id ? `${row.resource_type}/${row.resource_id}` : undefined;
  if (row.resource_type && resourceRef !== row.patient) {
    entity.push({
      ...(resourceRef ? { what: { reference: resourceRef } } : { name: row.resource_type }),
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
    });
  }
  const details = [
    ...(row.request_id ? [{ type: 'requestId', valueString: row.request_id }] : []),
    ...Object.entries(detail ?? {}).filter(([key]) => key !== 'patients' && key !== 'client').map(([key, value]) => ({ type: key, valueString: typeof value === 'string' ? value : JSON.stringify(value) })),
  ];
  if (details.length > 0) {
    // Request id and detail ride on the first entity; an event without one gets a neutral carrier.
    if (entity.length === 0) entity.push({ type: { system: ENTITY_TYPE, code: '4', display: 'Other' }, name: row.action });
    entity[0]!.detail = details;
  }
  const event: Record<string, unknown> = {
    resourceType: 'AuditEvent',
    id: String(row.seq),
    type: kind.type,
    subtype: [...('subtype' in kind && kind.subtype ? [kind.subtype] : []), { system: AUDIT_ACTION_SYSTEM, code: row.action, display: row.action }],
    action: kind.action,
    recorded: new Date(row.recorded).toISOString(),
    outcome: row.outcome === 'success' ? '0' : '4',
    ...(row.outcome !== 'success' ? { outcomeDesc: row.outcome } : {}),
    agent: agents(row, typeof detail?.client === 'string' ? detail.client : undefined),
    source: { observer: { display: 'telesalud' }, type: [{ system: SECURITY_SOURCE_TYPE, code: '4', display: 'Application Server' }] },
    ...(entity.length > 0 ? { entity } : {}),
  };
  return event;
}

/**
 * The person (or system) who asked is the requestor; an app acting for them (detail.client) is a
 * second agent, DICOM "Application", and it is the one at the network address (IHE BALP).
 */
function agents(row: AuditRow, client: string | undefined): Record<string, unknown>[] {
  if (!client || client === row.actor) return [agent(row)];
  const { network, ...person } = agent(row);
  return [
    person,
    {
      type: { coding: [dcm('110150', 'Application')] },
      who: { identifier: { system: AUDIT_ACTOR_SYSTEM, value: client } },
      requestor: false,
      ...(network ? { network } : {}),
    },
  ];
}

function agent(row: AuditRow): Record<string, unknown> {
  const ref = row.actor;
  const person = /^(Practitioner|Patient|RelatedPerson)\/[A-Za-z0-9\-.]{1,64}$/.test(ref);
  const human = person || ref.startsWith('account:');
  return {
    type: { coding: [human ? { system: EXTRA_SECURITY_ROLE, code: 'humanuser', display: 'human user' } : { system: EXTRA_SECURITY_ROLE, code: 'dataprocessor', display: 'data processor' }] },
    who: person ? { reference: ref } : { identifier: { system: AUDIT_ACTOR_SYSTEM, value: ref } },
    requestor: true,
    ...(row.source ? { network: { address: row.source, type: networkType(row.source) } } : {}),
  };
}

/** DICOM network access point type: 2 IP address, 1 machine name. */
const networkType = (address: string) => (/^[0-9.]+$|:/.test(address) ? '2' : '1');
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

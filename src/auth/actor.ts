/**
 * Who is asking. Every read and write of the record is made on behalf of an Actor; the access
 * policy (auth/access/access-policy.ts) decides from the actor's scope what it may see and
 * change — this is the one place identity plugs into.
 */
export type AccessScope =
  /** The whole record: the system itself, and the bootstrap admin token (the installer's break-in key). */
  | { kind: 'full' }
  /** A patient (or a guest): only resources in these patients' compartments, and only the writes a patient is expected to make. */
  | { kind: 'patient-compartment'; patients: string[] }
  /** A clinician: the patients they have a care relationship with, plus emergency (break-the-glass) grants. */
  | { kind: 'clinician'; practitioner: string; breakGlass: BreakGlassAccess[] }
  /** Reception (front desk): every patient's demographics and appointments, to register, book and invite; no clinical content. */
  | { kind: 'reception' }
  /** An administrator: accounts, configuration and administrative data, but no clinical content. */
  | { kind: 'admin' };

/** A live break-the-glass grant: access to one patient, every use flagged in the audit trail. */
export interface BreakGlassAccess {
  grantId: string;
  /** `Patient/<id>` */
  patient: string;
  expires: Date;
}

export interface Actor {
  /** Stable id for the audit trail, e.g. `admin-token`, `Practitioner/…`, `Patient/…`. Never a name. */
  ref: string;
  scope: AccessScope;
  /** OAuth access tokens only: the SMART resource scopes of the token (system/, or patient/ and user/ for an app acting for a user; auth/oauth/smart-scopes.ts), a further narrowing. */
  scopes?: string[];
  /** An app's access token acting for a person: the OAuth client (`client:<id>`), named beside the person in the audit trail. */
  client?: string;
  /** An app's access token: the id of the account it acts for (its requests count against that account's rate limit). */
  account?: string;
}

export interface RequestOrigin {
  requestId: string;
  source: string;
  /** The OAuth client (`client:<id>`) an app's token acts through; recorded as `detail.client` on every audit entry. */
  client?: string;
}

export const SYSTEM_ACTOR: Actor = { ref: 'system', scope: { kind: 'full' } };

/**
 * Who is asking. Every read and write of the record is made on behalf of an Actor, and
 * the repository narrows what it can see from the actor's scope — this is the one place
 * identity plugs into.
 */
export type AccessScope =
  /** Staff with access to the whole record (bootstrap admin today; clinicians with identity). */
  | { kind: 'full' }
  /** A patient (or a guest): only resources in these patients' compartments, read-only outside them. */
  | { kind: 'patient-compartment'; patients: string[] };

export interface Actor {
  /** Stable id for the audit trail, e.g. `admin-token`, `Practitioner/…`, `Patient/…`. Never a name. */
  ref: string;
  scope: AccessScope;
}

export interface RequestOrigin {
  requestId: string;
  source: string;
}

export const SYSTEM_ACTOR: Actor = { ref: 'system', scope: { kind: 'full' } };

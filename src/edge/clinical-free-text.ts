/**
 * Fields where people write prose: FHIR narrative and notes, descriptions, comments, names and
 * addresses, and secrets people choose. Clinical text legitimately holds quotes, apostrophes,
 * "<5 mg", "--", "drop the dose", "select the best option", "union"; a false positive here stops
 * clinical work. Values under these keys are read with the prose rule set: only signals prose
 * never has (a script tag, an event handler inside a tag, a quote-break tautology, union select).
 */
export const PROSE_KEYS = new Set([
  // FHIR narrative and annotations
  'div', 'text', 'note', 'comment', 'comments', 'description', 'summary', 'conclusion', 'instruction', 'patientInstruction',
  'valueString', 'valueMarkdown', 'contentString', 'answer', 'title', 'display', 'purpose', 'reasonText', 'outcome', 'detail',
  'clinicalStatusText', 'message', 'body', 'payload', 'narrative', 'markdown', 'statusReason', 'presentedForm',
  // people and places
  'family', 'given', 'prefix', 'suffix', 'line', 'city', 'district', 'state', 'displayName', 'name', 'alias', 'label',
]);

// Secrets people choose may hold any character; they are hashed, never interpreted, never logged.
// Like CRS's usual exclusion of password fields, the shield does not read them.
const SECRET_KEYS = new Set(['password', 'newPassword', 'currentPassword', 'oldPassword', 'passphrase', 'client_secret']);

export function secretField(key: string): boolean {
  return SECRET_KEYS.has(key);
}

export function proseField(key: string): boolean {
  return PROSE_KEYS.has(key);
}

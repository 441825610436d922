/**
 * The clinic's time zone: the zone every time is shown in (appointments, free slots, the
 * schedule, the audit trail), whatever zone the reader's device is set to. An IANA name such as
 * `America/Mexico_City`; the admin sets it with the policy, TELESALUD_CLINIC_TIME_ZONE gives the
 * installation's default, else UTC.
 */
export const DEFAULT_CLINIC_TIME_ZONE = 'UTC';

/** IANA zone names: Area/Location[/Sub], letters, digits, _ + -; no offsets ("+05:00"), no spaces. */
const IANA_NAME = /^[A-Za-z][A-Za-z0-9_+-]{0,31}(?:\/[A-Za-z0-9_+-]{1,32}){0,2}$/;

/**
 * The canonical name of a time zone this runtime (ICU) knows, e.g. `america/mexico_city` →
 * `America/Mexico_City`; undefined for anything else. Browsers share the same IANA data, so a
 * name accepted here is one they format with.
 */
export function canonicalTimeZone(name: unknown): string | undefined {
  if (typeof name !== 'string' || !IANA_NAME.test(name)) return undefined;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/** The zone in force: the admin's choice, else the installation's default (config.clinicTimeZone). */
export function effectiveClinicTimeZone(policy: { clinic: { timeZone: string | null } }, installationDefault: string): string {
  return policy.clinic.timeZone ?? installationDefault;
}

/**
 * Times as the clinic keeps them: every area (portal, clinic, admin, consult) formats instants in
 * the clinic's time zone, which the session answer names (/api/auth/session → clinic.timeZone),
 * in the reader's own language. A patient abroad sees their appointment at the clinic's hour,
 * with the zone's abbreviation beside it, not at a shifted hour of their device. Pages shown
 * before sign-in (an invitation) ask the public GET /api/clinic for it (public-clinic-time.ts).
 */

/** Until a session or /api/clinic names it, the device's zone. */
let clinicZone: string | undefined;

const browserZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone;

export function clinicTimeZone(): string {
  return clinicZone ?? browserZone();
}

/** Takes the zone from a session answer; a name this browser can not format with is ignored. */
export function adoptClinicTimeZone(answer: unknown): void {
  const zone = (answer as { clinic?: { timeZone?: unknown } } | undefined)?.clinic?.timeZone;
  if (typeof zone !== 'string') return;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    clinicZone = zone;
  } catch {
    // Left as it was: the device's zone is better than no time at all.
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** One formatter per language, options and zone: building them is the costly part. */
function formatter(locale: string, options: Intl.DateTimeFormatOptions, timeZone = clinicTimeZone()): Intl.DateTimeFormat {
  const key = `${locale}|${timeZone}|${JSON.stringify(options)}`;
  let found = formatters.get(key);
  if (!found) formatters.set(key, (found = new Intl.DateTimeFormat(locale, { ...options, timeZone })));
  return found;
}

type Instant = string | number | Date;

/** An instant in the clinic's zone, in `locale`, with these options (timeZone is always the clinic's). */
export function formatClinicTime(instant: Instant, locale: string, options: Intl.DateTimeFormatOptions): string {
  const at = new Date(instant);
  // Intl throws on an invalid date: a bad value from the server shows as nothing, never breaks the page.
  return Number.isNaN(at.getTime()) ? '' : formatter(locale, options).format(at);
}

/** The clinic zone's short name at that instant ("GMT-6", "CET"…): summer time changes it. */
export function clinicZoneName(instant: Instant, locale: string): string {
  const at = new Date(instant);
  if (Number.isNaN(at.getTime())) return '';
  return formatter(locale, { timeZoneName: 'short' }).formatToParts(at).find((p) => p.type === 'timeZoneName')?.value ?? clinicTimeZone();
}

/** The calendar date (YYYY-MM-DD) of an instant in the clinic's zone: to group slots and appointments by day. */
export function clinicDayKey(instant: Instant): string {
  const at = new Date(instant);
  if (Number.isNaN(at.getTime())) return '';
  const parts = formatter('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')}`;
}

/** Milliseconds the clinic's wall clock is ahead of UTC at `instant`. */
function clinicOffsetMs(instant: number): number {
  const parts = formatter('en-US', { hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour') % 24, get('minute'), get('second'));
  return wall - Math.floor(instant / 1000) * 1000;
}

/**
 * A wall-clock time typed in a date-time field (YYYY-MM-DDTHH:mm), read on the clinic's clock,
 * as the ISO instant the API takes. Two passes settle the offset across a summer-time change.
 */
export function clinicWallTimeToIso(value: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return undefined;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0));
  if (Number.isNaN(wall)) return undefined;
  const first = wall - clinicOffsetMs(wall);
  const instant = wall - clinicOffsetMs(first);
  return new Date(instant).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

import i18next from 'i18next';

/** Dates, times and numbers in the reader's language, in the browser's time zone (the API names none). */
export function dateTime(iso: string | number | Date): string {
  return new Intl.DateTimeFormat(i18next.language, { dateStyle: 'medium', timeStyle: 'medium' }).format(new Date(iso));
}

export function shortTime(iso: string | number | Date): string {
  return new Intl.DateTimeFormat(i18next.language, { hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
}

export function shortDate(iso: string | number | Date, utc = false): string {
  return new Intl.DateTimeFormat(i18next.language, { day: 'numeric', month: 'short', ...(utc ? { timeZone: 'UTC' } : {}) }).format(new Date(iso));
}

/** A bucket's label: the time for buckets under a day, the date otherwise. */
export function bucketLabel(iso: string, bucketSeconds: number): string {
  return bucketSeconds < 86400 ? `${shortDate(iso)} ${shortTime(iso)}` : shortDate(iso);
}

/** Short enough for a phone's axis: the hour for a day's worth of buckets, else the date. */
export function axisLabel(iso: string, bucketSeconds: number): string {
  return bucketSeconds < 3 * 3600 ? shortTime(iso) : shortDate(iso);
}

export function number(value: number, fractionDigits = 0): string {
  return new Intl.NumberFormat(i18next.language, { maximumFractionDigits: fractionDigits, minimumFractionDigits: 0 }).format(value);
}

/** A local date-time input's value (YYYY-MM-DDTHH:mm) as an ISO instant the API takes. */
export function localInputToIso(value: string): string | undefined {
  if (!value) return undefined;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? undefined : at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

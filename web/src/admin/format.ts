import i18next from 'i18next';
import { clinicWallTimeToIso, formatClinicTime } from '../app/clinic-time.js';

/** Dates, times and numbers in the reader's language, on the clinic's clock (app/clinic-time.ts). */
export function dateTime(iso: string | number | Date): string {
  return formatClinicTime(iso, i18next.language, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function shortTime(iso: string | number | Date): string {
  return formatClinicTime(iso, i18next.language, { hour: '2-digit', minute: '2-digit' });
}

/** `utc`: a UTC day bucket (the per-day traffic), labelled by its own date. */
export function shortDate(iso: string | number | Date, utc = false): string {
  if (utc) return new Intl.DateTimeFormat(i18next.language, { day: 'numeric', month: 'short', timeZone: 'UTC' }).format(new Date(iso));
  return formatClinicTime(iso, i18next.language, { day: 'numeric', month: 'short' });
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

/** A date-time input's value (YYYY-MM-DDTHH:mm), read on the clinic's clock like every time shown, as an ISO instant the API takes. */
export function localInputToIso(value: string): string | undefined {
  if (!value) return undefined;
  return clinicWallTimeToIso(value);
}

import i18next from 'i18next';
import { clinicDayKey, clinicZoneName, formatClinicTime } from '../app/clinic-time.js';

/**
 * Dates, times and numbers in the patient's language, in the clinic's time zone (app/clinic-time.ts):
 * a patient travelling sees their appointment at the clinic's hour, the zone named beside it.
 */
const locale = () => (i18next.language === 'en' ? 'en-GB' : 'es-ES');

export function formatDateTime(iso: string | undefined): string {
  if (!iso) return '';
  return formatClinicTime(iso, locale(), { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' });
}

/** An appointment's time: the clinic zone's abbreviation beside it, since the patient's own clock may differ. */
export function formatAppointmentTime(iso: string | undefined): string {
  if (!iso) return '';
  return `${formatDateTime(iso)} ${clinicZoneName(iso, locale())}`;
}

export function formatDay(iso: string): string {
  return formatClinicTime(iso, locale(), { weekday: 'long', day: 'numeric', month: 'long' });
}

export function formatShortDate(iso: string | undefined): string {
  if (!iso) return '';
  // A bare date (a document's day) is a calendar day, not an instant: no zone shift.
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) return new Intl.DateTimeFormat(locale(), { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' }).format(new Date(`${iso}T12:00:00Z`));
  return formatClinicTime(iso, locale(), { day: 'numeric', month: 'short', year: 'numeric' });
}

export function formatTime(iso: string): string {
  return formatClinicTime(iso, locale(), { hour: '2-digit', minute: '2-digit' });
}

/** The clinic zone's abbreviation at that instant ("GMT-6", "CET"). */
export function zoneAbbreviation(iso: string): string {
  return clinicZoneName(iso, locale());
}

export function formatNumber(value: number): string {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(value);
}

/** Same calendar day on the clinic's clock. */
export function isSameDay(a: Date, b: Date): boolean {
  return clinicDayKey(a) === clinicDayKey(b);
}

/** YYYY-MM-DD of an instant on the clinic's clock (to group free slots by the clinic's day). */
export function localDayKey(iso: string): string {
  return clinicDayKey(iso);
}

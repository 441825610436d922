import type { MouseEvent, ReactNode } from 'react';
import type { TFunction } from 'i18next';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { tooManyRequestsText } from '../app/too-many-requests.js';
import { navigate } from '../app/navigation.js';
import { clinicZoneName, formatClinicTime } from '../app/clinic-time.js';

/** Times below are on the clinic's clock, as the session names it (app/clinic-time.ts); the language is the clinician's. */

/** hh:mm on the clinic's clock; `withZone` adds the zone's abbreviation where the hour could be misread (appointments). */
export function formatTime(iso: string | undefined, language: string, withZone = false): string {
  if (!iso) return '';
  const time = formatClinicTime(iso, language, { hour: '2-digit', minute: '2-digit' });
  return withZone ? `${time} ${clinicZoneName(iso, language)}` : time;
}

export function formatDate(iso: string | undefined, language: string): string {
  if (!iso) return '';
  // A bare date (birthDate, onset) is a calendar day, not an instant: no time zone shift.
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) return new Date(`${iso}T12:00:00Z`).toLocaleDateString(language, { dateStyle: 'medium', timeZone: 'UTC' });
  return formatClinicTime(iso, language, { dateStyle: 'medium' });
}

export function formatDateTime(iso: string | undefined, language: string): string {
  if (!iso) return '';
  return formatClinicTime(iso, language, { dateStyle: 'medium', timeStyle: 'short' });
}

export function formatNumber(value: number, language: string): string {
  return new Intl.NumberFormat(language, { maximumFractionDigits: 1 }).format(value);
}

/**
 * An error in plain words. Only for invalid input (400, 422) is the server's own diagnostics added
 * as a detail line — it names the field to fix; any other refusal's server wording (English, about
 * routes and resources) is left out, and a stack trace never reaches the page.
 */
export function errorText(t: TFunction, err: unknown): string {
  // A caller that already knows the plain words for this refusal.
  if (err && typeof err === 'object' && typeof (err as { plain?: unknown }).plain === 'string') return (err as { plain: string }).plain;
  if (!(err instanceof ApiError)) return t('clinic.errors.network');
  const wait = tooManyRequestsText(t, err);
  if (wait) return wait;
  const invalid = err.status === 400 || err.status === 422;
  const plain =
    err.status === 401 ? t('clinic.errors.sessionEnded') : err.status === 403 ? t('clinic.errors.forbidden') : err.status === 404 || err.status === 410 ? t('clinic.errors.notFound') : err.status === 409 || err.status === 412 ? t('clinic.errors.conflict') : invalid ? t('clinic.errors.invalid') : t('clinic.errors.generic');
  const detail = invalid && err.detail ? ` ${t('clinic.errors.detail', { detail: err.detail })}` : '';
  return plain + detail;
}

export function ErrorLine({ error, testId }: { error: string | undefined; testId?: string }) {
  if (!error) return null;
  return (
    <p role="alert" className="error" data-testid={testId ?? 'clinic-error'}>
      {error}
    </p>
  );
}

/** An in-app link: a real href (open in a new tab works), client-side navigation on a plain click. */
export function Link({ to, children, className, testId, label, current }: { to: string; children: ReactNode; className?: string | undefined; testId?: string; label?: string; current?: boolean }) {
  function follow(event: MouseEvent<HTMLAnchorElement>) {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  }
  return (
    <a href={to} onClick={follow} className={className} data-testid={testId} aria-label={label} aria-current={current ? 'page' : undefined}>
      {children}
    </a>
  );
}

export function Loading() {
  const { t } = useTranslation();
  return (
    <p aria-busy="true" role="status">
      {t('clinic.loading')}
    </p>
  );
}

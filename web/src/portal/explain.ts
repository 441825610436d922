import type { TFunction } from 'i18next';
import { ApiError } from '../app/api-error.js';
import { tooManyRequestsText } from '../app/too-many-requests.js';

/** Any failure as one sentence a patient understands (never a status code or a stack trace). */
export function explain(t: TFunction, err: unknown): string {
  if (!(err instanceof ApiError)) return t('portal.errors.network');
  const wait = tooManyRequestsText(t, err);
  if (wait) return wait;
  if (err.status === 401) return t('portal.errors.signedOut');
  switch (err.code) {
    case 'reauthentication-failed':
      return t('portal.errors.reauth');
    case 'invalid-code':
      return t('portal.errors.invalidCode');
    case 'invitation-invalid':
      return t('portal.invite.invalid');
    case 'already-registered':
      return t('portal.invite.alreadyRegistered');
    case 'passkey-not-registered':
      return t('portal.errors.passkey');
    case 'mfa-required-by-policy':
      return t('portal.errors.mfaRequired');
    case 'last-second-factor':
      return t('portal.errors.lastFactor');
    case 'reauthentication-required':
      return t('portal.errors.reauthRequired');
    case 'conflict':
      return t('portal.errors.slotTaken');
  }
  if (err.status === 409) return t('portal.errors.slotTaken');
  if (err.status === 403) return t('portal.errors.forbidden');
  return t('portal.errors.generic');
}

import { createContext, useCallback, useContext } from 'react';
import type { TFunction } from 'i18next';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../../app/api-error.js';
import { tooManyRequestsText } from '../../app/too-many-requests.js';
import type { portalEn, portalEs } from '../../portal/messages.js';

/*
 * The security settings' words come from the catalogue of the area that shows them: a patient
 * reads the portal's (`portal.security.*`), staff the clinic's (`clinic.security.*`), in each
 * area's voice. Same components, same keys, one catalogue per audience.
 */

/** The areas that show the security settings. */
export type SecurityArea = 'portal' | 'clinic';

/** Every word the security settings show; each area's catalogue has them under `security`. */
export interface SecurityWords {
  sessions: string;
  sessionsIntro: string;
  thisDevice: string;
  lastSeen: string;
  end: string;
  endNamed: string;
  sessionEnded: string;
  factors: string;
  factorsIntro: string;
  factorsRequired: string;
  totp: string;
  on: string;
  off: string;
  passkeys: string;
  codesLeft_one: string;
  codesLeft_other: string;
  addTotp: string;
  replaceTotp: string;
  addPasskey: string;
  newCodes: string;
  removeTotp: string;
  confirm: { totp: string; passkey: string; codes: string; disable: string; 'remove-passkey': string };
  removePasskey: string;
  removePasskeyNamed: string;
  passkeyRemoved: string;
  currentPassword: string;
  currentCode: string;
  usePasskey: string;
  passkeyNotUsed: string;
  passkeyCancelled: string;
  continue: string;
  cancel: string;
  busy: string;
  passkeyAdded: string;
  totpAdded: string;
  totpRemoved: string;
  password: string;
  passwordHint: string;
  newPassword: string;
  repeatPassword: string;
  mismatch: string;
  refused: string;
  changePassword: string;
  passwordChanged: string;
  wrongPassword: string;
  errors: { network: string; signedOut: string; reauth: string; reauthRequired: string; invalidCode: string; passkey: string; mfaRequired: string; lastFactor: string; forbidden: string; generic: string };
}

/** Compile-time: the portal's catalogue carries every word (the clinic's says so where it is written). */
export type PortalCarriesSecurityWords = [Carries<(typeof portalEn)['security']>, Carries<(typeof portalEs)['security']>];
type Carries<T extends SecurityWords> = T;

/** `confirm.totp`, `errors.generic`…: a word's path; `codesLeft` is the plural (give `count`). */
type Paths<T> = { [K in keyof T & string]: T[K] extends string ? K : `${K}.${Paths<T[K]>}` }[keyof T & string];
export type SecurityWordKey = Exclude<Paths<SecurityWords>, `codesLeft_${string}`> | 'codesLeft';

/** Which area's catalogue the settings below read; the portal's unless a page says otherwise. */
export const SecurityAreaContext = createContext<SecurityArea>('portal');

export type SecurityWordsFn = (key: SecurityWordKey, options?: Record<string, unknown>) => string;

/** `w`: a security word in the area's catalogue; `t`: the app's own (for the words every area shares). */
export function useSecurityWords(): { w: SecurityWordsFn; t: TFunction } {
  const { t } = useTranslation();
  const area = useContext(SecurityAreaContext);
  const w = useCallback<SecurityWordsFn>((key, options) => t(`${area}.security.${key}`, options ?? {}), [t, area]);
  return { w, t };
}

const BY_CODE: Record<string, SecurityWordKey> = {
  'reauthentication-failed': 'errors.reauth',
  'reauthentication-required': 'errors.reauthRequired',
  'invalid-code': 'errors.invalidCode',
  'passkey-not-registered': 'errors.passkey',
  'mfa-required-by-policy': 'errors.mfaRequired',
  'last-second-factor': 'errors.lastFactor',
};

/** A failed change of these settings as one sentence in the area's words (never a status code). */
export function securityErrorText(w: SecurityWordsFn, t: TFunction, err: unknown): string {
  if (!(err instanceof ApiError)) return w('errors.network');
  const wait = tooManyRequestsText(t, err);
  if (wait) return wait;
  if (err.status === 401) return w('errors.signedOut');
  const known = err.code ? BY_CODE[err.code] : undefined;
  if (known) return w(known);
  if (err.status === 403) return w('errors.forbidden');
  return w('errors.generic');
}

import { api } from '../app/api.js';

export interface ConsentState {
  currentVersion: string;
  consent: { noticeVersion: string; acceptedAt: string } | null;
  /** The patient has not accepted the current notice: ask before the consultation. */
  required: boolean;
}

/** The signed-in patient's telehealth consent (src/privacy/privacy-routes.ts). */
export function telehealthConsent(): Promise<ConsentState> {
  return api<ConsentState>('GET', '/api/me/consent');
}

export function giveTelehealthConsent(noticeVersion: string): Promise<ConsentState> {
  return api<ConsentState>('POST', '/api/me/consent', { noticeVersion });
}

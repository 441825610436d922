import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError, backToSignIn } from '../app/api.js';
import { tooManyRequestsText } from '../app/too-many-requests.js';
import { giveTelehealthConsent } from './consent.js';

/**
 * Asked of a patient before their first consultation (and after each change of the notice): a
 * summary of the privacy notice, a link to the whole of it, and one button to agree.
 */
export function ConsentStep({ noticeVersion, onConsented }: { noticeVersion: string; onConsented: () => void }) {
  const { t } = useTranslation();
  const [busy, setBusy] = useState(false);
  const [failed, setFailed] = useState<string>();

  async function agree() {
    setBusy(true);
    setFailed(undefined);
    try {
      await giveTelehealthConsent(noticeVersion);
      onConsented();
    } catch (err) {
      // The session ended while the notice was read: sign in, and back to this consultation.
      if (err instanceof ApiError && err.status === 401) return backToSignIn();
      setFailed(tooManyRequestsText(t, err) ?? t('privacy.consentFailed'));
      setBusy(false);
    }
  }

  return (
    <main className="narrow stack" data-testid="consent-step">
      <h1>{t('privacy.consentTitle')}</h1>
      <p>{t('privacy.consentSummary')}</p>
      <ul>
        <li>{t('privacy.consentPointMedia')}</li>
        <li>{t('privacy.consentPointRecord')}</li>
        <li>{t('privacy.consentPointRights')}</li>
      </ul>
      <p>
        <a href="/privacy" target="_blank" rel="noopener" data-testid="privacy-link">
          {t('privacy.consentReadFull')}
        </a>
      </p>
      {failed && (
        <p role="alert" className="error">
          {failed}
        </p>
      )}
      <button type="button" className="primary" disabled={busy} onClick={() => void agree()} data-testid="consent-agree">
        {busy ? t('privacy.consentBusy') : t('privacy.consentAgree')}
      </button>
    </main>
  );
}

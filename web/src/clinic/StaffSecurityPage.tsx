import { useTranslation } from 'react-i18next';
import { SecuritySettings } from '../auth/security/SecuritySettings.js';
import '../portal/portal.css';

/**
 * /clinic/security: a clinician's or receptionist's own sessions, second factors and password —
 * the portal's components, in the portal's styles (scoped to `.portal`: QR code, codes, cards).
 */
export function StaffSecurityPage() {
  const { t } = useTranslation();
  return (
    <main className="clinic-main stack" data-testid="security-page">
      <h1>{t('clinic.security.title')}</h1>
      <div className="portal stack">
        <SecuritySettings />
      </div>
    </main>
  );
}

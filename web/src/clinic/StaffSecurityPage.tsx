import { useTranslation } from 'react-i18next';
import { SecuritySettings } from '../auth/security/SecuritySettings.js';

/**
 * /clinic/security: a clinician's or receptionist's own sessions, second factors and password —
 * the settings the portal shows too, in the staff's words (`clinic.security`, security-messages.ts)
 * and the clinic's styles (clinic.css).
 */
export function StaffSecurityPage() {
  const { t } = useTranslation();
  return (
    <main className="clinic-main stack" data-testid="security-page">
      <h1>{t('clinic.security.title')}</h1>
      <SecuritySettings area="clinic" />
    </main>
  );
}

import { useTranslation } from 'react-i18next';
import { PRIVACY_NOTICE_VERSION } from '../../../src/privacy/privacy-notice.js';

/**
 * /privacy (public): what telesalud keeps, why, for how long, who sees it, and the patient's
 * rights. The text is in the catalogues (es, en); PRIVACY_NOTICE_VERSION must change with it.
 */
export function PrivacyPage() {
  const { t } = useTranslation();
  const sections: { title: string; items: string[] }[] = [
    { title: 'privacy.storesTitle', items: ['privacy.storesRecord', 'privacy.storesDocuments', 'privacy.storesAccount', 'privacy.storesAudit', 'privacy.storesConsult', 'privacy.storesNoMedia'] },
    { title: 'privacy.whyTitle', items: ['privacy.why'] },
    { title: 'privacy.howLongTitle', items: ['privacy.howLongRecord', 'privacy.howLongAudit', 'privacy.howLongSessions', 'privacy.howLongBackups'] },
    { title: 'privacy.whoTitle', items: ['privacy.whoYou', 'privacy.whoClinicians', 'privacy.whoBreakGlass', 'privacy.whoAdmins', 'privacy.whoIntegrations', 'privacy.whoLog'] },
    { title: 'privacy.rightsTitle', items: ['privacy.rightsAccess', 'privacy.rightsExport', 'privacy.rightsLog', 'privacy.rightsConsent', 'privacy.rightsOther'] },
  ];
  return (
    <main className="narrow" data-testid="privacy-notice">
      <h1>{t('privacy.title')}</h1>
      <p>
        <small>{t('privacy.version', { version: PRIVACY_NOTICE_VERSION })}</small>
      </p>
      <p>{t('privacy.intro')}</p>
      {sections.map((section) => (
        <section key={section.title}>
          <h2>{t(section.title)}</h2>
          {section.items.length === 1 ? (
            <p>{t(section.items[0]!)}</p>
          ) : (
            <ul>
              {section.items.map((item) => (
                <li key={item}>{t(item)}</li>
              ))}
            </ul>
          )}
        </section>
      ))}
    </main>
  );
}

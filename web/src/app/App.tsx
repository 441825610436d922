import { useTranslation } from 'react-i18next';
import { SignInPage } from '../auth/SignInPage.js';
import { ConsultPage } from '../consult/ConsultPage.js';
import { LanguageSwitch } from '../i18n/LanguageSwitch.js';
import { PrivacyPage } from '../privacy/PrivacyPage.js';
import { usePathname } from './navigation.js';

/** App routes; the node serves this same page for each of them (src/server/web-app-routes.ts). */
export function App() {
  const path = usePathname();
  const { t } = useTranslation();
  let page;
  const consult = /^\/consult\/([A-Za-z0-9\-.]{1,64})$/.exec(path);
  if (path === '/sign-in') page = <SignInPage />;
  else if (path === '/privacy') page = <PrivacyPage />;
  else if (path === '/consult/guest') page = <ConsultPage guest />;
  else if (consult) page = <ConsultPage appointmentId={consult[1]!} />;
  else page = <main className="narrow"><h1>{t('app.name')}</h1></main>;
  return (
    <>
      <header className="top-bar">
        <span className="brand">{t('app.name')}</span>
        <LanguageSwitch />
      </header>
      {page}
    </>
  );
}

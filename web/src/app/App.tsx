import { lazy, Suspense, useEffect } from 'react';
import { useTranslation } from 'react-i18next';
import { SignInPage } from '../auth/SignInPage.js';
import { currentSession } from '../auth/session.js';
import { ConsultPage } from '../consult/ConsultPage.js';
import { LanguageSwitch } from '../i18n/LanguageSwitch.js';
import { PrivacyPage } from '../privacy/PrivacyPage.js';
import { navigate, usePathname } from './navigation.js';

// Each area is its own chunk: a patient's phone never downloads the clinician's or the admin's code.
const PortalApp = lazy(() => import('../portal/PortalApp.js'));
const ClinicApp = lazy(() => import('../clinic/ClinicApp.js'));
const AdminApp = lazy(() => import('../admin/AdminApp.js'));
// Seen only when an app asks to use the record (SMART App Launch).
const AuthorizePage = lazy(() => import('../auth/AuthorizePage.js').then((m) => ({ default: m.AuthorizePage })));

/** Where each role starts: reception shares the clinic workspace and lands on the day's schedule. */
export const HOME_BY_ROLE: Record<string, string> = { patient: '/portal', clinician: '/clinic', reception: '/clinic', admin: '/admin' };

/** `/`: the signed-in user's own area, or sign-in. */
function Home() {
  const { t } = useTranslation();
  useEffect(() => {
    let live = true;
    currentSession().then(
      (account) => live && navigate(account ? (HOME_BY_ROLE[account.role] ?? '/sign-in') : '/sign-in', true),
      () => live && navigate('/sign-in', true),
    );
    return () => {
      live = false;
    };
  }, []);
  return <main className="narrow" aria-busy="true"><p>{t('app.loading')}</p></main>;
}

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** App routes; the node serves this same page for each of them (src/server/web-app-routes.ts). */
export function App() {
  const path = usePathname();
  const { t } = useTranslation();
  let page;
  const consult = /^\/consult\/([A-Za-z0-9\-.]{1,64})$/.exec(path);
  if (path === '/sign-in') page = <SignInPage />;
  else if (path === '/privacy') page = <PrivacyPage />;
  else if (path === '/authorize') page = <AuthorizePage />;
  else if (path === '/consult/guest') page = <ConsultPage guest />;
  else if (consult) page = <ConsultPage appointmentId={consult[1]!} />;
  else if (under(path, '/portal') || under(path, '/invite')) page = <PortalApp path={path} />;
  else if (under(path, '/clinic')) page = <ClinicApp path={path} />;
  else if (under(path, '/admin')) page = <AdminApp path={path} />;
  else page = <Home />;
  return (
    <>
      <header className="top-bar">
        <span className="brand">{t('app.name')}</span>
        <LanguageSwitch />
      </header>
      <Suspense fallback={<main className="narrow" aria-busy="true"><p>{t('app.loading')}</p></main>}>{page}</Suspense>
    </>
  );
}

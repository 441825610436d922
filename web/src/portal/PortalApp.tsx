import { useEffect, useRef, useState, type MouseEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { backToSignIn } from '../app/api.js';
import { navigate } from '../app/navigation.js';
import { AppointmentsPage } from './AppointmentsPage.js';
import { ConnectedApps, CONNECTED_APPS_PATH } from './ConnectedApps.js';
import { explain } from './explain.js';
import { InvitePage } from './InvitePage.js';
import { call, portalSession, type SessionInfo } from './portal-api.js';
import { RecordPage } from './RecordPage.js';
import { SecurityPage } from './SecurityPage.js';
import './portal.css';
import { addAreaMessages } from '../i18n/i18n.js';
import { portalEn, portalEs } from './messages.js';

addAreaMessages('portal', portalEn, portalEs);

const PAGES = [
  { path: '/portal', key: 'appointments' },
  { path: '/portal/record', key: 'record' },
  { path: '/portal/security', key: 'security' },
] as const;
/** Pages reached from another page rather than the menu; the menu marks the page they belong to. */
const SUBPAGES = [{ path: CONNECTED_APPS_PATH, key: 'apps', under: 'security' }] as const;

/** The patient portal (/portal/…, /invite/…): loaded only when a patient goes there. */
export default function PortalApp({ path }: { path: string }) {
  if (path === '/invite' || path.startsWith('/invite/')) return <InvitePage path={path} />;
  return <SignedInPortal path={path} />;
}

function SignedInPortal({ path }: { path: string }) {
  const { t } = useTranslation();
  const [session, setSession] = useState<SessionInfo>();
  const [error, setError] = useState<string>();
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    let live = true;
    portalSession().then(
      (s) => {
        if (!live) return;
        if (!s) return backToSignIn();
        // Staff who land here belong in their own area.
        if (s.account.role !== 'patient') return navigate('/', true);
        setSession(s);
      },
      (err: unknown) => live && setError(explain(t, err)),
    );
    return () => {
      live = false;
    };
  }, [t]);

  const subpage = SUBPAGES.find((p) => p.path === path);
  const page = PAGES.find((p) => p.path === path || p.key === subpage?.under) ?? PAGES[0];
  useEffect(() => {
    document.title = `${subpage ? t(`portal.${subpage.key}.title`) : t(`portal.nav.${page.key}`)} · telesalud`;
    // Move focus to the new page's content so screen readers and keyboards follow the navigation.
    main.current?.focus();
  }, [page.key, subpage, t]);

  async function signOut() {
    await call('POST', '/api/auth/sign-out').catch(() => undefined);
    navigate('/sign-in', true);
  }

  const go = (to: string) => (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(to);
  };

  const patientRef = session?.account.fhirRef?.startsWith('Patient/') ? session.account.fhirRef : undefined;
  return (
    <div className="portal">
      <nav className="portal-nav" aria-label={t('portal.nav.label')}>
        <ul>
          {PAGES.map((p) => (
            <li key={p.key}>
              <a href={p.path} onClick={go(p.path)} aria-current={p.key === page.key ? 'page' : undefined} data-testid={`nav-${p.key}`}>
                {t(`portal.nav.${p.key}`)}
              </a>
            </li>
          ))}
          <li>
            <button type="button" className="link" onClick={() => void signOut()} data-testid="sign-out">{t('portal.nav.signOut')}</button>
          </li>
        </ul>
      </nav>
      <main className="narrow stack" ref={main} tabIndex={-1} data-testid="portal">
        {error && <p role="alert" className="error">{error}</p>}
        {!session && !error && <p aria-busy="true">{t('portal.loading')}</p>}
        {session && !patientRef && <p role="alert" className="error">{t('portal.errors.noRecord')}</p>}
        {session && patientRef && page.key === 'appointments' && <AppointmentsPage patientRef={patientRef} />}
        {session && patientRef && page.key === 'record' && <RecordPage patientRef={patientRef} />}
        {session && !subpage && page.key === 'security' && <SecurityPage session={session} />}
        {session && subpage?.key === 'apps' && <ConnectedApps />}
      </main>
    </div>
  );
}

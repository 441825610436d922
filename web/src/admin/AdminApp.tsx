import { useEffect, useState, type MouseEvent, type ReactNode } from 'react';
import type { TFunction } from 'i18next';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { tooManyRequestsText } from '../app/too-many-requests.js';
import { navigate } from '../app/navigation.js';
import { useSignedInAccount, type Account } from '../auth/session.js';
import { AuditPage } from './AuditPage.js';
import { PolicyPage } from './PolicyPage.js';
import { SecurityPage } from './SecurityPage.js';
import { StatusPage } from './StatusPage.js';
import { UsersPage } from './UsersPage.js';
import './admin.css';
import { addAreaMessages } from '../i18n/i18n.js';
import { adminEn, adminEs } from './messages.js';

addAreaMessages('admin', adminEn, adminEs);

const SECTIONS = ['users', 'policy', 'audit', 'security', 'status'] as const;
type Section = (typeof SECTIONS)[number];

/** An in-app link: a real href (open in a new tab works), followed without reloading the page. */
export function AdminLink({ to, children, current, testId }: { to: string; children: ReactNode; current?: boolean; testId?: string }) {
  const follow = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={to} onClick={follow} {...(current ? { 'aria-current': 'page' as const } : {})} data-testid={testId}>
      {children}
    </a>
  );
}

/** Plain words for a failed call: never a status code alone, never a stack trace. */
export function errorMessage(t: TFunction, err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 403) return t('admin.errors.forbidden');
    if (err.status === 404) return t('admin.errors.notFound');
    if (err.status === 400) return t('admin.errors.invalid');
    if (err.status === 409) return t('admin.errors.conflict');
    const wait = tooManyRequestsText(t, err);
    if (wait) return wait;
    if (err.status === 401) return t('admin.errors.signedOut');
    return t('admin.errors.server');
  }
  return t('admin.errors.network');
}

/** The admin console (/admin/…): loaded only when an administrator goes there. */
export default function AdminApp({ path }: { path: string }) {
  const { t } = useTranslation();
  const [error, setError] = useState<string>();
  const account = useSignedInAccount((err) => setError(errorMessage(t, err)));

  const section = SECTIONS.find((s) => path === `/admin/${s}` || path.startsWith(`/admin/${s}/`));
  useEffect(() => {
    if (!section) navigate('/admin/users', true);
  }, [section]);

  useEffect(() => {
    document.title = `${section ? t(`admin.nav.${section}`) : t('admin.title')} · ${t('admin.title')}`;
  }, [section, t]);

  if (error) {
    return (
      <main className="narrow">
        <p role="alert" className="error">
          {error}
        </p>
      </main>
    );
  }
  if (!account || !section) {
    return (
      <main className="narrow" aria-busy="true">
        <p>{t('app.loading')}</p>
      </main>
    );
  }
  if (account.role !== 'admin') {
    return (
      <main className="narrow stack">
        <h1>{t('admin.title')}</h1>
        <p role="alert" className="error" data-testid="admin-not-admin">
          {t('admin.notAdmin')}
        </p>
        <p>
          <a href="/">{t('admin.goHome')}</a>
        </p>
      </main>
    );
  }

  const pages: Record<Section, ReactNode> = {
    users: <UsersPage self={account} />,
    policy: <PolicyPage />,
    audit: <AuditPage />,
    security: <SecurityPage />,
    status: <StatusPage />,
  };
  return (
    <div className="admin">
      <nav className="admin-nav" aria-label={t('admin.nav.label')}>
        <ul>
          {SECTIONS.map((s) => (
            <li key={s}>
              <AdminLink to={`/admin/${s}`} current={s === section} testId={`admin-nav-${s}`}>
                {t(`admin.nav.${s}`)}
              </AdminLink>
            </li>
          ))}
        </ul>
        <p className="admin-who">{t('admin.signedInAs', { email: account.email })}</p>
      </nav>
      <main className="admin-main" data-testid={`admin-page-${section}`}>
        {pages[section]}
      </main>
    </div>
  );
}

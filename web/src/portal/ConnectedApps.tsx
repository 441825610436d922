import { useCallback, useEffect, useRef, useState, type MouseEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { navigate } from '../app/navigation.js';
import { explain } from './explain.js';
import { formatDateTime } from './format.js';
import { call } from './portal-api.js';

/** An app holding access to the person's record (src/auth/oauth/connected-apps-routes.ts). */
interface ConnectedApp {
  clientId: string;
  name: string;
  scopes: { level: 'patient' | 'user'; type: string; interactions: string[] }[];
  launchPatient: boolean;
  offlineAccess: boolean;
  approved: string;
  lastUsed: string;
  accessUntil: string;
}

export const CONNECTED_APPS_PATH = '/portal/apps';

/**
 * /portal/apps: the apps the patient has allowed to use their record, in the same words as the
 * approval page (authorize.* messages), and a way to take that access back, after a confirmation.
 * Reached from the security page.
 */
export function ConnectedApps() {
  const { t } = useTranslation();
  const [apps, setApps] = useState<ConnectedApp[]>();
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState<string>();
  const [confirming, setConfirming] = useState<string>();
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);

  const load = useCallback(() => {
    call<{ apps: ConnectedApp[] }>('GET', '/api/oauth/apps').then(
      (r) => setApps(r.apps),
      (err: unknown) => setError(explain(t, err)),
    );
  }, [t]);
  useEffect(load, [load]);

  async function revoke(app: ConnectedApp) {
    setBusy(true);
    setError(undefined);
    try {
      await call('DELETE', `/api/oauth/apps/${encodeURIComponent(app.clientId)}`);
      setStatus(t('portal.apps.revoked', { app: app.name }));
    } catch (err) {
      // Already gone (another device revoked it, or its access ran out): the list just catches up.
      if (err instanceof ApiError && err.status === 404) setStatus(t('portal.apps.revoked', { app: app.name }));
      else setError(explain(t, err));
    } finally {
      setBusy(false);
      setConfirming(undefined);
      load();
      heading.current?.focus();
    }
  }

  const back = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate('/portal/security');
  };
  const what = (type: string) => t(`authorize.types.${type === '*' ? 'all' : type}`, { defaultValue: type });
  const writes = (interactions: string[]) => interactions.some((i) => i === 'c' || i === 'u' || i === 'd');

  return (
    <div className="stack" data-testid="connected-apps">
      <p>
        <a href="/portal/security" onClick={back}>{t('portal.apps.back')}</a>
      </p>
      <h1 ref={heading} tabIndex={-1}>{t('portal.apps.title')}</h1>
      <p className="hint">{t('portal.apps.intro')}</p>
      {status && <p role="status" data-testid="apps-status">{status}</p>}
      {error && <p role="alert" className="error">{error}</p>}
      {!apps && !error && <p aria-busy="true">{t('portal.loading')}</p>}
      {apps?.length === 0 && <p data-testid="apps-empty">{t('portal.apps.none')}</p>}
      {apps && apps.length > 0 && (
        <ul className="cards">
          {apps.map((app) => (
            <li key={app.clientId} className="card stack" data-testid="connected-app">
              <h2 id={`app-${app.clientId}`}>{app.name}</h2>
              <p>{t('portal.apps.may')}</p>
              <ul data-testid="app-scopes">
                {app.launchPatient && <li>{t('authorize.patientContext')}</li>}
                {app.scopes.map((s) => (
                  <li key={`${s.level}/${s.type}`}>{t(`authorize.${writes(s.interactions) ? 'write' : 'read'}${s.level === 'patient' ? 'Patient' : 'User'}`, { what: what(s.type) })}</li>
                ))}
              </ul>
              <p className="hint">{t('portal.apps.approved', { when: formatDateTime(app.approved) })}</p>
              <p className="hint">{t('portal.apps.lastUsed', { when: formatDateTime(app.lastUsed) })}</p>
              <p className="hint">{t(app.offlineAccess ? 'portal.apps.offline' : 'portal.apps.online', { when: formatDateTime(app.accessUntil) })}</p>
              {confirming === app.clientId ? (
                <div className="panel stack" role="group" aria-labelledby={`confirm-${app.clientId}`}>
                  <p id={`confirm-${app.clientId}`}>{t('portal.apps.confirm', { app: app.name })}</p>
                  <div className="row">
                    <button type="button" className="primary" disabled={busy} autoFocus onClick={() => void revoke(app)} data-testid="app-revoke-confirm">
                      {busy ? t('portal.busy') : t('portal.apps.revokeGo')}
                    </button>
                    <button type="button" disabled={busy} onClick={() => setConfirming(undefined)}>{t('portal.security.cancel')}</button>
                  </div>
                </div>
              ) : (
                <div className="row">
                  <button type="button" onClick={() => setConfirming(app.clientId)} aria-label={t('portal.apps.revokeNamed', { app: app.name })} data-testid="app-revoke">
                    {t('portal.apps.revoke')}
                  </button>
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

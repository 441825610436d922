import { useEffect, useState, type FormEvent, type MouseEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { ReauthFields, reauthProof, SecuritySettings, type MfaState } from '../auth/security/SecuritySettings.js';
import { navigate } from '../app/navigation.js';
import { CONNECTED_APPS_PATH } from './ConnectedApps.js';
import { explain } from './explain.js';
import { call, download, type SessionInfo } from './portal-api.js';

/** /portal/security: sessions, second factors, password (shared with the staff workspaces), and a copy of my record. */
export function SecurityPage({ session }: { session: SessionInfo }) {
  const { t } = useTranslation();
  return (
    <div className="stack" data-testid="security-page">
      <h1>{t('portal.security.title')}</h1>
      <SecuritySettings />
      <ConnectedAppsLink />
      {session.account.fhirRef?.startsWith('Patient/') && <ExportRecord patientId={session.account.fhirRef.slice('Patient/'.length)} />}
    </div>
  );
}

/** The apps given access to the record: their own page (ConnectedApps.tsx). */
function ConnectedAppsLink() {
  const { t } = useTranslation();
  const open = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(CONNECTED_APPS_PATH);
  };
  return (
    <section aria-labelledby="apps-link-title" className="stack">
      <h2 id="apps-link-title">{t('portal.apps.title')}</h2>
      <p className="hint">{t('portal.apps.linkIntro')}</p>
      <p>
        <a href={CONNECTED_APPS_PATH} onClick={open} data-testid="connected-apps-link">{t('portal.apps.link')}</a>
      </p>
    </section>
  );
}

function ExportRecord({ patientId }: { patientId: string }) {
  const { t } = useTranslation();
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState<string>();
  const [needsCode, setNeedsCode] = useState(false);
  const [withPasskey, setWithPasskey] = useState(false);
  useEffect(() => {
    call<MfaState>('GET', '/api/auth/mfa').then((m) => {
      setNeedsCode(m.totp || m.passkeys > 0);
      setWithPasskey(m.passkeys > 0);
    }, () => undefined);
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    await run(false);
  }

  async function run(usePasskey: boolean) {
    setBusy(true);
    setError(undefined);
    try {
      const reauth = await reauthProof(password, code, usePasskey ? 'export' : undefined);
      if (!reauth) return setError(t('portal.security.passkeyNotUsed'));
      await download('POST', `/api/patients/${patientId}/export`, `telesalud-record-${new Date().toISOString().slice(0, 10)}.json`, reauth);
      setStatus(t('portal.security.exported'));
      setOpen(false);
      setPassword('');
      setCode('');
    } catch (err) {
      setError(explain(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="export-title" className="stack">
      <h2 id="export-title">{t('portal.security.export')}</h2>
      <p className="hint">{t('portal.security.exportIntro')}</p>
      {status && <p role="status">{status}</p>}
      {!open ? (
        <button type="button" onClick={() => setOpen(true)} data-testid="export-start">{t('portal.security.exportStart')}</button>
      ) : (
        <form className="stack panel" onSubmit={(e) => void submit(e)} aria-labelledby="export-title">
          <ReauthFields password={password} setPassword={setPassword} code={code} setCode={setCode} needsCode={needsCode} onPasskey={withPasskey ? () => void run(true) : undefined} busy={busy} />
          {error && <p role="alert" className="error">{error}</p>}
          <div className="row">
            <button type="submit" className="primary" disabled={busy}>{busy ? t('portal.busy') : t('portal.security.exportGo')}</button>
            <button type="button" onClick={() => setOpen(false)}>{t('portal.security.cancel')}</button>
          </div>
        </form>
      )}
    </section>
  );
}

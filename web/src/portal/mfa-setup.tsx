import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { explain } from './explain.js';
import { call } from './portal-api.js';

export interface TotpEnrolment {
  secret: string;
  qrDataUrl: string;
}

/** The QR code and the key to type by hand, then the first code from the app to prove it works. */
export function TotpSetup({ enrolment, onConfirmed }: { enrolment: TotpEnrolment; onConfirmed: (recoveryCodes: string[]) => void }) {
  const { t } = useTranslation();
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  async function confirm(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const answer = await call<{ recoveryCodes: string[] }>('POST', '/api/auth/mfa/totp/confirm', { code: code.replace(/\s+/g, '') });
      onConfirmed(answer.recoveryCodes);
    } catch (err) {
      setError(explain(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="stack" data-testid="totp-setup" aria-labelledby="totp-title">
      <h2 id="totp-title">{t('portal.mfa.totpTitle')}</h2>
      <ol className="steps">
        <li>{t('portal.mfa.totpStep1')}</li>
        <li>{t('portal.mfa.totpStep2')}</li>
        <li>{t('portal.mfa.totpStep3')}</li>
      </ol>
      <img className="qr" src={enrolment.qrDataUrl} alt={t('portal.mfa.qrAlt')} width="220" height="220" data-testid="totp-qr" />
      <p>
        {t('portal.mfa.manualKey')} <code className="secret" data-testid="totp-secret" data-secret={enrolment.secret}>{enrolment.secret.replace(/(.{4})/g, '$1 ').trim()}</code>
      </p>
      <form className="stack" onSubmit={(e) => void confirm(e)}>
        <label>
          {t('portal.mfa.codeLabel')}
          <input name="code" autoComplete="one-time-code" inputMode="numeric" pattern="[0-9 ]{6,8}" required value={code} onChange={(e) => setCode(e.target.value)} data-testid="totp-code" />
        </label>
        {error && <p role="alert" className="error">{error}</p>}
        <button type="submit" className="primary" disabled={busy} data-testid="totp-confirm">{busy ? t('portal.busy') : t('portal.mfa.confirm')}</button>
      </form>
    </section>
  );
}

/** Recovery codes, shown once: the patient confirms they saved them before going on. */
export function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  const { t } = useTranslation();
  const [saved, setSaved] = useState(false);
  const [copied, setCopied] = useState(false);
  const text = `${t('portal.codes.fileHeading')}\n\n${codes.join('\n')}\n`;

  function saveFile() {
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = 'telesalud-recovery-codes.txt';
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  return (
    <section className="stack" data-testid="recovery-codes" aria-labelledby="codes-title">
      <h2 id="codes-title">{t('portal.codes.title')}</h2>
      <p>{t('portal.codes.intro')}</p>
      <ol className="codes">
        {codes.map((c) => (
          <li key={c}><code>{c}</code></li>
        ))}
      </ol>
      <div className="row">
        <button type="button" onClick={saveFile} data-testid="codes-download">{t('portal.codes.download')}</button>
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard?.writeText(text).then(() => setCopied(true), () => setCopied(false));
          }}
        >
          {t('portal.codes.copy')}
        </button>
      </div>
      {copied && <p role="status">{t('portal.codes.copied')}</p>}
      <label className="check">
        <input type="checkbox" checked={saved} onChange={(e) => setSaved(e.target.checked)} data-testid="codes-saved" />
        {t('portal.codes.saved')}
      </label>
      <button type="button" className="primary" disabled={!saved} onClick={onDone} data-testid="codes-done">{t('portal.codes.continue')}</button>
    </section>
  );
}

/** Registers a passkey on this device (the browser asks for the fingerprint, face or PIN). */
/** Registers a passkey on this device after re-authentication (the password and, when the account has one, a code or a passkey assertion). */
export async function addPasskey(reauth: { password?: string; code?: string; passkey?: Record<string, unknown> }, label: string): Promise<void> {
  const options = await call<Record<string, unknown>>('POST', '/api/auth/passkeys/register/options', reauth);
  // Loaded only when used: most patients never register a passkey on their phone here.
  const { startRegistration } = await import('@simplewebauthn/browser');
  const response = await startRegistration({ optionsJSON: options as never });
  await call('POST', '/api/auth/passkeys/register/verify', { response, label });
}

export function passkeysSupported(): boolean {
  return typeof window.PublicKeyCredential === 'function';
}

/** A short name for this device's passkey, from what the browser says about itself. */
export function deviceLabel(): string {
  const ua = navigator.userAgent;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iPhone' : /Mac OS/.test(ua) ? 'Mac' : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `passkey ${os}` : 'passkey';
}

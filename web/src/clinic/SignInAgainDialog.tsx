import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { api, backToSignIn } from '../app/api.js';
import { waitText } from '../app/too-many-requests.js';
import { currentSession, signInStep, signInWithPasskey, type SignInResult } from '../auth/session.js';

/**
 * Sign-in again without leaving the page, for a session that ended while the clinician had typed
 * work on it: the same steps as the sign-in page (password and code, or the passkey after the
 * password) for the same account only — the work on the page is theirs. A modal dialog whose
 * backdrop hides the page: a session that ended on an unattended screen shows no record meanwhile.
 */
export function SignInAgainDialog({ email, accountId, onSignedIn }: { email: string; accountId: string; onSignedIn(): void }) {
  const { t } = useTranslation();
  const dialog = useRef<HTMLDialogElement>(null);
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<SignInResult | 'cancelled' | 'other-account' | undefined>();
  const [wait, setWait] = useState<number>();
  const [passkeyOptions, setPasskeyOptions] = useState<Record<string, unknown>>();

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
    // The dialog itself takes the focus, not the password field: it may open while the clinician is
    // still typing the note, and those keystrokes must not land in the password (nor submit it).
    element?.focus();
    return () => element?.close();
  }, []);

  /** Signed in: only as the account whose work this is; anyone else is signed out again at once. */
  async function signedIn() {
    const account = await currentSession().catch(() => undefined);
    if (account?.id === accountId) return onSignedIn();
    await api('POST', '/api/auth/sign-out').catch(() => undefined);
    setResult('other-account');
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    const step = await signInStep(email, password, code.trim());
    setResult(step.result);
    setWait(step.retryAfterSeconds);
    setPasskeyOptions(step.passkeyOptions);
    if (step.result === 'signed-in') {
      setPassword('');
      setCode('');
      await signedIn();
    }
    setBusy(false);
  }

  async function usePasskey() {
    if (!passkeyOptions) return;
    setBusy(true);
    const outcome = await signInWithPasskey(passkeyOptions);
    // Each challenge is good for one try: after any answer, the password step starts again.
    setPasskeyOptions(undefined);
    setResult(outcome.result);
    setWait('retryAfterSeconds' in outcome ? outcome.retryAfterSeconds : undefined);
    if (outcome.result === 'signed-in') {
      setPassword('');
      await signedIn();
    }
    setBusy(false);
  }

  const message =
    result === 'mfa-required'
      ? t(passkeyOptions ? 'signIn.mfaOrPasskey' : 'signIn.mfa')
      : result === 'cancelled'
        ? t('signIn.passkeyCancelled')
        : result === 'throttled'
          ? waitText(t, wait)
          : result === 'refused'
            ? t('signIn.failed')
            : result === 'network'
              ? t('signIn.network')
              : result === 'other-account'
                ? t('clinic.reauth.otherAccount', { email })
                : undefined;
  return (
    // Escape does not close it: without a session nothing on the page can be saved.
    <dialog ref={dialog} className="sign-in-again panel" aria-labelledby="sign-in-again-title" aria-describedby="sign-in-again-explain" tabIndex={-1} onCancel={(e) => e.preventDefault()} data-testid="sign-in-again">
      <form onSubmit={(e) => void submit(e)} className="stack">
        <h2 id="sign-in-again-title">{t('clinic.reauth.title')}</h2>
        <p id="sign-in-again-explain">{t('clinic.reauth.explain')}</p>
        <label>
          {t('signIn.email')}
          <input type="email" name="email" autoComplete="username" readOnly value={email} />
        </label>
        <label>
          {t('signIn.password')}
          <input type="password" name="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} data-testid="sign-in-again-password" />
        </label>
        <label>
          {t('signIn.code')}
          <input type="text" name="code" autoComplete="one-time-code" inputMode="numeric" value={code} onChange={(e) => setCode(e.target.value)} aria-describedby="sign-in-again-code-hint" data-testid="sign-in-again-code" />
          <small id="sign-in-again-code-hint">{t('signIn.codeHint')}</small>
        </label>
        {message && (
          <p role="alert" className="error" data-testid="sign-in-again-error">
            {message}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy} data-testid="sign-in-again-submit">
          {busy ? t('signIn.busy') : t('signIn.submit')}
        </button>
        {passkeyOptions && (
          <button type="button" className="primary" disabled={busy} onClick={() => void usePasskey()} data-testid="sign-in-again-passkey">
            {t('signIn.usePasskey')}
          </button>
        )}
        <button type="button" onClick={() => backToSignIn()} data-testid="sign-in-again-leave">
          {t('clinic.reauth.leave')}
        </button>
      </form>
    </dialog>
  );
}

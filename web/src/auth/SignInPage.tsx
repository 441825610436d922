import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { navigate, safeNext } from '../app/navigation.js';
import { waitText } from '../app/too-many-requests.js';
import { signInStep, signInWithPasskey, type SignInResult } from './session.js';

export function SignInPage() {
  const { t } = useTranslation();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<SignInResult | 'cancelled' | undefined>();
  // How long a throttled sign-in must wait, as the server said.
  const [wait, setWait] = useState<number>();
  // Set by a right password on an account with a passkey: the second step can be that passkey.
  const [passkeyOptions, setPasskeyOptions] = useState<Record<string, unknown>>();

  const done = () => navigate(safeNext(new URLSearchParams(location.search).get('next')), true);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    const step = await signInStep(email.trim(), password, code.trim());
    setBusy(false);
    setResult(step.result);
    setWait(step.retryAfterSeconds);
    setPasskeyOptions(step.passkeyOptions);
    if (step.result === 'signed-in') done();
  }

  async function usePasskey() {
    if (!passkeyOptions) return;
    setBusy(true);
    const outcome = await signInWithPasskey(passkeyOptions);
    setBusy(false);
    // Each challenge is good for one try: after any answer, the password step starts again.
    setPasskeyOptions(undefined);
    setResult(outcome.result);
    setWait('retryAfterSeconds' in outcome ? outcome.retryAfterSeconds : undefined);
    if (outcome.result === 'signed-in') done();
  }

  const message = result === 'mfa-required' ? t(passkeyOptions ? 'signIn.mfaOrPasskey' : 'signIn.mfa') : result === 'cancelled' ? t('signIn.passkeyCancelled') : result === 'throttled' ? waitText(t, wait) : result === 'refused' ? t('signIn.failed') : result === 'network' ? t('signIn.network') : undefined;
  return (
    <main className="narrow">
      <h1>{t('signIn.title')}</h1>
      <form onSubmit={(e) => void submit(e)} className="stack" data-testid="sign-in-form">
        <label>
          {t('signIn.email')}
          <input type="email" name="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          {t('signIn.password')}
          <input type="password" name="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <label>
          {t('signIn.code')}
          <input type="text" name="code" autoComplete="one-time-code" inputMode="numeric" value={code} onChange={(e) => setCode(e.target.value)} aria-describedby="code-hint" />
          <small id="code-hint">{t('signIn.codeHint')}</small>
        </label>
        {message && (
          <p role="alert" className="error" data-testid="sign-in-error">
            {message}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? t('signIn.busy') : t('signIn.submit')}
        </button>
        {passkeyOptions && (
          <button type="button" className="primary" disabled={busy} onClick={() => void usePasskey()} data-testid="sign-in-passkey">
            {t('signIn.usePasskey')}
          </button>
        )}
      </form>
      <p>
        <a href="/privacy" data-testid="privacy-link">{t('privacy.link')}</a>
      </p>
    </main>
  );
}

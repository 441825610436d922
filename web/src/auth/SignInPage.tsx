import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { navigate, safeNext } from '../app/navigation.js';
import { signIn, type SignInResult } from './session.js';

export function SignInPage() {
  const { t } = useTranslation();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<SignInResult | undefined>();

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    const outcome = await signIn(email.trim(), password, code.trim());
    setBusy(false);
    setResult(outcome);
    if (outcome === 'signed-in') navigate(safeNext(new URLSearchParams(location.search).get('next')), true);
  }

  const message = result === 'mfa-required' ? t('signIn.mfa') : result === 'throttled' ? t('signIn.throttled') : result === 'refused' ? t('signIn.failed') : result === 'network' ? t('signIn.network') : undefined;
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
      </form>
      <p>
        <a href="/privacy" data-testid="privacy-link">{t('privacy.link')}</a>
      </p>
    </main>
  );
}

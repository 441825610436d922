import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { adoptPublicClinicTimeZone } from '../app/public-clinic-time.js';
import { navigate } from '../app/navigation.js';
import { explain } from './explain.js';
import { formatAppointmentTime } from './format.js';
import { addPasskey, deviceLabel, passkeysSupported, RecoveryCodes, TotpSetup, type TotpEnrolment } from './mfa-setup.js';
import { PasswordPolicyText, PasswordProblems, PasswordStrength, usePasswordCheck, type PasswordProblem } from './PasswordStrength.js';
import { call } from './portal-api.js';

interface Preview {
  valid: boolean;
  role?: string;
  mfaRequired: boolean;
  expiresAt: string;
  invitedBy?: { name: string | null; role: 'clinician' | 'admin' | 'installation' };
  passwordPolicy?: { minLength: number; maxLength: number; minScore: number };
}

interface Accepted {
  account: { role: string };
  mfaEnrolmentRequired?: boolean;
  mfaEnrolment?: TotpEnrolment;
}

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** The token from /invite/<token> or /invite#<token>, then taken out of the address bar and history. */
function takeToken(path: string): string | undefined {
  const fromPath = path.startsWith('/invite/') ? decodeURIComponent(path.slice('/invite/'.length)) : '';
  const token = fromPath || location.hash.slice(1);
  if (fromPath || location.hash) history.replaceState(null, '', '/invite');
  return TOKEN.test(token) ? token : undefined;
}

type Step = 'loading' | 'invalid' | 'password' | 'mfa-choice' | 'totp' | 'codes';

/** /invite: who invites, a password with live feedback, then a second factor, then the portal. */
export function InvitePage({ path }: { path: string }) {
  const { t } = useTranslation();
  const [token] = useState(() => takeToken(path));
  const [preview, setPreview] = useState<Preview>();
  const [step, setStep] = useState<Step>(token ? 'loading' : 'invalid');
  const [invalidReason, setInvalidReason] = useState<string>();
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [problems, setProblems] = useState<PasswordProblem[]>([]);
  const [enrolment, setEnrolment] = useState<TotpEnrolment>();
  const [codes, setCodes] = useState<string[]>([]);
  const verdict = usePasswordCheck(step === 'password' ? password : '', { token: token ?? '' });

  useEffect(() => {
    if (!token) return;
    // The expiry is shown on the clinic's clock, as every time once signed in.
    Promise.all([call<Preview>('GET', `/api/invitations/${token}/preview`), adoptPublicClinicTimeZone()]).then(
      ([p]) => {
        setPreview(p);
        setStep('password');
      },
      (err: unknown) => {
        setInvalidReason(err instanceof ApiError && err.status === 404 ? t('portal.invite.invalid') : explain(t, err));
        setStep('invalid');
      },
    );
  }, [token, t]);

  useEffect(() => {
    document.title = `${t('portal.invite.title')} · telesalud`;
  }, [t]);

  async function accept(event: FormEvent) {
    event.preventDefault();
    if (password !== repeat) {
      setError(t('portal.password.mismatch'));
      return;
    }
    setBusy(true);
    setError(undefined);
    setProblems([]);
    try {
      const answer = await call<Accepted>('POST', '/api/invitations/accept', { token, password });
      if (answer.mfaEnrolment) {
        setEnrolment(answer.mfaEnrolment);
        setStep('totp');
      } else setStep('mfa-choice');
    } catch (err) {
      if (err instanceof ApiError && err.code === 'weak-password') {
        setProblems(((err.body as { problems?: PasswordProblem[] }).problems ?? []));
        setError(t('portal.password.refused'));
      } else setError(explain(t, err));
    } finally {
      setBusy(false);
    }
  }

  async function startTotp() {
    setBusy(true);
    setError(undefined);
    try {
      setEnrolment(await call<TotpEnrolment>('POST', '/api/auth/mfa/totp/enrol', { password }));
      setStep('totp');
    } catch (err) {
      setError(explain(t, err));
    } finally {
      setBusy(false);
    }
  }

  async function startPasskey() {
    setBusy(true);
    setError(undefined);
    try {
      await addPasskey({ password }, deviceLabel());
      const answer = await call<{ recoveryCodes: string[] }>('POST', '/api/auth/mfa/recovery-codes', { password });
      setCodes(answer.recoveryCodes);
      setStep('codes');
    } catch (err) {
      setError(err instanceof ApiError ? explain(t, err) : t('portal.errors.passkeyCancelled'));
    } finally {
      setBusy(false);
    }
  }

  const finish = () => {
    setPassword('');
    setRepeat('');
    navigate('/portal', true);
  };

  const inviter = preview?.invitedBy;
  const staff = preview?.role !== undefined && preview.role !== 'patient';
  const inviterText = !inviter || inviter.role === 'installation' || !inviter.name
    ? t(staff ? 'portal.invite.staffFromClinic' : 'portal.invite.fromClinic')
    : t(staff ? 'portal.invite.staffFrom' : 'portal.invite.from', { name: inviter.name });

  return (
    <main className="narrow stack portal" data-testid="invite-page" data-step={step}>
      <h1>{t('portal.invite.title')}</h1>
      {step === 'loading' && <p aria-busy="true">{t('portal.loading')}</p>}
      {step === 'invalid' && (
        <div className="stack">
          <p role="alert" className="error" data-testid="invite-invalid">{invalidReason ?? t('portal.invite.invalid')}</p>
          <a href="/sign-in">{t('portal.invite.signInInstead')}</a>
        </div>
      )}
      {step === 'password' && preview && (
        <>
          <p data-testid="invite-from">{inviterText}</p>
          <p className="hint" data-testid="invite-expires">{t('portal.invite.expires', { date: formatAppointmentTime(preview.expiresAt) })}</p>
          <form className="stack" onSubmit={(e) => void accept(e)} data-testid="invite-form">
            <h2>{t('portal.invite.choosePassword')}</h2>
            <PasswordPolicyText minLength={preview.passwordPolicy?.minLength ?? 12} />
            <label>
              {t('portal.password.new')}
              <input type="password" name="new-password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} aria-describedby="password-policy password-feedback" data-testid="new-password" />
            </label>
            <PasswordStrength verdict={verdict} id="password-feedback" />
            <label>
              {t('portal.password.repeat')}
              <input type="password" name="repeat-password" autoComplete="new-password" required value={repeat} onChange={(e) => setRepeat(e.target.value)} data-testid="repeat-password" />
            </label>
            {error && <p role="alert" className="error" data-testid="invite-error">{error}</p>}
            <PasswordProblems problems={problems} />
            <button type="submit" className="primary" disabled={busy} data-testid="invite-accept">{busy ? t('portal.busy') : t('portal.invite.accept')}</button>
          </form>
        </>
      )}
      {step === 'mfa-choice' && (
        <section className="stack" aria-labelledby="mfa-choice-title" data-testid="mfa-choice">
          <h2 id="mfa-choice-title">{t('portal.mfa.chooseTitle')}</h2>
          <p>{t('portal.mfa.chooseIntro')}</p>
          <button type="button" className="primary" disabled={busy} onClick={() => void startTotp()} data-testid="mfa-choose-totp">{t('portal.mfa.chooseTotp')}</button>
          {passkeysSupported() && <button type="button" disabled={busy} onClick={() => void startPasskey()} data-testid="mfa-choose-passkey">{t('portal.mfa.choosePasskey')}</button>}
          {!preview?.mfaRequired && <button type="button" disabled={busy} onClick={finish} data-testid="mfa-skip">{t('portal.mfa.skip')}</button>}
          {error && <p role="alert" className="error">{error}</p>}
        </section>
      )}
      {step === 'totp' && enrolment && (
        <TotpSetup
          enrolment={enrolment}
          onConfirmed={(recovery) => {
            if (recovery.length === 0) return finish();
            setCodes(recovery);
            setStep('codes');
          }}
        />
      )}
      {step === 'codes' && <RecoveryCodes codes={codes} onDone={finish} />}
    </main>
  );
}

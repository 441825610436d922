import { useCallback, useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { ApiError } from '../../app/api.js';
import { addAreaMessages } from '../../i18n/i18n.js';
import { formatDateTime } from '../../portal/format.js';
import { portalEn, portalEs } from '../../portal/messages.js';
import { addPasskey, deviceLabel, passkeysSupported, RecoveryCodes, TotpSetup, type TotpEnrolment } from '../../portal/mfa-setup.js';
import { PasswordProblems, PasswordStrength, usePasswordCheck, type PasswordProblem } from '../../portal/PasswordStrength.js';
import { call } from '../../portal/portal-api.js';
import { passkeyAssertion, type ReauthPurpose } from '../reauth-passkey.js';
import { SecurityAreaContext, securityErrorText, useSecurityWords, type SecurityArea } from './security-words.js';

/*
 * The account's own security settings — sessions, second factors, password — for every role: the
 * patient portal's security page and the staff workspaces' show the same components, each in its
 * own area's words (security-words.ts). The TOTP set-up, recovery codes and strength meter inside
 * are the ones the portal's invitation page shows too, with the portal's words for them (`portal.mfa`,
 * `portal.codes`, `portal.password`): added here for the staff areas that load this.
 */
addAreaMessages('portal', portalEn, portalEs);

/** Sessions, second factors and the password: what every signed-in person manages for themselves, in `area`'s words. */
export function SecuritySettings({ area = 'portal' }: { area?: SecurityArea }) {
  return (
    <SecurityAreaContext.Provider value={area}>
      <div className="stack security-settings">
        <Sessions />
        <SecondFactors />
        <PasswordChange />
      </div>
    </SecurityAreaContext.Provider>
  );
}

interface SessionRow {
  id: string;
  created: string;
  lastSeen: string;
  source: string | null;
  userAgent: string | null;
  current: boolean;
}
export interface MfaState {
  totp: boolean;
  passkeys: number;
  recoveryCodesLeft: number;
  required: boolean;
}
interface Passkey {
  id: string;
  label: string;
  created?: string;
  lastUsed?: string | null;
}

/** A browser and system in words, from its user agent. */
function describeAgent(ua: string | null): string {
  if (!ua) return '—';
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : '';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS/.test(ua) ? 'macOS' : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : '';
  return [browser, os].filter(Boolean).join(' · ') || ua.slice(0, 40);
}

function Sessions() {
  const { w, t } = useSecurityWords();
  const [rows, setRows] = useState<SessionRow[]>();
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState<string>();
  const load = useCallback(() => {
    call<{ sessions: SessionRow[] }>('GET', '/api/auth/sessions').then((r) => setRows(r.sessions), (err: unknown) => setError(securityErrorText(w, t, err)));
  }, [w, t]);
  useEffect(load, [load]);

  async function end(id: string) {
    try {
      await call('DELETE', `/api/auth/sessions/${id}`);
      setStatus(w('sessionEnded'));
      load();
    } catch (err) {
      setError(securityErrorText(w, t, err));
    }
  }

  return (
    <section aria-labelledby="sessions-title" className="stack" data-testid="sessions">
      <h2 id="sessions-title">{w('sessions')}</h2>
      <p className="hint">{w('sessionsIntro')}</p>
      {status && <p role="status">{status}</p>}
      {error && <p role="alert" className="error">{error}</p>}
      <ul className="cards">
        {rows?.map((s) => (
          <li key={s.id} className="card" data-testid="session-row" data-current={s.current}>
            <p>
              {describeAgent(s.userAgent)} {s.current && <span className="badge ok">{w('thisDevice')}</span>}
            </p>
            <p className="hint">{w('lastSeen', { when: formatDateTime(s.lastSeen) })}</p>
            {!s.current && (
              <button type="button" onClick={() => void end(s.id)} aria-label={w('endNamed', { device: describeAgent(s.userAgent) })} data-testid="session-end">
                {w('end')}
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

/**
 * Password and, when the account has a second factor, one of them: a code (authenticator app or
 * recovery code) or, where the account has a passkey, the passkey instead. Every change of factors asks again.
 */
export function ReauthFields({ password, setPassword, code, setCode, needsCode, onPasskey, busy }: { password: string; setPassword: (v: string) => void; code: string; setCode: (v: string) => void; needsCode: boolean; onPasskey?: (() => void) | undefined; busy?: boolean }) {
  const { w } = useSecurityWords();
  return (
    <>
      <label>
        {w('currentPassword')}
        <input type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
      </label>
      {needsCode && (
        <label>
          {w('currentCode')}
          <input autoComplete="one-time-code" spellCheck={false} required={!onPasskey} value={code} onChange={(e) => setCode(e.target.value)} />
        </label>
      )}
      {needsCode && onPasskey && (
        <button type="button" disabled={busy || !password} onClick={onPasskey} data-testid="reauth-passkey">
          {w('usePasskey')}
        </button>
      )}
    </>
  );
}

/** What a re-authentication sends: the password and the code typed, or a passkey assertion for `purpose` (undefined if the user gave up). */
export async function reauthProof(password: string, code: string, purpose?: ReauthPurpose): Promise<{ password: string; code?: string; passkey?: Record<string, unknown> } | undefined> {
  if (!purpose) return { password, ...(code.trim() ? { code: code.trim() } : {}) };
  const passkey = await passkeyAssertion(purpose);
  return passkey ? { password, passkey } : undefined;
}

type FactorAction = 'totp' | 'passkey' | 'codes' | 'disable' | 'remove-passkey';

/** Until when the node lets a change of these settings go without the password again (GET /api/auth/session `reauthenticatedUntil`). */
async function recentReauthUntil(): Promise<number | undefined> {
  const session = await call<{ reauthenticatedUntil?: string }>('GET', '/api/auth/session');
  return session.reauthenticatedUntil ? Date.parse(session.reauthenticatedUntil) : undefined;
}

function SecondFactors() {
  const { w, t } = useSecurityWords();
  const [mfa, setMfa] = useState<MfaState>();
  const [passkeys, setPasskeys] = useState<Passkey[]>([]);
  const [action, setAction] = useState<FactorAction>();
  const [removing, setRemoving] = useState<Passkey>();
  // The user confirmed who they are a moment ago: the next change goes without asking (the node decides, this only skips the form).
  const [recentUntil, setRecentUntil] = useState<number>();
  const [auto, setAuto] = useState(false);
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [enrolment, setEnrolment] = useState<TotpEnrolment>();
  const [codes, setCodes] = useState<string[]>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState<string>();

  const load = useCallback(() => {
    call<MfaState>('GET', '/api/auth/mfa').then(setMfa, (err: unknown) => setError(securityErrorText(w, t, err)));
    call<{ passkeys: Passkey[] }>('GET', '/api/auth/passkeys').then((r) => setPasskeys(r.passkeys), () => undefined);
    recentReauthUntil().then(setRecentUntil, () => setRecentUntil(undefined));
  }, [w, t]);
  useEffect(load, [load]);

  const reset = () => {
    setAction(undefined);
    setRemoving(undefined);
    setPassword('');
    setCode('');
    setEnrolment(undefined);
    setBusy(false);
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    await run(false);
  }

  /** `recent`: no proof at all, on the strength of the last re-authentication; the form shows if the node asks for one after all. */
  async function run(usePasskey: boolean, recent = false, which: FactorAction | undefined = action, passkey: Passkey | undefined = removing) {
    setBusy(true);
    setAuto(recent);
    setError(undefined);
    try {
      const reauth = recent ? {} : await reauthProof(password, code, usePasskey ? 'mfa-change' : undefined);
      if (!reauth) return setError(w('passkeyNotUsed'));
      const action = which;
      if (action === 'remove-passkey' && passkey) {
        await call('POST', '/api/auth/passkeys/remove', { id: passkey.id, ...reauth });
        setStatus(w('passkeyRemoved', { label: passkey.label }));
        reset();
        load();
      }
      if (action === 'totp') setEnrolment(await call<TotpEnrolment>('POST', '/api/auth/mfa/totp/enrol', reauth));
      if (action === 'passkey') {
        await addPasskey(reauth, deviceLabel());
        setStatus(w('passkeyAdded'));
        reset();
        load();
      }
      if (action === 'codes') {
        setCodes((await call<{ recoveryCodes: string[] }>('POST', '/api/auth/mfa/recovery-codes', reauth)).recoveryCodes);
        reset();
      }
      if (action === 'disable') {
        await call('POST', '/api/auth/mfa/totp/disable', reauth);
        setStatus(w('totpRemoved'));
        reset();
        load();
      }
    } catch (err) {
      if (recent && err instanceof ApiError && err.code === 'reauthentication-required') {
        // The window closed meanwhile: ask as usual.
        setRecentUntil(undefined);
        setAction(which);
        return;
      }
      setError(err instanceof ApiError ? securityErrorText(w, t, err) : w('passkeyCancelled'));
    } finally {
      setBusy(false);
      setAuto(false);
    }
  }

  if (codes) {
    return (
      <section className="stack" aria-label={w('factors')}>
        <RecoveryCodes
          codes={codes}
          onDone={() => {
            setCodes(undefined);
            load();
          }}
        />
      </section>
    );
  }

  const start = (a: FactorAction, passkey?: Passkey) => () => {
    setStatus(undefined);
    setError(undefined);
    setRemoving(passkey);
    if (recentUntil !== undefined && recentUntil > Date.now()) {
      setAction(a);
      void run(false, true, a, passkey);
      return;
    }
    setAction(a);
  };
  const actionButton = (a: FactorAction, label: string, testId: string): ReactNode => (
    <button type="button" onClick={start(a)} data-testid={testId}>{label}</button>
  );

  return (
    <section aria-labelledby="factors-title" className="stack" data-testid="factors">
      <h2 id="factors-title">{w('factors')}</h2>
      <p className="hint">{mfa?.required ? w('factorsRequired') : w('factorsIntro')}</p>
      {mfa && (
        <ul className="cards">
          <li className="card" data-testid="factor-totp" data-enabled={mfa.totp}>
            <p>
              {w('totp')}: <strong>{mfa.totp ? w('on') : w('off')}</strong>
            </p>
          </li>
          <li className="card" data-testid="factor-passkeys">
            <p>
              {w('passkeys')}: <strong>{passkeys.length}</strong>
            </p>
            {passkeys.length > 0 && (
              <ul className="stack tight">
                {passkeys.map((p) => (
                  <li key={p.id} data-testid="passkey-row">
                    {p.label}{' '}
                    {!action && (
                      <button type="button" className="link" onClick={start('remove-passkey', p)} aria-label={w('removePasskeyNamed', { label: p.label })} data-testid="remove-passkey">
                        {w('removePasskey')}
                      </button>
                    )}
                  </li>
                ))}
              </ul>
            )}
          </li>
          <li className="card" data-testid="factor-codes">
            <p>{w('codesLeft', { count: mfa.recoveryCodesLeft })}</p>
          </li>
        </ul>
      )}
      {status && <p role="status" data-testid="factors-status">{status}</p>}
      {!action && mfa && (
        <div className="row">
          {actionButton('totp', mfa.totp ? w('replaceTotp') : w('addTotp'), 'add-totp')}
          {passkeysSupported() && actionButton('passkey', w('addPasskey'), 'add-passkey')}
          {(mfa.totp || mfa.passkeys > 0) && actionButton('codes', w('newCodes'), 'new-codes')}
          {mfa.totp && !mfa.required && actionButton('disable', w('removeTotp'), 'remove-totp')}
        </div>
      )}
      {action && !enrolment && auto && <p aria-busy="true">{w('busy')}</p>}
      {action && !enrolment && !auto && (
        <form className="stack panel" onSubmit={(e) => void submit(e)} aria-label={w(`confirm.${action}`, { label: removing?.label ?? '' })} data-testid="reauth-form">
          <p>{w(`confirm.${action}`, { label: removing?.label ?? '' })}</p>
          <ReauthFields password={password} setPassword={setPassword} code={code} setCode={setCode} needsCode={!!mfa?.totp || (mfa?.passkeys ?? 0) > 0} onPasskey={(mfa?.passkeys ?? 0) > 0 ? () => void run(true) : undefined} busy={busy} />
          {error && <p role="alert" className="error">{error}</p>}
          <div className="row">
            <button type="submit" className="primary" disabled={busy}>{busy ? w('busy') : w('continue')}</button>
            <button type="button" onClick={reset}>{w('cancel')}</button>
          </div>
        </form>
      )}
      {enrolment && (
        <TotpSetup
          enrolment={enrolment}
          onConfirmed={(recovery) => {
            reset();
            setStatus(w('totpAdded'));
            if (recovery.length > 0) setCodes(recovery);
            load();
          }}
        />
      )}
      {!action && error && <p role="alert" className="error">{error}</p>}
    </section>
  );
}

function PasswordChange() {
  const { w, t } = useSecurityWords();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [repeat, setRepeat] = useState('');
  const [busy, setBusy] = useState(false);
  const [problems, setProblems] = useState<PasswordProblem[]>([]);
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState<string>();
  const verdict = usePasswordCheck(next, 'session');

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    setStatus(undefined);
    setProblems([]);
    if (next !== repeat) return setError(w('mismatch'));
    setBusy(true);
    try {
      await call('POST', '/api/auth/password', { currentPassword: current, newPassword: next });
      setStatus(w('passwordChanged'));
      setCurrent('');
      setNext('');
      setRepeat('');
    } catch (err) {
      if (err instanceof ApiError && err.code === 'weak-password') {
        setProblems((err.body as { problems?: PasswordProblem[] }).problems ?? []);
        setError(w('refused'));
      } else if (err instanceof ApiError && err.status === 403) setError(w('wrongPassword'));
      else setError(securityErrorText(w, t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="password-title" className="stack">
      <h2 id="password-title">{w('password')}</h2>
      <form className="stack" onSubmit={(e) => void submit(e)} data-testid="password-change">
        <label>
          {w('currentPassword')}
          <input type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />
        </label>
        <label>
          {w('newPassword')}
          <input type="password" autoComplete="new-password" required value={next} onChange={(e) => setNext(e.target.value)} aria-describedby="change-policy change-feedback" data-testid="change-new-password" />
        </label>
        <p className="hint" id="change-policy">{w('passwordHint')}</p>
        <PasswordStrength verdict={verdict} id="change-feedback" />
        <label>
          {w('repeatPassword')}
          <input type="password" autoComplete="new-password" required value={repeat} onChange={(e) => setRepeat(e.target.value)} />
        </label>
        {error && <p role="alert" className="error">{error}</p>}
        <PasswordProblems problems={problems} />
        {status && <p role="status">{status}</p>}
        <button type="submit" className="primary" disabled={busy}>{busy ? w('busy') : w('changePassword')}</button>
      </form>
    </section>
  );
}


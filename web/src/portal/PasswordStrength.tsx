import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { call } from './portal-api.js';

export interface PasswordProblem {
  code: string;
  minLength?: number;
  maxLength?: number;
  historySize?: number;
}
export interface PasswordVerdict {
  ok: boolean;
  score: number | null;
  problems: PasswordProblem[];
  feedback: { warning: string | null; suggestions: string[] };
}

const WAIT_AFTER_TYPING_MS = 400;

/**
 * Live strength of what the user types, asked of the server (its zxcvbn check, with their own name
 * and email counted against them, is the one that decides) once they pause typing: for an
 * invitation by its token, for a signed-in user by their session.
 */
export function usePasswordCheck(password: string, via: { token: string } | 'session'): PasswordVerdict | undefined {
  const [verdict, setVerdict] = useState<PasswordVerdict>();
  const token = via === 'session' ? undefined : via.token;
  useEffect(() => {
    if (!password) {
      setVerdict(undefined);
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      const request = token !== undefined ? call<PasswordVerdict>('POST', '/api/invitations/password-check', { token, password }) : call<PasswordVerdict>('POST', '/api/auth/password/check', { password });
      request.then(
        (answer) => live && setVerdict(answer),
        // Throttled or offline: the form still works, and submitting gives the final word.
        (err: unknown) => live && !(err instanceof ApiError && err.status === 429) && setVerdict(undefined),
      );
    }, WAIT_AFTER_TYPING_MS);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [token, password]);
  return verdict;
}

/** A four-step meter with words, and what to change, in plain language. */
export function PasswordStrength({ verdict, id }: { verdict: PasswordVerdict | undefined; id: string }) {
  const { t } = useTranslation();
  const score = verdict?.score ?? 0;
  const level = !verdict ? 'none' : verdict.ok ? 'ok' : score >= 2 ? 'fair' : 'weak';
  return (
    <div id={id} className="strength-box" data-testid="password-strength" data-level={level}>
      <div className="strength" data-score={verdict ? score : -1} aria-hidden="true">
        <span />
        <span />
        <span />
        <span />
      </div>
      <p aria-live="polite" className="strength-word">{verdict ? t(`portal.password.level.${level}`) : t('portal.password.level.none')}</p>
      {verdict && !verdict.ok && <PasswordProblems problems={verdict.problems} />}
      {verdict && verdict.feedback.warning && <p className="hint">{t(`portal.password.warnings.${verdict.feedback.warning}`, { defaultValue: '' })}</p>}
      {verdict && !verdict.ok && verdict.feedback.suggestions.length > 0 && (
        <ul className="hint">
          {verdict.feedback.suggestions.map((s) => {
            const text = t(`portal.password.suggestions.${s}`, { defaultValue: '' });
            return text ? <li key={s}>{text}</li> : null;
          })}
        </ul>
      )}
    </div>
  );
}

export function PasswordProblems({ problems }: { problems: PasswordProblem[] }) {
  const { t } = useTranslation();
  if (problems.length === 0) return null;
  return (
    <ul className="problems" data-testid="password-problems">
      {problems.map((p) => (
        <li key={p.code}>{t(`portal.password.problems.${p.code}`, { min: p.minLength, max: p.maxLength, count: p.historySize, defaultValue: t('portal.password.problems.generic') })}</li>
      ))}
    </ul>
  );
}

/** The policy in plain words, before any typing. */
export function PasswordPolicyText({ minLength }: { minLength: number }) {
  const { t } = useTranslation();
  return (
    <div className="policy" id="password-policy">
      <p>{t('portal.password.policyIntro', { min: minLength })}</p>
      <ul>
        <li>{t('portal.password.policyWords')}</li>
        <li>{t('portal.password.policyPersonal')}</li>
        <li>{t('portal.password.policyBreached')}</li>
      </ul>
    </div>
  );
}

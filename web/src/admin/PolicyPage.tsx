import type { TFunction } from 'i18next';
import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { adoptClinicTimeZone } from '../app/clinic-time.js';
import { adminApi, adminPut } from './admin-api.js';
import { errorMessage } from './AdminApp.js';
import { PASSWORD_POLICY_LIMITS, SESSION_POLICY_LIMITS } from '../../../src/auth/policy/policy-limits.js';

const ROLES = ['patient', 'clinician', 'reception', 'admin'] as const;
type Role = (typeof ROLES)[number];

interface Policy {
  password: { minLength: number; maxLength: number; minScore: number; historySize: number; expiryDays: Record<Role, number | null>; warningDays: number; contextWords: string[] };
  mfaRequired: Record<Role, boolean>;
  sessions: { idleMinutes: Record<Role, number>; absoluteHours: number };
  /** null: the installation's default zone (installationDefaults.clinicTimeZone). */
  clinic: { timeZone: string | null };
  installationDefaults?: { clinicTimeZone: string };
}

/** Form values are text while edited: an empty expiry means "never". */
interface Draft {
  minLength: string;
  minScore: string;
  historySize: string;
  warningDays: string;
  expiryDays: Record<Role, string>;
  mfaRequired: Record<Role, boolean>;
  idleMinutes: Record<Role, string>;
  absoluteHours: string;
  contextWords: string;
  /** '' for the installation's default. */
  timeZone: string;
}

/** Every IANA zone this browser knows (the server checks the choice again), UTC first, the current one kept even if unlisted. */
function timeZoneChoices(current: string): string[] {
  const known = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const zones = new Set(['UTC', ...known]);
  if (current) zones.add(current);
  return [...zones];
}

const perRole = <T,>(f: (r: Role) => T) => Object.fromEntries(ROLES.map((r) => [r, f(r)])) as Record<Role, T>;

function toDraft(p: Policy): Draft {
  return {
    minLength: String(p.password.minLength),
    minScore: String(p.password.minScore),
    historySize: String(p.password.historySize),
    warningDays: String(p.password.warningDays),
    expiryDays: perRole((r) => (p.password.expiryDays[r] === null ? '' : String(p.password.expiryDays[r]))),
    mfaRequired: { ...p.mfaRequired },
    idleMinutes: perRole((r) => String(p.sessions.idleMinutes[r])),
    absoluteHours: String(p.sessions.absoluteHours),
    contextWords: p.password.contextWords.join(', '),
    timeZone: p.clinic?.timeZone ?? '',
  };
}

/** Numbers are sent as typed; the server checks ranges and says which field is wrong. */
const num = (value: string) => (value.trim() === '' ? Number.NaN : Number(value));

function fromDraft(d: Draft): unknown {
  return {
    password: {
      minLength: num(d.minLength),
      minScore: num(d.minScore),
      historySize: num(d.historySize),
      warningDays: num(d.warningDays),
      expiryDays: perRole((r) => (d.expiryDays[r].trim() === '' ? null : num(d.expiryDays[r]))),
      contextWords: d.contextWords
        .split(',')
        .map((w) => w.trim())
        .filter(Boolean),
    },
    mfaRequired: d.mfaRequired,
    sessions: { idleMinutes: perRole((r) => num(d.idleMinutes[r])), absoluteHours: num(d.absoluteHours) },
    clinic: { timeZone: d.timeZone || null },
  };
}

/** The service's bounds: the page names them in the admin's language when a value is refused. */
const LIMITS = { ...PASSWORD_POLICY_LIMITS, ...SESSION_POLICY_LIMITS };

const wholeIn = (value: string, limits: { min: number; max: number }) => Number.isInteger(num(value)) && num(value) >= limits.min && num(value) <= limits.max;

/**
 * Why the service refused a field, in the admin's language; undefined for a field the form does not
 * send (the page then shows the service's own words). The service names the field; where one field
 * can be refused for two reasons, the value sent tells which: a value within its bounds was refused
 * for how it relates to another (warning days against expiry, idle time against the session's life).
 */
function issueText(t: TFunction, field: string, sent: Draft): string | undefined {
  const [section, name, role] = field.split('.');
  if (section === 'password') {
    if (name === 'minLength' || name === 'historySize') return t('admin.policy.issues.wholeNumber', LIMITS[name]);
    if (name === 'warningDays') return wholeIn(sent.warningDays, LIMITS.warningDays) ? t('admin.policy.issues.warningBeforeExpiry') : t('admin.policy.issues.wholeNumber', LIMITS.warningDays);
    if (name === 'minScore') return t('admin.policy.issues.minScore');
    if (name === 'expiryDays') return t('admin.policy.issues.expiryDays', LIMITS.expiryDays);
    if (name === 'contextWords') return t('admin.policy.issues.contextWords', { count: LIMITS.contextWords.maxCount, length: LIMITS.contextWords.maxWordLength });
  }
  if (section === 'mfaRequired' && name === 'admin') return t('admin.policy.issues.adminMfa');
  if (section === 'sessions' && name === 'absoluteHours') return t('admin.policy.issues.wholeNumber', LIMITS.absoluteHours);
  if (section === 'sessions' && name === 'idleMinutes' && role && role in sent.idleMinutes) {
    return wholeIn(sent.idleMinutes[role as Role], LIMITS.idleMinutes) ? t('admin.policy.issues.idleLongerThanSession') : t('admin.policy.issues.wholeNumber', LIMITS.idleMinutes);
  }
  if (section === 'clinic' && name === 'timeZone') return t('admin.policy.issues.timeZone');
  return undefined;
}

/** The form's own label for a field the server names (password.minLength, sessions.idleMinutes.patient…). */
function fieldLabel(t: TFunction, field: string): string {
  const [section, name, role] = field.split('.');
  const roleName = role ? t(`admin.roles.${role}`, { defaultValue: role }) : '';
  if (section === 'password' && name === 'expiryDays') return t('admin.policy.expiryFor', { role: roleName });
  if (section === 'password' && name && ['minLength', 'minScore', 'historySize', 'warningDays', 'contextWords'].includes(name)) return t(`admin.policy.${name}`);
  if (section === 'sessions' && name === 'idleMinutes') return t('admin.policy.idleFor', { role: roleName });
  if (section === 'sessions' && name === 'absoluteHours') return t('admin.policy.absoluteHours');
  if (section === 'clinic') return t('admin.policy.timeZone');
  if (section === 'mfaRequired') return t('admin.policy.mfaFor', { role: t(`admin.roles.${name ?? ''}`, { defaultValue: name ?? '' }) });
  return field;
}

/** /admin/policy: passwords, which roles need a second factor, and session timeouts, per role. */
export function PolicyPage() {
  const { t } = useTranslation();
  const [draft, setDraft] = useState<Draft>();
  const [defaultZone, setDefaultZone] = useState<string>();
  const [error, setError] = useState<string>();
  const [issues, setIssues] = useState<{ field: string; message: string }[]>([]);
  // What was sent when the service refused it: the issues are about these values.
  const [refused, setRefused] = useState<Draft>();
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    adminApi<Policy>('GET', '/api/admin/policy').then(
      (p) => {
        setDraft(toDraft(p));
        setDefaultZone(p.installationDefaults?.clinicTimeZone);
      },
      (err: unknown) => setError(errorMessage(t, err)),
    );
  }, [t]);

  async function save(event: FormEvent) {
    event.preventDefault();
    if (!draft) return;
    setBusy(true);
    setSaved(false);
    setError(undefined);
    setIssues([]);
    try {
      const policy = await adminPut<Policy>('/api/admin/policy', fromDraft(draft));
      setDraft(toDraft(policy));
      setSaved(true);
      // This page's own times follow the new zone at once; other pages at their next load.
      adoptClinicTimeZone({ clinic: { timeZone: policy.clinic.timeZone ?? policy.installationDefaults?.clinicTimeZone } });
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) {
        setRefused(draft);
        setIssues((err.body as { issues?: { field: string; message: string }[] } | undefined)?.issues ?? []);
        setError(t('admin.policy.invalid'));
      } else setError(errorMessage(t, err));
    } finally {
      setBusy(false);
    }
  }

  if (!draft) {
    return (
      <div className="stack">
        <h1>{t('admin.policy.title')}</h1>
        {error ? (
          <p role="alert" className="error">
            {error}
          </p>
        ) : (
          <p aria-busy="true">{t('app.loading')}</p>
        )}
      </div>
    );
  }

  const set = (change: Partial<Draft>) => {
    setSaved(false);
    setDraft({ ...draft, ...change });
  };
  // `field`: the server's name for it, so a refused value is marked where it is typed.
  const numberInput = (field: string, value: string, onChange: (v: string) => void, testId?: string, describedBy?: string) => (
    <input type="number" inputMode="numeric" min={0} value={value} onChange={(e) => onChange(e.target.value)} aria-invalid={issues.some((i) => i.field === field) || undefined} {...(testId ? { 'data-testid': testId } : {})} {...(describedBy ? { 'aria-describedby': describedBy } : {})} />
  );

  return (
    <form className="stack" onSubmit={(e) => void save(e)} data-testid="policy-form">
      <h1>{t('admin.policy.title')}</h1>

      <fieldset className="panel stack">
        <legend>{t('admin.policy.mfa')}</legend>
        <p className="muted">{t('admin.policy.mfaExplain')}</p>
        {ROLES.map((r) => (
          <label key={r} className="check">
            <input type="checkbox" checked={draft.mfaRequired[r]} onChange={(e) => set({ mfaRequired: { ...draft.mfaRequired, [r]: e.target.checked } })} data-testid={`policy-mfa-${r}`} />
            {t('admin.policy.mfaFor', { role: t(`admin.roles.${r}`) })}
          </label>
        ))}
      </fieldset>

      <fieldset className="panel stack">
        <legend>{t('admin.policy.password')}</legend>
        <div className="form-grid">
          <label>
            {t('admin.policy.minLength')}
            {numberInput('password.minLength', draft.minLength, (v) => set({ minLength: v }), 'policy-min-length')}
          </label>
          <label>
            {t('admin.policy.minScore')}
            <select value={draft.minScore} onChange={(e) => set({ minScore: e.target.value })}>
              {[2, 3, 4].map((s) => (
                <option key={s} value={String(s)}>
                  {t(`admin.policy.score${s}`)}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t('admin.policy.historySize')}
            {numberInput('password.historySize', draft.historySize, (v) => set({ historySize: v }))}
          </label>
          <label>
            {t('admin.policy.warningDays')}
            {numberInput('password.warningDays', draft.warningDays, (v) => set({ warningDays: v }))}
          </label>
        </div>
        <p className="muted" id="expiry-hint">
          {t('admin.policy.expiryHint')}
        </p>
        <div className="form-grid">
          {ROLES.map((r) => (
            <label key={r}>
              {t('admin.policy.expiryFor', { role: t(`admin.roles.${r}`) })}
              {numberInput(`password.expiryDays.${r}`, draft.expiryDays[r], (v) => set({ expiryDays: { ...draft.expiryDays, [r]: v } }), undefined, 'expiry-hint')}
            </label>
          ))}
        </div>
        <label>
          {t('admin.policy.contextWords')}
          <input type="text" value={draft.contextWords} onChange={(e) => set({ contextWords: e.target.value })} aria-describedby="context-hint" />
          <small id="context-hint">{t('admin.policy.contextWordsHint')}</small>
        </label>
      </fieldset>

      <fieldset className="panel stack">
        <legend>{t('admin.policy.sessions')}</legend>
        <div className="form-grid">
          {ROLES.map((r) => (
            <label key={r}>
              {t('admin.policy.idleFor', { role: t(`admin.roles.${r}`) })}
              {numberInput(`sessions.idleMinutes.${r}`, draft.idleMinutes[r], (v) => set({ idleMinutes: { ...draft.idleMinutes, [r]: v } }), `policy-idle-${r}`)}
            </label>
          ))}
          <label>
            {t('admin.policy.absoluteHours')}
            {numberInput('sessions.absoluteHours', draft.absoluteHours, (v) => set({ absoluteHours: v }))}
          </label>
        </div>
      </fieldset>

      <fieldset className="panel stack">
        <legend>{t('admin.policy.clinic')}</legend>
        <label>
          {t('admin.policy.timeZone')}
          <select value={draft.timeZone} onChange={(e) => set({ timeZone: e.target.value })} aria-describedby="time-zone-hint" data-testid="policy-time-zone">
            <option value="">{t('admin.policy.timeZoneDefault', { zone: defaultZone ?? 'UTC' })}</option>
            {timeZoneChoices(draft.timeZone).map((zone) => (
              <option key={zone} value={zone}>
                {zone.replace(/_/g, ' ')}
              </option>
            ))}
          </select>
          <small id="time-zone-hint">{t('admin.policy.timeZoneHint')}</small>
        </label>
      </fieldset>

      <div aria-live="polite">
        {saved && (
          <p className="notice" role="status" data-testid="policy-saved">
            {t('admin.policy.saved')}
          </p>
        )}
      </div>
      {error && (
        <div role="alert" className="error" data-testid="policy-error">
          <p>{error}</p>
          {issues.length > 0 && (
            <ul>
              {issues.map((i) => {
                const text = refused && issueText(t, i.field, refused);
                return (
                  <li key={i.field} data-field={i.field}>
                    <strong>{fieldLabel(t, i.field)}</strong>:{' '}
                    {text ?? (
                      <>
                        {t('admin.policy.issue')}. {t('admin.policy.serverSays')} <span lang="en">{i.message}</span>
                      </>
                    )}
                  </li>
                );
              })}
            </ul>
          )}
        </div>
      )}
      <button type="submit" className="primary" disabled={busy} data-testid="policy-save">
        {busy ? t('admin.busy') : t('admin.policy.save')}
      </button>
    </form>
  );
}

import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { adminApi } from './admin-api.js';
import { errorMessage } from './AdminApp.js';
import type { AdminAccount } from './UsersPage.js';
import { dateTime, localInputToIso, number } from './format.js';

/** The kinds an administrator most often looks for; any other action name can be typed. */
const KINDS = [
  'read', 'search', 'create', 'update', 'delete', 'download', 'upload', 'export',
  'sign-in', 'sign-in-failed', 'account-locked', 'sign-out', 'password-changed', 'mfa-enrolled', 'mfa-reset',
  'invitation-created', 'invitation-accepted', 'account-unlocked', 'account-disabled', 'account-enabled', 'policy-changed',
  'consult-join', 'consult-admit', 'consult-decline', 'consult-remove', 'consult-end', 'consult-invite', 'consult-guest-link',
  'break-glass', 'care-assigned', 'care-unassigned', 'shield-block', 'shield-ban', 'rate-limited', 'invitation-revoked', 'audit-search', 'audit-export', 'consent-recorded',
] as const;

interface AuditEvent {
  id: string;
  recorded: string;
  outcome: string;
  outcomeDesc?: string;
  subtype: { system: string; code: string }[];
  agent: { who: { reference?: string; identifier?: { value: string } }; network?: { address: string } }[];
  entity?: { what?: { reference: string }; role?: { code: string }; name?: string }[];
}

interface Bundle {
  entry?: { resource: AuditEvent }[];
  link: { relation: string; url: string }[];
}

interface Verification {
  ok: boolean;
  entries: number;
  checkpoints: number;
  lastCheckpointSeq: number;
  firstProblem?: { seq: number; kind: string; detail: string };
  warnings: string[];
  verifiedAt: string;
  durationMs: number;
}

interface Filters {
  patient: string;
  user: string;
  from: string;
  to: string;
  kind: string;
  outcome: string;
}

const EMPTY: Filters = { patient: '', user: '', from: '', to: '', kind: '', outcome: '' };

/** An absolute link of the API, followed on the page's own origin (path and query). */
const onThisOrigin = (url: string) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

const actionOf = (e: AuditEvent) => e.subtype.find((s) => s.system.endsWith('/audit-action'))?.code ?? '';
const whoOf = (e: AuditEvent) => e.agent[0]?.who.reference ?? e.agent[0]?.who.identifier?.value ?? '';
const patientOf = (e: AuditEvent) => e.entity?.find((x) => x.role?.code === '1')?.what?.reference ?? '';
const objectOf = (e: AuditEvent) => e.entity?.find((x) => x.role?.code === '4')?.what?.reference ?? '';

/** /admin/audit: who did what to which record, when and from where; export; the chain's integrity. */
export function AuditPage() {
  const { t } = useTranslation();
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [events, setEvents] = useState<AuditEvent[]>();
  const [next, setNext] = useState<string>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [people, setPeople] = useState<Map<string, string>>(new Map());

  // Who an actor ref is, in words: accounts by their email (and the FHIR record linked to them).
  useEffect(() => {
    adminApi<{ accounts: AdminAccount[] }>('GET', '/api/admin/accounts?limit=200').then(
      (res) => {
        const names = new Map<string, string>();
        for (const a of res.accounts) {
          const label = a.name ? `${a.name} <${a.email}>` : a.email;
          names.set(`account:${a.id}`, label);
          if (a.fhirRef) names.set(a.fhirRef, label);
        }
        setPeople(names);
      },
      () => undefined, // the refs alone still say who
    );
  }, []);

  /** The API's query for these filters; an email stands for the account it names. */
  async function query(f: Filters): Promise<URLSearchParams> {
    const params = new URLSearchParams({ _count: '50' });
    if (f.patient.trim()) params.set('patient', f.patient.trim());
    let user = f.user.trim();
    if (user.includes('@')) {
      const found = await adminApi<{ accounts: AdminAccount[] }>('GET', `/api/admin/accounts?${new URLSearchParams({ q: user })}`);
      const account = found.accounts.find((a) => a.email.toLowerCase() === user.toLowerCase());
      if (!account) throw new Error('unknown-user');
      user = account.id;
    }
    if (user) params.set('user', user);
    const from = localInputToIso(f.from);
    const to = localInputToIso(f.to);
    if (from) params.set('from', from);
    if (to) params.set('to', to);
    if (f.kind.trim()) params.set('kind', f.kind.replace(/\s+/g, ''));
    if (f.outcome) params.set('outcome', f.outcome);
    return params;
  }

  async function search(f: Filters, more?: string) {
    setBusy(true);
    setError(undefined);
    try {
      const path = more ?? `/api/audit/events?${await query(f)}`;
      const bundle = await adminApi<Bundle>('GET', path);
      const page = (bundle.entry ?? []).map((e) => e.resource);
      setEvents((prev) => (more && prev ? [...prev, ...page] : page));
      const link = bundle.link.find((l) => l.relation === 'next')?.url;
      // The API gives absolute links under its public URL; the page follows them on its own origin.
      setNext(link ? onThisOrigin(link) : undefined);
    } catch (err) {
      if (err instanceof Error && err.message === 'unknown-user') setError(t('admin.audit.unknownUser'));
      else if (err instanceof ApiError && err.status === 400) setError(t('admin.audit.badFilter'));
      else setError(errorMessage(t, err));
    } finally {
      setBusy(false);
    }
  }

  // The newest entries first, before any filter: search() is this render's, and only the first one matters here.
  useEffect(() => {
    void search(EMPTY);
  }, []);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void search(filters);
  };
  const set = (change: Partial<Filters>) => setFilters({ ...filters, ...change });
  const exportParams = new URLSearchParams();
  const exportFrom = localInputToIso(filters.from);
  const exportTo = localInputToIso(filters.to);
  if (exportFrom) exportParams.set('from', exportFrom);
  if (exportTo) exportParams.set('to', exportTo);

  return (
    <div className="stack">
      <h1>{t('admin.audit.title')}</h1>
      <ChainVerification />

      <section className="panel stack" aria-labelledby="audit-search-heading">
        <h2 id="audit-search-heading">{t('admin.audit.search')}</h2>
        <form className="stack" role="search" onSubmit={submit} data-testid="audit-form">
          <div className="form-grid">
            <label>
              {t('admin.audit.patient')}
              <input type="text" value={filters.patient} onChange={(e) => set({ patient: e.target.value })} aria-describedby="audit-patient-hint" data-testid="audit-patient" />
              <small id="audit-patient-hint">{t('admin.audit.patientHint')}</small>
            </label>
            <label>
              {t('admin.audit.user')}
              <input type="text" value={filters.user} onChange={(e) => set({ user: e.target.value })} aria-describedby="audit-user-hint" data-testid="audit-user" />
              <small id="audit-user-hint">{t('admin.audit.userHint')}</small>
            </label>
            <label>
              {t('admin.audit.from')}
              <input type="datetime-local" value={filters.from} onChange={(e) => set({ from: e.target.value })} data-testid="audit-from" />
            </label>
            <label>
              {t('admin.audit.to')}
              <input type="datetime-local" value={filters.to} onChange={(e) => set({ to: e.target.value })} data-testid="audit-to" />
            </label>
            <label>
              {t('admin.audit.kind')}
              <input type="text" list="audit-kinds" value={filters.kind} onChange={(e) => set({ kind: e.target.value })} aria-describedby="audit-kind-hint" data-testid="audit-kind" />
              <datalist id="audit-kinds">
                {KINDS.map((k) => (
                  <option key={k} value={k}>
                    {t(`admin.kinds.${k}`, { defaultValue: k })}
                  </option>
                ))}
              </datalist>
              <small id="audit-kind-hint">{t('admin.audit.kindHint')}</small>
            </label>
            <label>
              {t('admin.audit.outcome')}
              <select value={filters.outcome} onChange={(e) => set({ outcome: e.target.value })}>
                <option value="">{t('admin.audit.anyOutcome')}</option>
                {['success', 'denied', 'failed'].map((o) => (
                  <option key={o} value={o}>
                    {t(`admin.outcomes.${o}`)}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <div className="row">
            <button type="submit" className="primary" disabled={busy} data-testid="audit-submit">
              {t('admin.audit.find')}
            </button>
            <button
              type="button"
              onClick={() => {
                setFilters(EMPTY);
                void search(EMPTY);
              }}
            >
              {t('admin.audit.clear')}
            </button>
            <a className="button-link" href={`/api/audit/export${exportParams.size ? `?${exportParams}` : ''}`} download data-testid="audit-export">
              {t('admin.audit.export')}
            </a>
          </div>
          <p className="muted">{t('admin.audit.exportHint')}</p>
        </form>
        {error && (
          <p role="alert" className="error" data-testid="audit-error">
            {error}
          </p>
        )}
        <div aria-live="polite" aria-busy={busy}>
          {events && (
            <p className="muted" data-testid="audit-count">
              {t('admin.audit.shown', { count: events.length })}
            </p>
          )}
        </div>
        {events && events.length > 0 && (
          <div className="table-wrap" tabIndex={0} role="region" aria-label={t('admin.audit.search')}>
            <table data-testid="audit-table">
              <thead>
                <tr>
                  <th scope="col">{t('admin.audit.when')}</th>
                  <th scope="col">{t('admin.audit.who')}</th>
                  <th scope="col">{t('admin.audit.what')}</th>
                  <th scope="col">{t('admin.audit.outcome')}</th>
                  <th scope="col">{t('admin.audit.patient')}</th>
                  <th scope="col">{t('admin.audit.object')}</th>
                  <th scope="col">{t('admin.audit.source')}</th>
                </tr>
              </thead>
              <tbody>
                {events.map((e) => (
                  <tr key={e.id} data-testid="audit-row" data-action={actionOf(e)}>
                    <td>{dateTime(e.recorded)}</td>
                    <td>
                      {people.get(whoOf(e)) && <span className="cell-main">{people.get(whoOf(e))}</span>}
                      <span className="mono">{whoOf(e)}</span>
                    </td>
                    <td>{t(`admin.kinds.${actionOf(e)}`, { defaultValue: actionOf(e) })}</td>
                    <td>
                      <span className={`badge ${e.outcome === '0' ? 'ok' : 'bad'}`}>{t(`admin.outcomes.${e.outcomeDesc ?? 'success'}`, { defaultValue: e.outcomeDesc ?? '' })}</span>
                    </td>
                    <td className="mono">{patientOf(e)}</td>
                    <td className="mono">{objectOf(e)}</td>
                    <td className="mono">{e.agent[0]?.network?.address ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {next && (
          <button type="button" disabled={busy} onClick={() => void search(filters, next)} data-testid="audit-more">
            {t('admin.audit.more')}
          </button>
        )}
      </section>
    </div>
  );
}

/** The same verification as `telesalud audit verify`, run by the node on request. */
function ChainVerification() {
  const { t } = useTranslation();
  const [result, setResult] = useState<Verification | null>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  useEffect(() => {
    adminApi<Verification>('GET', '/api/admin/audit/verify').then(
      (r) => setResult(r),
      (err: unknown) => (err instanceof ApiError && err.status === 404 ? setResult(null) : setError(errorMessage(t, err))),
    );
  }, [t]);

  async function verify() {
    setBusy(true);
    setError(undefined);
    try {
      setResult(await adminApi<Verification>('POST', '/api/admin/audit/verify'));
    } catch (err) {
      setError(errorMessage(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel stack" aria-labelledby="chain-heading">
      <h2 id="chain-heading">{t('admin.audit.chain.title')}</h2>
      <div aria-live="polite" data-testid="chain-status">
        {busy ? (
          <p aria-busy="true">{t('admin.audit.chain.running')}</p>
        ) : result === null ? (
          <p>{t('admin.audit.chain.never')}</p>
        ) : result ? (
          result.ok ? (
            <p className="ok" data-testid="chain-ok">
              <strong>{t('admin.audit.chain.intact')}</strong>{' '}
              {t('admin.audit.chain.intactDetail', { entries: number(result.entries), checkpoints: number(result.checkpoints), when: dateTime(result.verifiedAt) })}
            </p>
          ) : (
            <div role="alert" className="error" data-testid="chain-broken">
              <p>
                <strong>{t('admin.audit.chain.broken')}</strong> {t('admin.audit.chain.brokenDetail', { seq: result.firstProblem?.seq, kind: t(`admin.audit.chain.kinds.${result.firstProblem?.kind ?? 'altered'}`), when: dateTime(result.verifiedAt) })}
              </p>
              <p className="mono">{result.firstProblem?.detail}</p>
            </div>
          )
        ) : null}
        {result?.warnings.map((w) => (
          <p key={w} className="warning">
            {w}
          </p>
        ))}
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <button type="button" onClick={() => void verify()} disabled={busy} data-testid="chain-verify">
        {t('admin.audit.chain.verify')}
      </button>
    </section>
  );
}

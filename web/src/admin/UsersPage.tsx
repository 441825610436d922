import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { InvitationSentNotice } from '../app/InvitationSentNotice.js';
import type { Account } from '../auth/session.js';
import { adminApi } from './admin-api.js';
import { errorMessage } from './AdminApp.js';
import { dateTime } from './format.js';
import { PendingInvitations } from './PendingInvitations.js';

const ROLES = ['clinician', 'reception', 'admin', 'patient'] as const;

export interface AdminAccount {
  id: string;
  email: string;
  role: string;
  name: string | null;
  fhirRef: string | null;
  status: 'active' | 'disabled';
  created: string;
  passwordChangedAt: string | null;
  failedSignIns: number;
  lockedUntil: string | null;
  mfa: { totp: boolean; passkeys: number; recoveryCodesLeft: number };
  sessions: number;
}

type Action = 'unlock' | 'reset-mfa' | 'disable' | 'enable' | 'end-sessions';

/** /admin/users: who has an account, in which role, with which factors; invite, unlock, reset MFA, disable. */
export function UsersPage({ self }: { self: Account }) {
  const { t } = useTranslation();
  const [q, setQ] = useState('');
  const [role, setRole] = useState('');
  const [status, setStatus] = useState('');
  const [accounts, setAccounts] = useState<AdminAccount[]>();
  const [error, setError] = useState<string>();
  const [notice, setNotice] = useState<string>();
  const [busy, setBusy] = useState(false);
  // Bumped by each new invitation, so the pending list shows it.
  const [invitationsVersion, setInvitationsVersion] = useState(0);
  // The search text applies when the form is sent, the selects at once: load reads the text from here.
  const query = useRef('');
  query.current = q;

  const load = useCallback(async () => {
    const params = new URLSearchParams({ limit: '200' });
    if (query.current.trim()) params.set('q', query.current.trim());
    if (role) params.set('role', role);
    if (status) params.set('status', status);
    try {
      const res = await adminApi<{ accounts: AdminAccount[] }>('GET', `/api/admin/accounts?${params}`);
      setAccounts(res.accounts);
      setError(undefined);
    } catch (err) {
      setError(errorMessage(t, err));
    }
  }, [role, status, t]);

  useEffect(() => {
    void load();
  }, [load]);

  async function act(account: AdminAccount, action: Action) {
    if ((action === 'disable' || action === 'reset-mfa') && !window.confirm(t(`admin.users.confirm.${action}`, { email: account.email }))) return;
    setBusy(true);
    setNotice(undefined);
    try {
      const res = await adminApi<{ sessionsEnded: number }>('POST', `/api/admin/accounts/${account.id}/${action}`);
      setNotice(t(`admin.users.done.${action}`, { email: account.email, count: res.sessionsEnded }));
      await load();
    } catch (err) {
      setError(errorMessage(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="stack">
      <h1>{t('admin.users.title')}</h1>
      <InviteForm
        onInvited={() => {
          void load();
          setInvitationsVersion((v) => v + 1);
        }}
      />
      <PendingInvitations refreshKey={invitationsVersion} />

      <section className="panel stack" aria-labelledby="accounts-heading">
        <h2 id="accounts-heading">{t('admin.users.accounts')}</h2>
        <form
          className="filters"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            void load();
          }}
        >
          <label>
            {t('admin.users.search')}
            <input type="search" value={q} onChange={(e) => setQ(e.target.value)} data-testid="users-search" />
          </label>
          <label>
            {t('admin.users.role')}
            <select value={role} onChange={(e) => setRole(e.target.value)} data-testid="users-role">
              <option value="">{t('admin.users.anyRole')}</option>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {t(`admin.roles.${r}`)}
                </option>
              ))}
            </select>
          </label>
          <label>
            {t('admin.users.status')}
            <select value={status} onChange={(e) => setStatus(e.target.value)}>
              <option value="">{t('admin.users.anyStatus')}</option>
              <option value="active">{t('admin.users.active')}</option>
              <option value="disabled">{t('admin.users.disabled')}</option>
            </select>
          </label>
          <button type="submit">{t('admin.users.find')}</button>
        </form>
        <div aria-live="polite">
          {notice && (
            <p className="notice" role="status" data-testid="users-notice">
              {notice}
            </p>
          )}
        </div>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        {!accounts ? (
          <p aria-busy="true">{t('app.loading')}</p>
        ) : accounts.length === 0 ? (
          <p>{t('admin.users.none')}</p>
        ) : (
          <div className="table-wrap" tabIndex={0} role="region" aria-label={t('admin.users.accounts')}>
            <table data-testid="users-table">
              <thead>
                <tr>
                  <th scope="col">{t('admin.users.person')}</th>
                  <th scope="col">{t('admin.users.role')}</th>
                  <th scope="col">{t('admin.users.status')}</th>
                  <th scope="col">{t('admin.users.mfa')}</th>
                  <th scope="col">{t('admin.users.sessions')}</th>
                  <th scope="col">{t('admin.users.actions')}</th>
                </tr>
              </thead>
              <tbody>
                {accounts.map((a) => (
                  <tr key={a.id} data-testid={`user-${a.email}`}>
                    <th scope="row">
                      <span className="cell-main">{a.name ?? a.email}</span>
                      {a.name && <span className="cell-sub">{a.email}</span>}
                    </th>
                    <td>{t(`admin.roles.${a.role}`, { defaultValue: a.role })}</td>
                    <td>
                      <span className={`badge ${a.status === 'active' ? 'ok' : 'bad'}`}>{t(`admin.users.${a.status}`)}</span>
                      {a.lockedUntil && (
                        <span className="badge bad" data-testid="user-locked">
                          {t('admin.users.lockedUntil', { when: dateTime(a.lockedUntil) })}
                        </span>
                      )}
                    </td>
                    <td data-testid="user-mfa">
                      {a.mfa.totp || a.mfa.passkeys > 0 ? (
                        <span className="ok">{[a.mfa.totp ? t('admin.users.totp') : '', a.mfa.passkeys > 0 ? t('admin.users.passkeys', { count: a.mfa.passkeys }) : ''].filter(Boolean).join(' · ')}</span>
                      ) : (
                        <span className="muted">{t('admin.users.noMfa')}</span>
                      )}
                    </td>
                    <td>{a.sessions}</td>
                    <td>
                      <div className="row actions">
                        {a.lockedUntil && (
                          <button type="button" disabled={busy} onClick={() => void act(a, 'unlock')} data-testid="user-unlock">
                            {t('admin.users.unlock')}
                          </button>
                        )}
                        {a.id !== self.id && (a.mfa.totp || a.mfa.passkeys > 0) && (
                          <button type="button" disabled={busy} onClick={() => void act(a, 'reset-mfa')} data-testid="user-reset-mfa">
                            {t('admin.users.resetMfa')}
                          </button>
                        )}
                        {a.sessions > 0 && a.id !== self.id && (
                          <button type="button" disabled={busy} onClick={() => void act(a, 'end-sessions')}>
                            {t('admin.users.endSessions')}
                          </button>
                        )}
                        {a.id !== self.id &&
                          (a.status === 'active' ? (
                            <button type="button" className="danger" disabled={busy} onClick={() => void act(a, 'disable')} data-testid="user-disable">
                              {t('admin.users.disable')}
                            </button>
                          ) : (
                            <button type="button" disabled={busy} onClick={() => void act(a, 'enable')} data-testid="user-enable">
                              {t('admin.users.enable')}
                            </button>
                          ))}
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

/** A new account is an invitation: the person sets their own password (and second factor) from the link. */
function InviteForm({ onInvited }: { onInvited: () => void }) {
  const { t } = useTranslation();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<(typeof ROLES)[number]>('clinician');
  const [patientId, setPatientId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<{ url: string; expiresAt: string; email: string; emailed?: boolean }>();

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    setCreated(undefined);
    try {
      const res = await adminApi<{ url: string; expiresAt: string; emailed?: boolean }>('POST', '/api/invitations', {
        email: email.trim(),
        role,
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(role === 'patient' ? { patientId: patientId.trim().replace(/^Patient\//, '') } : {}),
      });
      setCreated({ ...res, email: email.trim() });
      setEmail('');
      setName('');
      setPatientId('');
      onInvited();
    } catch (err) {
      setError(errorMessage(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel stack" aria-labelledby="invite-heading">
      <h2 id="invite-heading">{t('admin.users.invite.title')}</h2>
      <p className="muted">{t('admin.users.invite.explain')}</p>
      <form className="stack" onSubmit={(e) => void submit(e)} data-testid="invite-form">
        <div className="form-grid">
          <label>
            {t('admin.users.invite.email')}
            <input type="email" required autoComplete="off" value={email} onChange={(e) => setEmail(e.target.value)} data-testid="invite-email" />
          </label>
          <label>
            {t('admin.users.invite.name')}
            <input type="text" autoComplete="off" value={name} onChange={(e) => setName(e.target.value)} data-testid="invite-name" />
          </label>
          <label>
            {t('admin.users.role')}
            <select value={role} onChange={(e) => setRole(e.target.value as (typeof ROLES)[number])} data-testid="invite-role">
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {t(`admin.roles.${r}`)}
                </option>
              ))}
            </select>
          </label>
          {role === 'patient' && (
            <label>
              {t('admin.users.invite.patientId')}
              <input type="text" required pattern="(Patient/)?[0-9a-f\-]{36}" value={patientId} onChange={(e) => setPatientId(e.target.value)} aria-describedby="patient-id-hint" />
              <small id="patient-id-hint">{t('admin.users.invite.patientIdHint')}</small>
            </label>
          )}
        </div>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy} data-testid="invite-submit">
          {busy ? t('admin.busy') : t('admin.users.invite.submit')}
        </button>
      </form>
      <div aria-live="polite">
        {created && (
          <div className="notice stack" data-testid="invite-created">
            <InvitationSentNotice email={created.email} expiresAt={created.expiresAt} emailed={created.emailed} />
            <label>
              {t('admin.users.invite.link')}
              <input type="text" readOnly value={created.url} onFocus={(e) => e.target.select()} data-testid="invite-url" />
            </label>
            <button type="button" onClick={() => void navigator.clipboard?.writeText(created.url)}>
              {t('admin.users.invite.copy')}
            </button>
          </div>
        )}
      </div>
    </section>
  );
}

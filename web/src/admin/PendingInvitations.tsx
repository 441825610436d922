import { useCallback, useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { adminApi } from './admin-api.js';
import { errorMessage } from './AdminApp.js';
import { dateTime } from './format.js';

export interface PendingInvitation {
  id: string;
  email: string;
  name: string | null;
  role: string;
  patientRef: string | null;
  invitedBy: { ref: string; name: string | null; role: 'clinician' | 'reception' | 'admin' | 'installation' };
  created: string;
  expiresAt: string;
}

/**
 * The invitations sent and not yet used (nor expired, nor revoked), with a revoke that asks first
 * in the row itself: keyboard and screen reader users get the same two steps as everyone.
 * `refreshKey` changes when the page creates a new invitation.
 */
export function PendingInvitations({ refreshKey }: { refreshKey: number }) {
  const { t } = useTranslation();
  const [invitations, setInvitations] = useState<PendingInvitation[]>();
  const [error, setError] = useState<string>();
  const [notice, setNotice] = useState<string>();
  const [confirming, setConfirming] = useState<string>();
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  // The Revoke button to return focus to when the question is dismissed.
  const revokeButtons = useRef(new Map<string, HTMLButtonElement>());

  const load = useCallback(async () => {
    try {
      const res = await adminApi<{ invitations: PendingInvitation[] }>('GET', '/api/invitations');
      setInvitations(res.invitations);
      setError(undefined);
    } catch (err) {
      setError(errorMessage(t, err));
    }
  }, [t]);

  useEffect(() => {
    void load();
  }, [load, refreshKey]);

  const dismiss = (id: string) => {
    setConfirming(undefined);
    // After React has put the Revoke button back.
    requestAnimationFrame(() => revokeButtons.current.get(id)?.focus());
  };

  async function revoke(invitation: PendingInvitation) {
    setBusy(true);
    setNotice(undefined);
    setError(undefined);
    try {
      await adminApi('POST', `/api/invitations/${invitation.id}/revoke`);
      setNotice(t('admin.pendingInvitations.revoked', { email: invitation.email }));
    } catch (err) {
      setError(err instanceof ApiError && err.status === 409 ? t('admin.pendingInvitations.notPending') : errorMessage(t, err));
    } finally {
      setConfirming(undefined);
      setBusy(false);
      await load();
      // The row is gone: focus goes to the section, where the notice is read.
      heading.current?.focus();
    }
  }

  const inviter = (i: PendingInvitation) => i.invitedBy.name ?? (i.invitedBy.role === 'installation' ? t('admin.pendingInvitations.installation') : t(`admin.roles.${i.invitedBy.role}`));

  return (
    <section className="panel stack" aria-labelledby="pending-invitations-heading" data-testid="pending-invitations">
      <h2 id="pending-invitations-heading" tabIndex={-1} ref={heading}>
        {t('admin.pendingInvitations.title')}
      </h2>
      <p className="muted">{t('admin.pendingInvitations.explain')}</p>
      <div aria-live="polite">
        {notice && (
          <p className="notice" role="status" data-testid="pending-invitations-notice">
            {notice}
          </p>
        )}
      </div>
      {error && (
        <p role="alert" className="error" data-testid="pending-invitations-error">
          {error}
        </p>
      )}
      {!invitations ? (
        !error && <p aria-busy="true">{t('app.loading')}</p>
      ) : invitations.length === 0 ? (
        <p data-testid="pending-invitations-none">{t('admin.pendingInvitations.none')}</p>
      ) : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label={t('admin.pendingInvitations.title')}>
          <table data-testid="pending-invitations-table">
            <thead>
              <tr>
                <th scope="col">{t('admin.pendingInvitations.person')}</th>
                <th scope="col">{t('admin.pendingInvitations.role')}</th>
                <th scope="col">{t('admin.pendingInvitations.invitedBy')}</th>
                <th scope="col">{t('admin.pendingInvitations.created')}</th>
                <th scope="col">{t('admin.pendingInvitations.expires')}</th>
                <th scope="col">{t('admin.pendingInvitations.actions')}</th>
              </tr>
            </thead>
            <tbody>
              {invitations.map((i) => (
                <tr key={i.id} data-testid={`pending-${i.email}`}>
                  <th scope="row">
                    <span className="cell-main">{i.name ?? i.email}</span>
                    {i.name && <span className="cell-sub">{i.email}</span>}
                    {i.patientRef && <span className="cell-sub">{t('admin.pendingInvitations.patientRecord', { id: i.patientRef.slice('Patient/'.length) })}</span>}
                  </th>
                  <td>{t(`admin.roles.${i.role}`, { defaultValue: i.role })}</td>
                  <td>{inviter(i)}</td>
                  <td>{dateTime(i.created)}</td>
                  <td data-testid="pending-expires">{dateTime(i.expiresAt)}</td>
                  <td>
                    {confirming === i.id ? (
                      <div
                        className="stack"
                        role="group"
                        aria-labelledby={`revoke-question-${i.id}`}
                        onKeyDown={(e) => {
                          if (e.key === 'Escape') dismiss(i.id);
                        }}
                        data-testid="pending-confirm"
                      >
                        <p id={`revoke-question-${i.id}`}>{t('admin.pendingInvitations.confirmQuestion', { email: i.email })}</p>
                        <div className="row actions">
                          <button type="button" className="danger" disabled={busy} autoFocus onClick={() => void revoke(i)} data-testid="pending-revoke-confirm">
                            {t('admin.pendingInvitations.confirmYes')}
                          </button>
                          <button type="button" disabled={busy} onClick={() => dismiss(i.id)} data-testid="pending-revoke-cancel">
                            {t('admin.pendingInvitations.cancel')}
                          </button>
                        </div>
                      </div>
                    ) : (
                      <button
                        type="button"
                        disabled={busy}
                        ref={(el) => {
                          if (el) revokeButtons.current.set(i.id, el);
                          else revokeButtons.current.delete(i.id);
                        }}
                        onClick={() => setConfirming(i.id)}
                        aria-label={t('admin.pendingInvitations.revokeFor', { email: i.email })}
                        data-testid="pending-revoke"
                      >
                        {t('admin.pendingInvitations.revoke')}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

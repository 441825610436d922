import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import type { ParticipantInfo } from '../../../src/consult/signaling-protocol.js';
import { api } from '../app/api.js';
import { tooManyRequestsText } from '../app/too-many-requests.js';
import { formatClinicTime } from '../app/clinic-time.js';

/** The host's waiting room: who waits, whether their browser encrypts, admit or decline; and guest invitations. */
export function HostPanel({ appointmentId, lobby, onAdmit, onDecline }: { appointmentId: string | undefined; lobby: ParticipantInfo[]; onAdmit(id: string): void; onDecline(id: string): void }) {
  const { t } = useTranslation();
  return (
    <section className="panel" aria-labelledby="lobby-title" data-testid="lobby">
      <h2 id="lobby-title">
        {t('consult.lobbyTitle')} ({lobby.length})
      </h2>
      {lobby.length === 0 && <p>{t('consult.lobbyEmpty')}</p>}
      <ul className="lobby">
        {lobby.map((p) => (
          <li key={p.id} data-testid="lobby-entry" data-e2ee={String(p.e2ee)}>
            <div>
              <strong>{p.displayName}</strong> · {t(`consult.kind.${p.kind}`)} · <span className={p.e2ee ? 'ok' : 'bad'}>{p.e2ee ? t('consult.e2eeOn') : t('consult.e2eeOff')}</span>
            </div>
            {!p.e2ee && (
              <p role="alert" className="warning">
                {t('consult.noE2eeWarning')}
              </p>
            )}
            <div className="row">
              <button type="button" className={p.e2ee ? 'primary' : 'danger'} data-testid="admit" onClick={() => onAdmit(p.id)}>
                {p.e2ee ? t('consult.admit') : t('consult.admitAnyway')}
              </button>
              <button type="button" data-testid="decline" onClick={() => onDecline(p.id)}>
                {t('consult.decline')}
              </button>
            </div>
          </li>
        ))}
      </ul>
      {appointmentId && <GuestInvite appointmentId={appointmentId} />}
    </section>
  );
}

function GuestInvite({ appointmentId }: { appointmentId: string }) {
  const { t, i18n } = useTranslation();
  const [label, setLabel] = useState('');
  const [link, setLink] = useState<{ url: string; expiresAt: string }>();
  const [failed, setFailed] = useState<string>();
  const [copied, setCopied] = useState(false);

  async function create() {
    setFailed(undefined);
    setCopied(false);
    try {
      setLink(await api<{ url: string; expiresAt: string }>('POST', `/api/consult/appointments/${encodeURIComponent(appointmentId)}/guest-links`, { label: label.trim() || t('consult.kind.guest') }));
    } catch (err) {
      setFailed(tooManyRequestsText(t, err) ?? t('consult.linkFailed'));
    }
  }

  return (
    <div className="stack guest-invite">
      <h3>{t('consult.guestLink')}</h3>
      <label>
        {t('consult.guestLabel')}
        <input type="text" maxLength={80} value={label} onChange={(e) => setLabel(e.target.value)} data-testid="guest-label" />
      </label>
      <button type="button" onClick={() => void create()} data-testid="create-guest-link">
        {t('consult.createLink')}
      </button>
      {failed && <p role="alert" className="error">{failed}</p>}
      {link && (
        <div className="row">
          <input type="text" readOnly value={link.url} data-testid="guest-link" aria-label={t('consult.guestLink')} onFocus={(e) => e.target.select()} />
          <button
            type="button"
            onClick={() => void navigator.clipboard?.writeText(link.url).then(() => setCopied(true), () => undefined)}
          >
            {copied ? t('consult.copied') : t('consult.copy')}
          </button>
          <small>{t('consult.linkExpires', { time: formatClinicTime(link.expiresAt, i18n.language, { hour: '2-digit', minute: '2-digit' }) })}</small>
        </div>
      )}
    </div>
  );
}

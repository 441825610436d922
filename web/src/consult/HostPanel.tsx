import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import type { ParticipantInfo } from '../../../src/consult/signaling-protocol.js';
import { ApiError, api } from '../app/api.js';
import { canSendEmail } from '../auth/session.js';
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

/** Same shape the server accepts (src/consult/consult-routes.ts): checked here too so a typo is named before anything is created. */
const EMAIL_SHAPE = /^[^\s@]{1,64}@[^\s@]{1,189}\.[^\s@]{2,63}$/;
const MAIL_LANGUAGES = ['es', 'en'] as const;

function GuestInvite({ appointmentId }: { appointmentId: string }) {
  const { t, i18n } = useTranslation();
  const [label, setLabel] = useState('');
  const [link, setLink] = useState<{ url: string; expiresAt: string; emailedTo?: string }>();
  const [failed, setFailed] = useState<string>();
  const [copied, setCopied] = useState(false);
  const [busy, setBusy] = useState(false);
  // Offered only where the installation sends e-mail (the session says so); otherwise the link is copied by hand.
  const [mailable] = useState(canSendEmail);
  const [byEmail, setByEmail] = useState(false);
  const [email, setEmail] = useState('');
  const [emailInvalid, setEmailInvalid] = useState(false);
  const [language, setLanguage] = useState<(typeof MAIL_LANGUAGES)[number]>(i18n.language === 'en' ? 'en' : 'es');

  async function create() {
    setFailed(undefined);
    setCopied(false);
    const address = email.trim();
    const sending = mailable && byEmail;
    if (sending && !EMAIL_SHAPE.test(address)) {
      setEmailInvalid(true);
      return;
    }
    setEmailInvalid(false);
    setBusy(true);
    try {
      const body = { label: label.trim() || t('consult.kind.guest'), ...(sending ? { email: address, language } : {}) };
      const created = await api<{ url: string; expiresAt: string; emailed?: boolean }>('POST', `/api/consult/appointments/${encodeURIComponent(appointmentId)}/guest-links`, body);
      setLink({ url: created.url, expiresAt: created.expiresAt, ...(created.emailed ? { emailedTo: address } : {}) });
    } catch (err) {
      const refusedAddress = sending && err instanceof ApiError && err.status === 400;
      setFailed(tooManyRequestsText(t, err) ?? (refusedAddress ? t('consult.emailRefused') : t('consult.linkFailed')));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="stack guest-invite">
      <h3>{t('consult.guestLink')}</h3>
      <label>
        {t('consult.guestLabel')}
        <input type="text" maxLength={40} value={label} onChange={(e) => setLabel(e.target.value)} data-testid="guest-label" />
      </label>
      {mailable && (
        <>
          <label className="inline">
            <input type="checkbox" checked={byEmail} onChange={(e) => setByEmail(e.target.checked)} data-testid="guest-by-email" />
            {t('consult.sendByEmail')}
          </label>
          {byEmail && (
            <>
              <label>
                {t('consult.guestEmail')}
                <input
                  type="email"
                  value={email}
                  maxLength={254}
                  autoComplete="off"
                  required
                  onChange={(e) => setEmail(e.target.value)}
                  aria-invalid={emailInvalid}
                  aria-describedby={emailInvalid ? 'guest-email-error' : undefined}
                  data-testid="guest-email"
                />
              </label>
              {emailInvalid && (
                <p id="guest-email-error" role="alert" className="error">
                  {t('consult.guestEmailInvalid')}
                </p>
              )}
              <label>
                {t('consult.guestEmailLanguage')}
                <select value={language} onChange={(e) => setLanguage(e.target.value === 'en' ? 'en' : 'es')} data-testid="guest-email-language">
                  {MAIL_LANGUAGES.map((code) => (
                    <option key={code} value={code} lang={code}>
                      {t(`consult.languageName.${code}`)}
                    </option>
                  ))}
                </select>
              </label>
            </>
          )}
        </>
      )}
      <button type="button" onClick={() => void create()} disabled={busy} data-testid="create-guest-link">
        {t('consult.createLink')}
      </button>
      {failed && <p role="alert" className="error">{failed}</p>}
      <div aria-live="polite">
        {link?.emailedTo && (
          <p className="ok" data-testid="guest-link-emailed">
            {t('consult.linkEmailed', { email: link.emailedTo })}
          </p>
        )}
      </div>
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

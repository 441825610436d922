import { useTranslation } from 'react-i18next';
import { formatClinicTime } from './clinic-time.js';

/**
 * What became of a portal invitation, in the same words wherever one is created (admin users page,
 * reception desk): created, and whether it was also e-mailed; then the link to pass on by hand.
 */
export function InvitationSentNotice({ email, expiresAt, emailed }: { email: string; expiresAt: string; emailed: boolean | undefined }) {
  const { t, i18n } = useTranslation();
  const when = formatClinicTime(expiresAt, i18n.language, { dateStyle: 'medium', timeStyle: 'short' });
  return (
    <p data-testid="invitation-sent" data-emailed={String(emailed === true)}>
      {t(emailed ? 'invitationSent.emailed' : 'invitationSent.created', { email, when })}
    </p>
  );
}

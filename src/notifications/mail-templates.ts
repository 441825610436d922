/**
 * The e-mails telesalud sends, in Spanish and English, as plain text and simple HTML.
 *
 * Minimum necessary: e-mail is not a secure channel (it crosses relays in the clear at rest and
 * sits in mailboxes for years), so a message says only what the recipient needs to act — that
 * they are invited, when an appointment is and whether it is in person or by video, and where to
 * sign in. Never a diagnosis, a note, a reason for visit or a clinician's name or specialty (which
 * can reveal the condition); the details stay behind the portal's sign-in.
 */

export type MailLanguage = 'es' | 'en';
export const MAIL_LANGUAGES: readonly MailLanguage[] = ['es', 'en'];

export type AppointmentChange = 'booked' | 'rescheduled' | 'cancelled';

/** What a message needs besides its template's own fields, resolved when it is sent. */
export interface RenderContext {
  /** The clinic's IANA zone: every time is written on the clinic's clock. */
  timeZone: string;
  /** The service's public https origin (TELESALUD_PUBLIC_URL). */
  publicUrl: string;
}

/**
 * A message as the outbox keeps it (sealed): whom, in which language, which template and its fields,
 * and the patient it concerns (`Patient/<id>`: never written in the message, named in the
 * `notification-sent` audit entry when it goes).
 */
export type MailContent = (
  | { template: 'patient-invitation' | 'staff-invitation'; to: string; language: MailLanguage; link: string; expiresAt: string }
  | { template: `appointment-${AppointmentChange}`; to: string; language: MailLanguage; start: string; end?: string; mode?: 'telehealth' | 'in-person'; previousStart?: string }
  | { template: 'consult-guest-link'; to: string; language: MailLanguage; link: string; expiresAt: string; start?: string }
) & { patient?: string };

export type MailTemplate = MailContent['template'];
export const MAIL_TEMPLATES: readonly MailTemplate[] = ['patient-invitation', 'staff-invitation', 'appointment-booked', 'appointment-rescheduled', 'appointment-cancelled', 'consult-guest-link'];

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/** "martes, 3 de marzo de 2026, 10:30 (GMT-6)" — always in the clinic's zone, named. */
export function clinicTime(instant: string, language: MailLanguage, timeZone: string): string {
  const at = new Date(instant);
  if (Number.isNaN(at.getTime())) return '';
  const locale = language === 'es' ? 'es-ES' : 'en-US';
  const when = new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'short', timeZone }).format(at);
  const zone = new Intl.DateTimeFormat(locale, { timeZone, timeZoneName: 'short' }).formatToParts(at).find((p) => p.type === 'timeZoneName')?.value ?? timeZone;
  return `${when} (${zone})`;
}

/** One block of a message: a paragraph, or a link shown as a button in HTML and on its own line in text. */
type Block = { p: string } | { link: string; label: string };

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function compose(language: MailLanguage, subject: string, blocks: Block[]): RenderedMail {
  const footer = language === 'es'
    ? 'Este mensaje se envía automáticamente; no lo responda. Por su privacidad no incluye información clínica: la encontrará al iniciar sesión.'
    : 'This message is sent automatically; please do not reply. For your privacy it carries no clinical information: you will find it once signed in.';
  const text = [...blocks.map((b) => ('p' in b ? b.p : `${b.label}:\n${b.link}`)), '--', footer].join('\n\n') + '\n';
  const body = blocks
    .map((b) =>
      'p' in b
        ? `<p>${escapeHtml(b.p)}</p>`
        : `<p><a href="${escapeHtml(b.link)}" style="display:inline-block;padding:10px 16px;background:#0b5cad;color:#ffffff;text-decoration:none;border-radius:4px">${escapeHtml(b.label)}</a></p><p style="font-size:12px;color:#555555">${escapeHtml(b.link)}</p>`,
    )
    .join('\n');
  const html = `<!doctype html>
<html lang="${language}"><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#1a1a1a;max-width:560px">
${body}
<hr><p style="font-size:12px;color:#555555">${escapeHtml(footer)}</p>
</body></html>
`;
  return { subject, text, html };
}

const modeLine = (mode: 'telehealth' | 'in-person' | undefined, language: MailLanguage): string | undefined => {
  if (mode === 'telehealth') return language === 'es' ? 'Es una videoconsulta: entre desde el portal unos minutos antes de la hora.' : 'This is a video consultation: join it from the portal a few minutes before the time.';
  if (mode === 'in-person') return language === 'es' ? 'Es una consulta presencial en la clínica.' : 'This is an in-person visit at the clinic.';
  return undefined;
};

export function renderMail(content: MailContent, ctx: RenderContext): RenderedMail {
  const es = content.language === 'es';
  const portal = `${ctx.publicUrl}/portal`;
  const at = (instant: string) => clinicTime(instant, content.language, ctx.timeZone);
  switch (content.template) {
    case 'patient-invitation':
      return compose(content.language, es ? 'Su invitación al portal del paciente' : 'Your invitation to the patient portal', [
        { p: es ? 'Su clínica le invita a crear su cuenta en el portal del paciente, donde verá sus citas y entrará a sus videoconsultas.' : 'Your clinic invites you to create your account on the patient portal, where you will see your appointments and join your video consultations.' },
        { link: content.link, label: es ? 'Crear mi cuenta' : 'Create my account' },
        { p: es ? `El enlace sirve una sola vez y caduca el ${at(content.expiresAt)}. No lo reenvíe: quien lo abra primero crea la cuenta.` : `The link works once and expires on ${at(content.expiresAt)}. Do not forward it: whoever opens it first creates the account.` },
        { p: es ? 'Si no esperaba este mensaje, ignórelo: sin el enlace no se crea ninguna cuenta.' : 'If you did not expect this message, ignore it: no account is created without the link.' },
      ]);
    case 'staff-invitation':
      return compose(content.language, es ? 'Su cuenta de personal de la clínica' : 'Your clinic staff account', [
        { p: es ? 'Se ha creado una invitación para que abra su cuenta de personal de la clínica.' : 'An invitation has been made for you to open your clinic staff account.' },
        { link: content.link, label: es ? 'Abrir mi cuenta' : 'Open my account' },
        { p: es ? `El enlace sirve una sola vez y caduca el ${at(content.expiresAt)}. Se le pedirá además un segundo factor de autenticación si la política de la clínica lo exige.` : `The link works once and expires on ${at(content.expiresAt)}. You may also be asked to set up a second authentication factor, as the clinic's policy requires.` },
        { p: es ? 'Si no esperaba este mensaje, ignórelo y avise a la clínica.' : 'If you did not expect this message, ignore it and tell the clinic.' },
      ]);
    case 'appointment-booked':
    case 'appointment-rescheduled':
    case 'appointment-cancelled': {
      const blocks: Block[] = [];
      let subject: string;
      if (content.template === 'appointment-booked') {
        subject = es ? 'Cita confirmada' : 'Appointment confirmed';
        blocks.push({ p: es ? `Su cita está confirmada para el ${at(content.start)}, hora de la clínica.` : `Your appointment is confirmed for ${at(content.start)}, clinic time.` });
      } else if (content.template === 'appointment-rescheduled') {
        subject = es ? 'Su cita ha cambiado de hora' : 'Your appointment has been moved';
        blocks.push({ p: es ? `Su cita ahora es el ${at(content.start)}, hora de la clínica.` : `Your appointment is now on ${at(content.start)}, clinic time.` });
        if (content.previousStart) blocks.push({ p: es ? `Antes era el ${at(content.previousStart)}.` : `It was on ${at(content.previousStart)}.` });
      } else {
        subject = es ? 'Cita cancelada' : 'Appointment cancelled';
        blocks.push({ p: es ? `Su cita del ${at(content.start)} (hora de la clínica) ha sido cancelada.` : `Your appointment on ${at(content.start)} (clinic time) has been cancelled.` });
      }
      const mode = content.template === 'appointment-cancelled' ? undefined : modeLine(content.mode, content.language);
      if (mode) blocks.push({ p: mode });
      blocks.push({ link: portal, label: es ? 'Ver mis citas' : 'See my appointments' });
      return compose(content.language, subject, blocks);
    }
    case 'consult-guest-link':
      return compose(content.language, es ? 'Enlace para unirse a una videoconsulta' : 'Link to join a video consultation', [
        { p: content.start ? (es ? `Le invitan a unirse a una videoconsulta el ${at(content.start)}, hora de la clínica.` : `You are invited to join a video consultation on ${at(content.start)}, clinic time.`) : es ? 'Le invitan a unirse a una videoconsulta.' : 'You are invited to join a video consultation.' },
        { link: content.link, label: es ? 'Unirme a la videoconsulta' : 'Join the video consultation' },
        { p: es ? `El enlace es personal, sirve una sola vez y caduca el ${at(content.expiresAt)}. No lo reenvíe.` : `The link is personal, works once and expires on ${at(content.expiresAt)}. Do not forward it.` },
      ]);
  }
}

import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { InvitationSentNotice } from '../app/InvitationSentNotice.js';
import { ApiError } from '../app/api.js';
import { canSendEmail } from '../auth/session.js';
import { bookingFor, loadFreeSlots, loadOffers, type Offer, type Slot } from '../portal/appointments.js';
import { call, fhirCreate, personName, search, type Resource } from './fhir.js';
import { ErrorLine, errorText, formatDate, formatDateTime, Loading } from './ui.js';

interface Patient extends Resource {
  birthDate?: string;
  telecom?: { system?: string; value?: string }[];
}

const emailOf = (patient: Patient | undefined) => patient?.telecom?.find((c) => c.system === 'email')?.value;

/**
 * /clinic/book: the front desk's work in one place — find the patient (or register a new one),
 * book a video consultation in a clinician's free slot, and invite the patient to the portal.
 * Everything goes through the same API and access policy as any other caller.
 */
export function ReceptionDesk() {
  const { t, i18n } = useTranslation();
  const [patient, setPatient] = useState<Patient>();
  const [booked, setBooked] = useState<{ start: string; clinician: string }>();
  return (
    <main className="clinic-main stack" data-testid="reception-desk">
      <h1>{t('clinic.desk.title')}</h1>
      {!patient ? (
        <FindOrRegister onChosen={setPatient} />
      ) : (
        <>
          <section className="panel stack" aria-labelledby="desk-patient">
            <h2 id="desk-patient">{t('clinic.desk.patient')}</h2>
            <p data-testid="desk-patient-name">
              <strong>{personName(patient)}</strong>
              {patient.birthDate ? ` · ${formatDate(patient.birthDate, i18n.language)}` : ''}
            </p>
            <button
              type="button"
              onClick={() => {
                setPatient(undefined);
                setBooked(undefined);
              }}
            >
              {t('clinic.desk.otherPatient')}
            </button>
          </section>
          {!booked ? <Book patient={patient} onBooked={setBooked} /> : <p role="status" data-testid="desk-booked">{t('clinic.desk.booked', { when: booked.start, name: booked.clinician })}</p>}
          <Invite patient={patient} />
        </>
      )}
    </main>
  );
}

function FindOrRegister({ onChosen }: { onChosen: (patient: Patient) => void }) {
  const { t, i18n } = useTranslation();
  const [name, setName] = useState('');
  const [results, setResults] = useState<Patient[]>();
  const [registering, setRegistering] = useState(false);
  const [given, setGiven] = useState('');
  const [family, setFamily] = useState('');
  const [birthDate, setBirthDate] = useState('');
  const [email, setEmail] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  async function find(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    setBusy(true);
    try {
      setResults((await search<Patient>(`Patient?name=${encodeURIComponent(name.trim())}&_count=20`)).matches);
    } catch (err) {
      setError(errorText(t, err));
    } finally {
      setBusy(false);
    }
  }

  async function register(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    setBusy(true);
    try {
      const created = await fhirCreate<Patient>({
        resourceType: 'Patient',
        active: true,
        name: [{ given: [given.trim()], family: family.trim() }],
        ...(birthDate ? { birthDate } : {}),
        ...(email.trim() ? { telecom: [{ system: 'email', value: email.trim() }] } : {}),
      });
      onChosen(created);
    } catch (err) {
      setError(errorText(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="stack" aria-labelledby="desk-find">
      <h2 id="desk-find">{t('clinic.desk.find')}</h2>
      <form className="row" role="search" onSubmit={(e) => void find(e)} data-testid="desk-search">
        <label className="inline">
          {t('clinic.patients.name')}
          <input value={name} onChange={(e) => setName(e.target.value)} required minLength={2} autoComplete="off" />
        </label>
        <button type="submit" disabled={busy}>{t('clinic.patients.search')}</button>
      </form>
      <ErrorLine error={error} />
      {results && results.length === 0 && <p>{t('clinic.desk.noMatch')}</p>}
      {results && results.length > 0 && (
        <ul className="stack tight">
          {results.map((p) => (
            <li key={p.id}>
              <button type="button" onClick={() => onChosen(p)} data-testid="desk-choose-patient">
                {personName(p)}
                {p.birthDate ? ` · ${formatDate(p.birthDate, i18n.language)}` : ''}
              </button>
            </li>
          ))}
        </ul>
      )}
      {!registering ? (
        <button type="button" onClick={() => setRegistering(true)} data-testid="desk-register-start">{t('clinic.desk.register')}</button>
      ) : (
        <form className="stack panel" onSubmit={(e) => void register(e)} aria-labelledby="desk-register" data-testid="desk-register">
          <h3 id="desk-register">{t('clinic.desk.register')}</h3>
          <label>
            {t('clinic.desk.given')}
            <input value={given} onChange={(e) => setGiven(e.target.value)} required maxLength={100} autoComplete="off" />
          </label>
          <label>
            {t('clinic.desk.family')}
            <input value={family} onChange={(e) => setFamily(e.target.value)} required maxLength={100} autoComplete="off" />
          </label>
          <label>
            {t('clinic.patients.birthdate')}
            <input type="date" value={birthDate} onChange={(e) => setBirthDate(e.target.value)} />
          </label>
          <label>
            {t('clinic.desk.email')}
            <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} maxLength={254} autoComplete="off" />
          </label>
          <div className="row">
            <button type="submit" className="primary" disabled={busy}>{t('clinic.desk.registerGo')}</button>
            <button type="button" onClick={() => setRegistering(false)}>{t('clinic.desk.cancelForm')}</button>
          </div>
        </form>
      )}
    </section>
  );
}

function Book({ patient, onBooked }: { patient: Patient; onBooked: (b: { start: string; clinician: string }) => void }) {
  const { t, i18n } = useTranslation();
  const [offers, setOffers] = useState<Offer[]>();
  const [offer, setOffer] = useState<Offer>();
  const [slots, setSlots] = useState<Slot[]>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  useEffect(() => {
    loadOffers().then(setOffers, (err: unknown) => setError(errorText(t, err)));
  }, [t]);
  useEffect(() => {
    setSlots(undefined);
    if (offer) loadFreeSlots(offer.scheduleIds).then(setSlots, (err: unknown) => setError(errorText(t, err)));
  }, [offer, t]);

  async function book(slot: Slot) {
    if (!offer) return;
    setBusy(true);
    setError(undefined);
    try {
      await fhirCreate(bookingFor(slot, `Patient/${patient.id}`, offer.practitioner, '') as Resource);
      onBooked({ start: formatDateTime(slot.start, i18n.language), clinician: offer.name });
    } catch (err) {
      setError(errorText(t, err));
      // Someone else may have taken it: show what is free now.
      loadFreeSlots(offer.scheduleIds).then(setSlots, () => undefined);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="stack" aria-labelledby="desk-book">
      <h2 id="desk-book">{t('clinic.desk.book')}</h2>
      {!offers && !error && <Loading />}
      {offers && (
        <label>
          {t('clinic.desk.clinician')}
          <select value={offer?.practitioner ?? ''} onChange={(e) => setOffer(offers.find((o) => o.practitioner === e.target.value))} data-testid="desk-clinician">
            <option value="">{t('clinic.desk.chooseClinician')}</option>
            {offers.map((o) => (
              <option key={o.practitioner} value={o.practitioner}>{o.name || o.practitioner}</option>
            ))}
          </select>
        </label>
      )}
      {offer && !slots && <Loading />}
      {slots && slots.length === 0 && <p>{t('clinic.desk.noSlots')}</p>}
      {slots && slots.length > 0 && (
        <ul className="row wrap" aria-label={t('clinic.desk.slots')}>
          {slots.slice(0, 30).map((s) => (
            <li key={s.id}>
              <button type="button" disabled={busy} onClick={() => void book(s)} data-testid="desk-slot">
                {formatDateTime(s.start, i18n.language)}
              </button>
            </li>
          ))}
        </ul>
      )}
      <ErrorLine error={error} />
    </section>
  );
}

function Invite({ patient }: { patient: Patient }) {
  const { t } = useTranslation();
  const [email, setEmail] = useState(emailOf(patient) ?? '');
  const [link, setLink] = useState<{ url: string; expiresAt: string; emailed?: boolean; email: string }>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  // With e-mail on, the node sends the invitation itself: reception is not told to send it.
  const [mailable] = useState(canSendEmail);

  async function invite(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const created = await call<{ url: string; expiresAt: string; emailed?: boolean }>('POST', '/api/invitations', { body: { email: email.trim(), patientId: patient.id } });
      setLink({ ...created, email: email.trim() });
    } catch (err) {
      setError(err instanceof ApiError && err.status === 409 ? t('clinic.desk.hasAccount') : errorText(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="stack" aria-labelledby="desk-invite">
      <h2 id="desk-invite">{t('clinic.desk.invite')}</h2>
      <p className="muted">{t(mailable ? 'clinic.desk.inviteIntroEmail' : 'clinic.desk.inviteIntro')}</p>
      {!link ? (
        <form className="row" onSubmit={(e) => void invite(e)} data-testid="desk-invite-form">
          <label className="inline">
            {t('clinic.desk.email')}
            <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required maxLength={254} autoComplete="off" />
          </label>
          <button type="submit" disabled={busy}>{t('clinic.desk.inviteGo')}</button>
        </form>
      ) : (
        <div className="stack tight" role="status">
          <InvitationSentNotice email={link.email} expiresAt={link.expiresAt} emailed={link.emailed} />
          <input readOnly value={link.url} aria-label={t('clinic.desk.inviteLink')} data-testid="desk-invite-link" onFocus={(e) => e.target.select()} />
        </div>
      )}
      <ErrorLine error={error} />
    </section>
  );
}

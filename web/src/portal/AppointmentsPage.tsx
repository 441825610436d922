import { useCallback, useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { navigate } from '../app/navigation.js';
import { bookingFor, CANCELLABLE, isTelehealth, loadAppointments, loadFreeSlots, loadOffers, practitionerOf, type Appointment, type MyAppointments, type Offer, type Slot } from './appointments.js';
import { explain } from './explain.js';
import { formatAppointmentTime, formatDay, formatTime, isSameDay, localDayKey, zoneAbbreviation } from './format.js';
import { call, updateResource } from './portal-api.js';

/** /portal: what is coming, what has been, booking, cancelling, rescheduling and joining. */
export function AppointmentsPage({ patientRef }: { patientRef: string }) {
  const { t } = useTranslation();
  const [data, setData] = useState<MyAppointments>();
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState<string>();
  const [booking, setBooking] = useState<{ replacing?: Appointment } | undefined>();

  const reload = useCallback(() => {
    loadAppointments(patientRef).then(setData, (err: unknown) => setError(explain(t, err)));
  }, [patientRef, t]);
  useEffect(reload, [reload]);

  async function cancel(appointment: Appointment) {
    setStatus(undefined);
    setError(undefined);
    try {
      await updateResource({ ...appointment, status: 'cancelled' });
      setStatus(t('portal.appointments.cancelled'));
      reload();
    } catch (err) {
      setError(explain(t, err));
    }
  }

  const name = (a: Appointment) => data?.names.get(practitionerOf(a) ?? '') || t('portal.appointments.yourClinician');
  return (
    <div className="stack" data-testid="appointments-page">
      <h1>{t('portal.appointments.title')}</h1>
      {status && <p role="status" className="notice" data-testid="appointments-status">{status}</p>}
      {error && <p role="alert" className="error">{error}</p>}
      {booking ? (
        <BookingPanel
          patientRef={patientRef}
          replacing={booking.replacing}
          onClose={(message) => {
            setBooking(undefined);
            if (message) {
              setStatus(message);
              reload();
            }
          }}
        />
      ) : (
        <button type="button" className="primary" onClick={() => setBooking({})} data-testid="book-start">{t('portal.appointments.book')}</button>
      )}
      <section aria-labelledby="upcoming-title" className="stack">
        <h2 id="upcoming-title">{t('portal.appointments.upcoming')}</h2>
        {!data && !error && <p aria-busy="true">{t('portal.loading')}</p>}
        {data && data.upcoming.length === 0 && <p>{t('portal.appointments.noneUpcoming')}</p>}
        <ul className="cards" data-testid="upcoming">
          {data?.upcoming.map((a) => (
            <UpcomingCard key={a.id} appointment={a} clinician={name(a)} onCancel={() => void cancel(a)} onReschedule={() => setBooking({ replacing: a })} />
          ))}
        </ul>
      </section>
      <section aria-labelledby="past-title" className="stack">
        <h2 id="past-title">{t('portal.appointments.past')}</h2>
        {data && data.past.length === 0 && <p>{t('portal.appointments.nonePast')}</p>}
        <ul className="cards" data-testid="past">
          {data?.past.map((a) => (
            <li key={a.id} className="card" data-testid="past-appointment">
              <p className="when">{formatAppointmentTime(a.start)}</p>
              <p>{name(a)}</p>
              <p className="hint">{t(`portal.appointments.status.${a.status}`, { defaultValue: a.status })}</p>
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}

function UpcomingCard({ appointment: a, clinician, onCancel, onReschedule }: { appointment: Appointment; clinician: string; onCancel: () => void; onReschedule: () => void }) {
  const { t } = useTranslation();
  const [confirming, setConfirming] = useState(false);
  const today = a.start ? isSameDay(new Date(a.start), new Date()) : false;
  const telehealth = isTelehealth(a);
  return (
    <li className="card stack" data-testid="upcoming-appointment" data-id={a.id}>
      <p className="when">{formatAppointmentTime(a.start)}</p>
      <p>
        {clinician} · {telehealth ? t('portal.appointments.video') : t('portal.appointments.inPerson')}
      </p>
      {a.description && <p className="hint">{a.description}</p>}
      <div className="row">
        {telehealth && today && (
          <button type="button" className="primary" onClick={() => navigate(`/consult/${a.id}`)} data-testid="join">{t('portal.appointments.join')}</button>
        )}
        {CANCELLABLE.has(a.status) && telehealth && (
          <button type="button" onClick={onReschedule} data-testid="reschedule">{t('portal.appointments.reschedule')}</button>
        )}
        {CANCELLABLE.has(a.status) && !confirming && (
          <button type="button" onClick={() => setConfirming(true)} data-testid="cancel">{t('portal.appointments.cancel')}</button>
        )}
      </div>
      {confirming && (
        <div className="confirm stack" role="group" aria-label={t('portal.appointments.cancelConfirm')}>
          <p>{t('portal.appointments.cancelConfirm')}</p>
          <div className="row">
            <button type="button" className="danger" onClick={onCancel} data-testid="cancel-confirm">{t('portal.appointments.cancelYes')}</button>
            <button type="button" onClick={() => setConfirming(false)}>{t('portal.appointments.cancelNo')}</button>
          </div>
        </div>
      )}
    </li>
  );
}

/** Choose a clinician, a day and a free time; a reschedule books the new time first, then cancels the old one. */
function BookingPanel({ patientRef, replacing, onClose }: { patientRef: string; replacing: Appointment | undefined; onClose: (message?: string) => void }) {
  const { t } = useTranslation();
  const [offers, setOffers] = useState<Offer[]>();
  const [practitioner, setPractitioner] = useState<string>(replacing ? (practitionerOf(replacing) ?? '') : '');
  const [slots, setSlots] = useState<Slot[]>();
  const [chosen, setChosen] = useState<Slot>();
  const [reason, setReason] = useState(replacing?.description ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    heading.current?.focus();
    loadOffers().then(
      (list) => {
        setOffers(list);
        if (!replacing && list.length === 1) setPractitioner(list[0]!.practitioner);
      },
      (err: unknown) => setError(explain(t, err)),
    );
  }, [replacing, t]);

  useEffect(() => {
    setChosen(undefined);
    setSlots(undefined);
    const offer = offers?.find((o) => o.practitioner === practitioner);
    if (!offer) return;
    loadFreeSlots(offer.scheduleIds).then(setSlots, (err: unknown) => setError(explain(t, err)));
  }, [offers, practitioner, t]);

  async function book() {
    if (!chosen) return;
    setBusy(true);
    setError(undefined);
    try {
      await call('POST', '/fhir/R4/Appointment', bookingFor(chosen, patientRef, practitioner, reason));
      if (replacing) {
        try {
          await updateResource({ ...replacing, status: 'cancelled' });
        } catch {
          // The new time is held: say so plainly, and leave the old one on the list to cancel by hand.
          return onClose(t('portal.booking.oldNotCancelled', { when: formatAppointmentTime(chosen.start) }));
        }
      }
      onClose(t(replacing ? 'portal.booking.rescheduled' : 'portal.booking.booked', { when: formatAppointmentTime(chosen.start) }));
    } catch (err) {
      setError(explain(t, err));
      // Not sent (too many requests, no connection, the server failing): the choice and reason stay, to send again.
      if (!(err instanceof ApiError) || err.status === 429 || err.status >= 500) return;
      // Someone else may have taken it: show what is free now.
      const offer = offers?.find((o) => o.practitioner === practitioner);
      if (offer) loadFreeSlots(offer.scheduleIds).then(setSlots, () => undefined);
      setChosen(undefined);
    } finally {
      setBusy(false);
    }
  }

  const days = new Map<string, Slot[]>();
  for (const slot of slots ?? []) {
    const key = localDayKey(slot.start);
    days.set(key, [...(days.get(key) ?? []), slot]);
  }

  return (
    <section className="panel stack booking" aria-labelledby="booking-title" data-testid="booking">
      <h2 id="booking-title" tabIndex={-1} ref={heading}>{replacing ? t('portal.booking.rescheduleTitle') : t('portal.booking.title')}</h2>
      {replacing && <p>{t('portal.booking.replacing', { when: formatAppointmentTime(replacing.start) })}</p>}
      {!offers && !error && <p aria-busy="true">{t('portal.loading')}</p>}
      {offers && offers.length === 0 && <p>{t('portal.booking.noClinicians')}</p>}
      {offers && offers.length > 0 && (
        <label>
          {t('portal.booking.clinician')}
          <select value={practitioner} onChange={(e) => setPractitioner(e.target.value)} data-testid="booking-practitioner">
            <option value="">{t('portal.booking.chooseClinician')}</option>
            {offers.map((o) => (
              <option key={o.practitioner} value={o.practitioner}>{o.name || t('portal.appointments.yourClinician')}</option>
            ))}
          </select>
        </label>
      )}
      {practitioner && !slots && !error && <p aria-busy="true">{t('portal.loading')}</p>}
      {slots && slots.length === 0 && <p data-testid="no-slots">{t('portal.booking.noSlots')}</p>}
      {[...days].map(([day, list]) => (
        <fieldset key={day} className="slots">
          <legend>
            {formatDay(list[0]!.start)} · {zoneAbbreviation(list[0]!.start)}
          </legend>
          <div className="slot-grid">
            {list.map((slot) => (
              <button type="button" key={slot.id} aria-pressed={chosen?.id === slot.id} onClick={() => setChosen(slot)} data-testid="slot" data-start={slot.start}>
                {formatTime(slot.start)}
              </button>
            ))}
          </div>
        </fieldset>
      ))}
      {chosen && (
        <div className="stack confirm" data-testid="booking-confirm">
          <p role="status">{t('portal.booking.chosen', { when: formatAppointmentTime(chosen.start) })}</p>
          <label>
            {t('portal.booking.reason')}
            <textarea value={reason} maxLength={500} rows={2} onChange={(e) => setReason(e.target.value)} data-testid="booking-reason" />
          </label>
          <button type="button" className="primary" disabled={busy} onClick={() => void book()} data-testid="booking-submit">
            {busy ? t('portal.busy') : replacing ? t('portal.booking.confirmReschedule') : t('portal.booking.confirm')}
          </button>
        </div>
      )}
      {error && <p role="alert" className="error">{error}</p>}
      <button type="button" onClick={() => onClose()} data-testid="booking-close">{t('portal.booking.close')}</button>
    </section>
  );
}

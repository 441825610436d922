import { useCallback, useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { consultationMode } from '../../../src/records/telesalud-codes.js';
import { call, fhirUpdate, personName, search, type Resource } from './fhir.js';
import type { Clinician } from './ClinicApp.js';
import { clinicDayKey, formatClinicTime } from '../app/clinic-time.js';
import { ErrorLine, errorText, formatTime, Link, Loading } from './ui.js';

/** How often the schedule asks who is waiting: often enough that nobody waits unseen for long. */
const POLL_MS = 10_000;

interface WaitingRoom {
  appointmentId: string;
  open: boolean;
  hostPresent: boolean;
  waiting: { id: string; kind: string; displayName: string; e2ee: boolean }[];
  admitted: number;
}

interface Row {
  appointment: Resource & { start?: string; end?: string; status?: string };
  patientId: string | undefined;
  patientName: string;
  /** Reception's schedule covers every clinician: whose appointment this is. */
  practitionerName?: string;
  telehealth: boolean;
}

/** YYYY-MM-DD of an instant in the clinic's time zone. */
function dayOf(date: Date): string {
  return clinicDayKey(date);
}

/**
 * The days to ask the server for around a clinic day: a day either side covers every time-zone
 * offset; rows are then kept by their day in the clinic's zone. Whole dates, not instants: the
 * shield reads an instant's "hh:mm:ss" in a query as an address.
 */
function dayWindow(day: string): { from: string; to: string } {
  return { from: shiftDay(day, -1), to: shiftDay(day, 2) };
}

function shiftDay(day: string, by: number): string {
  const d = new Date(`${day}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + by);
  return d.toISOString().slice(0, 10);
}

/** Whether the appointment is a video consultation (the server's own rule: its consultation mode). */
const isTelehealth = (appointment: Resource): boolean => consultationMode(appointment as Parameters<typeof consultationMode>[0]) === 'telehealth';

/**
 * /clinic: the clinician's appointments of the day, in the clinic's time zone, with who waits in
 * which waiting room now. For reception, every clinician's appointments, each with a way to
 * cancel it; no chart and no call (the front desk opens neither).
 */
export function SchedulePage({ clinician }: { clinician: Clinician }) {
  const { t, i18n } = useTranslation();
  const desk = clinician.role === 'reception';
  const [version, setVersion] = useState(0);
  const [day, setDay] = useState(() => dayOf(new Date()));
  const [rows, setRows] = useState<Row[]>();
  const [rooms, setRooms] = useState<Map<string, WaitingRoom>>(new Map());
  const [refreshedAt, setRefreshedAt] = useState<string>();
  const [error, setError] = useState<string>();

  useEffect(() => {
    let live = true;
    setRows(undefined);
    setError(undefined);
    const { from, to } = dayWindow(day);
    const whose = desk ? '_include=Appointment:practitioner' : `practitioner=${encodeURIComponent(clinician.fhirRef!.slice('Practitioner/'.length))}`;
    search<Row['appointment']>(`Appointment?${whose}&date=ge${encodeURIComponent(from)}&date=lt${encodeURIComponent(to)}&_include=Appointment:patient&_sort=date&_count=200`).then(
      ({ matches, included }) => {
        if (!live) return;
        const list = matches
          .filter((a) => a.start && dayOf(new Date(a.start)) === day)
          .map((appointment): Row => {
            const refs = ((appointment.participant as { actor?: { reference?: string } }[] | undefined) ?? []).map((p) => p.actor?.reference);
            const patientRef = refs.find((r) => r?.startsWith('Patient/'));
            const practitionerRef = refs.find((r) => r?.startsWith('Practitioner/'));
            return {
              appointment,
              patientId: patientRef?.slice('Patient/'.length),
              patientName: personName(patientRef ? included.get(patientRef) : undefined) || t('clinic.schedule.unknownPatient'),
              ...(desk && practitionerRef ? { practitionerName: personName(included.get(practitionerRef)) } : {}),
              telehealth: isTelehealth(appointment),
            };
          });
        setRows(list);
      },
      (err: unknown) => live && setError(errorText(t, err)),
    );
    return () => {
      live = false;
    };
  }, [day, clinician.fhirRef, desk, version, t]);

  const openIds = (rows ?? []).filter((r) => r.telehealth && !['cancelled', 'noshow', 'entered-in-error'].includes(r.appointment.status ?? '')).map((r) => r.appointment.id!);
  const idsKey = openIds.join(',');

  const refresh = useCallback(async () => {
    if (!idsKey) return;
    try {
      const answer = await call<{ rooms: WaitingRoom[] }>('GET', `/api/consult/waiting-rooms?appointments=${encodeURIComponent(idsKey)}`);
      setRooms(new Map(answer.rooms.map((r) => [r.appointmentId, r])));
      setRefreshedAt(new Date().toISOString());
    } catch {
      // The schedule itself stays usable; the next poll tries again.
    }
  }, [idsKey]);

  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), POLL_MS);
    return () => clearInterval(timer);
  }, [refresh]);

  const dateLabel = new Date(`${day}T12:00:00Z`).toLocaleDateString(i18n.language, { weekday: 'long', day: 'numeric', month: 'long', timeZone: 'UTC' });
  return (
    <main className="clinic-main stack" data-testid="schedule">
      <h1>
        {t('clinic.schedule.title')} · <span className="capitalize">{dateLabel}</span>
      </h1>
      <div className="row">
        <button type="button" onClick={() => setDay(shiftDay(day, -1))}>
          {t('clinic.schedule.previous')}
        </button>
        <button type="button" onClick={() => setDay(dayOf(new Date()))}>
          {t('clinic.schedule.today')}
        </button>
        <button type="button" onClick={() => setDay(shiftDay(day, 1))}>
          {t('clinic.schedule.next')}
        </button>
        <label className="inline">
          {t('clinic.schedule.day')}
          <input type="date" value={day} onChange={(e) => e.target.value && setDay(e.target.value)} />
        </label>
      </div>
      <ErrorLine error={error} />
      {!rows && !error && <Loading />}
      {rows?.length === 0 && <p>{t('clinic.schedule.empty')}</p>}
      {rows && rows.length > 0 && (
        <ol className="schedule-list">
          {rows.map((row) => (
            <ScheduleRow key={row.appointment.id} row={row} room={rooms.get(row.appointment.id!)} desk={desk} onChanged={() => setVersion((v) => v + 1)} />
          ))}
        </ol>
      )}
      {refreshedAt && (
        <p className="muted" role="status">
          {t('clinic.schedule.refreshed', { time: formatClinicTime(refreshedAt, i18n.language, { hour: '2-digit', minute: '2-digit', second: '2-digit' }) })}
        </p>
      )}
    </main>
  );
}

function ScheduleRow({ row, room, desk, onChanged }: { row: Row; room: WaitingRoom | undefined; desk: boolean; onChanged: () => void }) {
  const { t, i18n } = useTranslation();
  const { appointment } = row;
  const [error, setError] = useState<string>();
  async function cancel() {
    if (!window.confirm(t('clinic.desk.cancelConfirm', { name: row.patientName }))) return;
    try {
      await fhirUpdate({ ...appointment, status: 'cancelled', cancelationReason: { text: t('clinic.desk.cancelReason') } });
      onChanged();
    } catch (err) {
      setError(errorText(t, err));
    }
  }
  const status = appointment.status ?? 'booked';
  const closed = ['cancelled', 'noshow', 'entered-in-error'].includes(status);
  const waiting = room?.waiting ?? [];
  const first = waiting[0];
  return (
    <li className={`schedule-item panel${waiting.length ? ' has-waiting' : ''}`} data-testid="appointment-row" data-appointment-id={appointment.id} data-waiting={waiting.length}>
      <div className="schedule-time">{t('clinic.schedule.time', { start: formatTime(appointment.start, i18n.language), end: formatTime(appointment.end, i18n.language, true) })}</div>
      <div className="stack tight">
        <div className="row">
          <strong>{row.patientName}</strong>
          <span className="badge">{t(`clinic.schedule.status.${status}`, { defaultValue: status })}</span>
          <span className="muted">{row.telehealth ? t('clinic.schedule.video') : t('clinic.schedule.inPerson')}</span>
          {row.practitionerName && <span data-testid="appointment-practitioner">{t('clinic.desk.with', { name: row.practitionerName })}</span>}
        </div>
        {row.telehealth && !closed && (
          <div aria-live="polite" data-testid="waiting-room-state">
            {waiting.length === 0 ? (
              <span className="muted">{t('clinic.schedule.nobodyWaiting')}</span>
            ) : (
              <ul className="waiting-list">
                {waiting.map((w) => (
                  <li key={w.id} data-testid="waiting-entry" data-e2ee={String(w.e2ee)}>
                    <strong>{w.displayName}</strong> · <span className={w.e2ee ? 'ok' : 'bad'}>{w.e2ee ? t('clinic.schedule.encrypted') : t('clinic.schedule.notEncrypted')}</span>
                  </li>
                ))}
              </ul>
            )}
            {room && room.admitted > 0 && <span className="muted"> {t('clinic.schedule.inCall', { count: room.admitted })}</span>}
          </div>
        )}
        <ErrorLine error={error} />
        <div className="row">
          {desk && !closed && (
            <button type="button" onClick={() => void cancel()} data-testid="cancel-appointment" aria-label={t('clinic.desk.cancelNamed', { name: row.patientName })}>
              {t('clinic.desk.cancel')}
            </button>
          )}
          {!desk && row.telehealth && !closed && first && (
            <Link to={`/consult/${appointment.id}?admit=${encodeURIComponent(first.id)}`} className="button primary" testId="join-and-admit">
              {t('clinic.schedule.joinAndAdmit', { name: first.displayName })}
            </Link>
          )}
          {!desk && row.telehealth && !closed && !first && (
            <Link to={`/consult/${appointment.id}`} className="button" testId="join-consult">
              {t('clinic.schedule.join')}
            </Link>
          )}
          {!desk && row.patientId && (
            <Link to={`/clinic/patients/${row.patientId}`} className="button" testId="open-chart" label={`${t('clinic.schedule.chart')}: ${row.patientName}`}>
              {t('clinic.schedule.chart')}
            </Link>
          )}
        </div>
      </div>
    </li>
  );
}

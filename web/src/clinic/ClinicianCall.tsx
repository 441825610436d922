import { memo, useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import type { Account } from '../auth/session.js';
import type { CallSession, CallState } from '../consult/call-session.js';
import { CallScreen } from '../consult/CallScreen.js';
import { Chart, PatientHeader } from './ChartPage.js';
import type { Clinician } from './ClinicApp.js';
import { fhirGet, type Resource } from './fhir.js';
import { ErrorLine, errorText, Loading } from './ui.js';
import './clinic.css';
import { addAreaMessages } from '../i18n/i18n.js';
import { clinicEn, clinicEs } from './messages.js';

addAreaMessages('clinic', clinicEn, clinicEs);

/**
 * The clinician's consultation screen: the call and the patient's chart side by side (on a
 * phone, one at a time behind two buttons), so the visit is documented without leaving the call.
 * Whatever is shown, the call's end-to-end encryption state, the safety code and who waits stay
 * in view.
 */
export default function ClinicianCall({ session, state, appointmentId, account }: { session: CallSession; state: CallState; appointmentId: string | undefined; account: Account }) {
  const { t } = useTranslation();
  const clinician = account as Clinician;
  const [pane, setPane] = useState<'video' | 'chart'>('video');
  const [patient, setPatient] = useState<Resource | null>();
  const [error, setError] = useState<string>();

  useEffect(() => {
    if (!appointmentId) return setPatient(null);
    let live = true;
    fhirGet<Resource & { participant?: { actor?: { reference?: string } }[] }>(`Appointment/${encodeURIComponent(appointmentId)}`)
      .then(async (appointment) => {
        const ref = appointment.participant?.map((p) => p.actor?.reference).find((r) => r?.startsWith('Patient/'));
        if (!ref) return live && setPatient(null);
        const p = await fhirGet(ref);
        if (live) setPatient(p);
      })
      .catch((err: unknown) => live && setError(errorText(t, err)));
    return () => {
      live = false;
    };
  }, [appointmentId, t]);

  const allEncrypted = state.e2ee && state.peers.every((p) => p.info.e2ee);
  const codes = state.peers.filter((p) => p.safetyCode);
  return (
    <div className="clinician-call" data-testid="clinician-call" data-pane={pane}>
      <div className="call-strip" role="group" aria-label={t('clinic.call.layout')}>
        <span className={`badge ${allEncrypted ? 'ok' : 'bad'}`} data-testid="strip-e2ee" data-state={allEncrypted ? 'on' : 'off'}>
          {allEncrypted ? '🔒 ' + t('consult.e2eeOn') : '⚠ ' + t('consult.e2eeOff')}
        </span>
        {codes.map((p) => (
          <span key={p.info.id} className="safety" title={t('consult.safetyHelp')}>
            {p.info.displayName} · {t('consult.safetyCode')}: <code data-testid="strip-safety-code">{p.safetyCode}</code>
          </span>
        ))}
        {state.lobby.length > 0 && (
          <button type="button" className="badge-button" onClick={() => setPane('video')} data-testid="strip-waiting">
            {t('consult.lobbyTitle')} ({state.lobby.length})
          </button>
        )}
        <span className="pane-switch" role="group" aria-label={t('clinic.call.tabs')}>
          <button type="button" aria-pressed={pane === 'video'} onClick={() => setPane('video')} data-testid="show-video">
            {t('clinic.call.videoTab')}
          </button>
          <button type="button" aria-pressed={pane === 'chart'} onClick={() => setPane('chart')} data-testid="show-chart">
            {t('clinic.call.chartTab')}
          </button>
        </span>
      </div>
      <div className="call-panes">
        <div className={`call-pane${pane === 'video' ? '' : ' pane-hidden'}`}>
          <CallScreen session={session} state={state} appointmentId={appointmentId} />
        </div>
        <aside className={`chart-pane${pane === 'chart' ? '' : ' pane-hidden'}`} aria-label={t('clinic.chart.title')} data-testid="call-chart">
          <ChartPane patient={patient} error={error} appointmentId={appointmentId} clinician={clinician} />
        </aside>
      </div>
    </div>
  );
}

/**
 * The chart beside the call. Memoised: the call's state changes several times a second (quality,
 * stats), and the chart has no reason to render again for that on a machine busy with video.
 */
const ChartPane = memo(function ChartPane({ patient, error, appointmentId, clinician }: { patient: Resource | null | undefined; error: string | undefined; appointmentId: string | undefined; clinician: Clinician }) {
  const { t } = useTranslation();
  return (
    <>
      <ErrorLine error={error} />
      {patient === undefined && !error && <Loading />}
      {patient === null && <p>{t('clinic.call.noPatient')}</p>}
      {patient && (
        <>
          <PatientHeader patient={patient} level="h2" />
          <Chart patientId={patient.id!} appointmentId={appointmentId} clinician={clinician} />
        </>
      )}
    </>
  );
});

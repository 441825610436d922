import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import { hasPasskey, passkeyAssertion } from '../auth/reauth-passkey.js';
import type { Clinician } from './ClinicApp.js';
import { Allergies, Documents, Medications, Problems, VitalSigns, ChartSection } from './ChartSections.js';
import { call, fhirGet, personName, type Resource } from './fhir.js';
import { SoapNote } from './SoapNote.js';
import { ErrorLine, errorText, formatDate, formatTime, Loading } from './ui.js';

/** The server's minimum (src/auth/access/care-relationships.ts BREAK_GLASS_MIN_REASON). */
const BREAK_GLASS_MIN_REASON = 10;

/** Who the patient is, at the top of every chart. */
export function PatientHeader({ patient, level }: { patient: Resource; level: 'h1' | 'h2' }) {
  const { t, i18n } = useTranslation();
  const Heading = level;
  const gender = typeof patient.gender === 'string' ? patient.gender : undefined;
  const identifiers = ((patient.identifier as { value?: string }[] | undefined) ?? []).map((i) => i.value).filter(Boolean);
  return (
    <header className="patient-header" data-testid="patient-header">
      <Heading>{personName(patient) || t('clinic.schedule.unknownPatient')}</Heading>
      <p className="row muted">
        {typeof patient.birthDate === 'string' && <span>{t('clinic.chart.born', { date: formatDate(patient.birthDate, i18n.language) })}</span>}
        {gender && <span>{t(`clinic.chart.gender.${gender}`, { defaultValue: gender })}</span>}
        {identifiers.length > 0 && (
          <span>
            {t('clinic.chart.identifiers')}: {identifiers.join(' · ')}
          </span>
        )}
      </p>
    </header>
  );
}

/** The chart's sections, the visit note first: used on the chart page and beside the video in a call. */
export function Chart({ patientId, appointmentId, clinician }: { patientId: string; appointmentId: string | undefined; clinician: Clinician }) {
  const { t } = useTranslation();
  return (
    <div className="chart stack" data-testid="chart">
      <ChartSection id="note" title={t('clinic.chart.note')}>
        <SoapNote patientId={patientId} appointmentId={appointmentId} clinician={clinician} />
      </ChartSection>
      <VitalSigns patientId={patientId} />
      <Problems patientId={patientId} clinician={clinician} />
      <Allergies patientId={patientId} clinician={clinician} />
      <Medications patientId={patientId} clinician={clinician} />
      <Documents patientId={patientId} />
    </div>
  );
}

/** /clinic/patients/<id>: the chart; for a patient outside the clinician's care, break-the-glass. */
export function ChartPage({ patientId, clinician }: { patientId: string; clinician: Clinician }) {
  const { t } = useTranslation();
  const [patient, setPatient] = useState<Resource>();
  const [closed, setClosed] = useState(false);
  const [error, setError] = useState<string>();
  const [round, setRound] = useState(0);

  useEffect(() => {
    let live = true;
    setError(undefined);
    setClosed(false);
    fhirGet(`Patient/${encodeURIComponent(patientId)}`).then(
      (p) => live && setPatient(p),
      (err: unknown) => {
        if (!live) return;
        // Outside the clinician's care a record reads as not found (no oracle): either way, break-the-glass is the way in.
        if (err instanceof ApiError && (err.status === 403 || err.status === 404)) setClosed(true);
        else setError(errorText(t, err));
      },
    );
    return () => {
      live = false;
    };
  }, [patientId, round, t]);

  if (closed) return <BreakGlass patientId={patientId} onOpened={() => setRound((n) => n + 1)} />;
  return (
    <main className="clinic-main stack" data-testid="chart-page">
      <ErrorLine error={error} />
      {!patient && !error && <Loading />}
      {patient && (
        <>
          <PatientHeader patient={patient} level="h1" />
          <Chart patientId={patientId} appointmentId={undefined} clinician={clinician} />
        </>
      )}
    </main>
  );
}

/**
 * Emergency access: the reason stated, the password and one second factor (a fresh code, a
 * recovery code or the passkey), then the record opens for a limited time.
 */
function BreakGlass({ patientId, onOpened }: { patientId: string; onOpened(): void }) {
  const { t, i18n } = useTranslation();
  const [reason, setReason] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [granted, setGranted] = useState<string>();
  const [withPasskey, setWithPasskey] = useState(false);

  // The passkey button is offered only to an account that has one.
  useEffect(() => {
    let live = true;
    hasPasskey().then((has) => live && setWithPasskey(has), () => undefined);
    return () => {
      live = false;
    };
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    await open(false);
  }

  async function open(usePasskey: boolean) {
    if (reason.trim().length < BREAK_GLASS_MIN_REASON) return setError(t('clinic.chart.breakGlass.tooShort', { min: BREAK_GLASS_MIN_REASON }));
    if (!password) return setError(t('clinic.chart.breakGlass.passwordFirst'));
    setBusy(true);
    setError(undefined);
    try {
      let proof: Record<string, unknown> = code.trim() ? { code: code.trim() } : {};
      if (usePasskey) {
        const passkey = await passkeyAssertion('break-glass');
        if (!passkey) return setError(t('clinic.chart.breakGlass.passkeyCancelled'));
        proof = { passkey };
      }
      const grant = await call<{ expires: string }>('POST', '/api/access/break-glass', { body: { patientId, reason: reason.trim(), password, ...proof }, contentType: 'application/json' });
      setGranted(grant.expires);
      setPassword('');
      setCode('');
      onOpened();
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      const why = err instanceof ApiError ? err.code : undefined;
      if (why === 'enrol-second-factor') setError(t('clinic.chart.breakGlass.enrolFirst'));
      else setError(status === 403 ? t('clinic.chart.breakGlass.refused') : status === 409 && why !== 'no-passkey' ? t('clinic.chart.breakGlass.alreadyInCare') : errorText(t, err));
      if (status === 409 && why !== 'no-passkey') onOpened();
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="clinic-main narrow stack" data-testid="break-glass">
      <h1>{t('clinic.chart.breakGlass.title')}</h1>
      <p role="alert">{t('clinic.chart.noAccess')}</p>
      <p>{t('clinic.chart.breakGlass.help')}</p>
      {granted && <p role="status">{t('clinic.chart.breakGlass.granted', { time: formatTime(granted, i18n.language) })}</p>}
      <form className="stack" onSubmit={(e) => void submit(e)}>
        <label>
          {t('clinic.chart.breakGlass.reason', { min: BREAK_GLASS_MIN_REASON })}
          <textarea rows={3} required minLength={BREAK_GLASS_MIN_REASON} maxLength={1000} value={reason} onChange={(e) => setReason(e.target.value)} data-testid="break-glass-reason" />
        </label>
        <label>
          {t('clinic.chart.breakGlass.password')}
          <input type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} data-testid="break-glass-password" />
        </label>
        <label>
          {t('clinic.chart.breakGlass.code')}
          <input type="text" autoComplete="one-time-code" spellCheck={false} value={code} onChange={(e) => setCode(e.target.value)} data-testid="break-glass-code" />
        </label>
        <button type="submit" className="danger" disabled={busy} data-testid="break-glass-submit">
          {t('clinic.chart.breakGlass.submit')}
        </button>
        {withPasskey && (
          <button type="button" className="danger" disabled={busy} onClick={() => void open(true)} data-testid="break-glass-passkey">
            {t('clinic.chart.breakGlass.passkey')}
          </button>
        )}
        <ErrorLine error={error} />
      </form>
    </main>
  );
}

import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api } from '../app/api.js';
import { navigate } from '../app/navigation.js';
import { useSignedInAccount, type Account } from '../auth/session.js';
import { ChartPage } from './ChartPage.js';
import { PatientSearch } from './PatientSearch.js';
import { ReceptionDesk } from './ReceptionDesk.js';
import { SchedulePage } from './SchedulePage.js';
import { StaffSecurityPage } from './StaffSecurityPage.js';
import { errorText, Link, Loading } from './ui.js';
import './clinic.css';
import { addAreaMessages } from '../i18n/i18n.js';
import { clinicEn, clinicEs } from './messages.js';

addAreaMessages('clinic', clinicEn, clinicEs);

/** The signed-in clinician, with the FHIR reference of their Practitioner record. */
export interface Clinician extends Account {
  fhirRef?: string | null;
}

const PATIENT_CHART = /^\/clinic\/patients\/([A-Za-z0-9\-.]{1,64})$/;

/**
 * The clinic workspace (/clinic/…): loaded only when staff go there. Clinicians get their schedule,
 * patients and charts; reception the whole clinic's schedule and the desk (book, register,
 * invite), never a chart; both their own security settings.
 */
export default function ClinicApp({ path }: { path: string }) {
  const { t } = useTranslation();
  const [error, setError] = useState<string>();
  const clinician = useSignedInAccount((err) => setError(errorText(t, err))) as Clinician | undefined;

  if (error) {
    return (
      <main className="narrow">
        <p role="alert" className="error">
          {error}
        </p>
      </main>
    );
  }
  if (!clinician) {
    return (
      <main className="narrow" aria-busy="true">
        <Loading />
      </main>
    );
  }
  const reception = clinician.role === 'reception';
  if (!reception && (clinician.role !== 'clinician' || !clinician.fhirRef)) {
    return (
      <main className="narrow stack">
        <h1>{t('clinic.title')}</h1>
        <p role="alert">{t('clinic.notClinician')}</p>
        <Link to="/">{t('clinic.goHome')}</Link>
      </main>
    );
  }

  const chart = reception ? null : PATIENT_CHART.exec(path);
  let page;
  let here: 'schedule' | 'patients' | 'book' | 'security' = 'schedule';
  if (path === '/clinic/security') {
    page = <StaffSecurityPage />;
    here = 'security';
  } else if (reception && path === '/clinic/book') {
    page = <ReceptionDesk />;
    here = 'book';
  } else if (chart) {
    page = <ChartPage patientId={chart[1]!} clinician={clinician} />;
    here = 'patients';
  } else if (!reception && path === '/clinic/patients') {
    page = <PatientSearch />;
    here = 'patients';
  } else page = <SchedulePage clinician={clinician} />;
  return (
    <div className="clinic">
      <nav aria-label={t('clinic.nav.label')} className="clinic-nav">
        <Link to="/clinic" current={here === 'schedule'} testId="nav-schedule">
          {t('clinic.nav.schedule')}
        </Link>
        {reception ? (
          <Link to="/clinic/book" current={here === 'book'} testId="nav-book">
            {t('clinic.nav.book')}
          </Link>
        ) : (
          <Link to="/clinic/patients" current={here === 'patients'} testId="nav-patients">
            {t('clinic.nav.patients')}
          </Link>
        )}
        <Link to="/clinic/security" current={here === 'security'} testId="nav-security">
          {t('clinic.nav.security')}
        </Link>
        <span className="clinic-who">{clinician.name ?? clinician.email}</span>
        <button
          type="button"
          onClick={() =>
            void api('POST', '/api/auth/sign-out')
              .catch(() => undefined)
              .then(() => navigate('/sign-in', true))
          }
        >
          {t('clinic.nav.signOut')}
        </button>
      </nav>
      {page}
    </div>
  );
}

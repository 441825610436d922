import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { navigate } from '../app/navigation.js';
import { personName, search, type Resource } from './fhir.js';
import { ErrorLine, errorText, formatDate, Link, Loading } from './ui.js';

const RECORD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** /clinic/patients: search by name, date of birth and identifier; the chart is one click away. */
export function PatientSearch() {
  const { t, i18n } = useTranslation();
  const [name, setName] = useState('');
  const [birthdate, setBirthdate] = useState('');
  const [identifier, setIdentifier] = useState('');
  const [results, setResults] = useState<Resource[]>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [recordId, setRecordId] = useState('');
  const [recordError, setRecordError] = useState<string>();

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    const params = new URLSearchParams();
    if (name.trim()) params.set('name', name.trim());
    if (birthdate) params.set('birthdate', birthdate);
    if (identifier.trim()) params.set('identifier', identifier.trim());
    if ([...params.keys()].length === 0) return setError(t('clinic.patients.needOne'));
    params.set('_count', '50');
    params.set('_sort', 'name');
    setBusy(true);
    try {
      setResults((await search(`Patient?${params.toString()}`)).matches);
    } catch (err) {
      // _sort by name is a string parameter; should a server refuse it, ask again without.
      try {
        params.delete('_sort');
        setResults((await search(`Patient?${params.toString()}`)).matches);
      } catch {
        setError(errorText(t, err));
      }
    } finally {
      setBusy(false);
    }
  }

  function openRecord(event: FormEvent) {
    event.preventDefault();
    const id = recordId.trim();
    if (!RECORD_ID.test(id)) return setRecordError(t('clinic.patients.badRecordId'));
    navigate(`/clinic/patients/${id.toLowerCase()}`);
  }

  return (
    <main className="clinic-main stack">
      <h1>{t('clinic.patients.title')}</h1>
      <section className="panel stack" aria-labelledby="patient-search-title">
        <h2 id="patient-search-title">{t('clinic.patients.searchTitle')}</h2>
        <form className="stack" onSubmit={(e) => void submit(e)} role="search" data-testid="patient-search">
          <div className="fields">
            <label>
              {t('clinic.patients.name')}
              <input type="search" autoComplete="off" value={name} onChange={(e) => setName(e.target.value)} data-testid="search-name" />
            </label>
            <label>
              {t('clinic.patients.birthdate')}
              <input type="date" value={birthdate} onChange={(e) => setBirthdate(e.target.value)} data-testid="search-birthdate" />
            </label>
            <label>
              {t('clinic.patients.identifier')}
              <input type="text" autoComplete="off" value={identifier} onChange={(e) => setIdentifier(e.target.value)} data-testid="search-identifier" />
            </label>
          </div>
          <button type="submit" className="primary" disabled={busy} data-testid="search-submit">
            {t('clinic.patients.search')}
          </button>
        </form>
        <ErrorLine error={error} />
        {busy && <Loading />}
        {results && (
          <div aria-live="polite">
            {results.length === 0 ? (
              <p data-testid="no-results">{t('clinic.patients.none')}</p>
            ) : (
              <>
                <p>{t('clinic.patients.results', { count: results.length })}</p>
                <ul className="result-list" data-testid="search-results">
                  {results.map((patient) => (
                    <li key={patient.id}>
                      <Link to={`/clinic/patients/${patient.id}`} testId="search-result">
                        {personName(patient) || patient.id}
                      </Link>{' '}
                      {typeof patient.birthDate === 'string' && <span className="muted">{t('clinic.patients.born', { date: formatDate(patient.birthDate, i18n.language) })}</span>}{' '}
                      <span className="muted">{((patient.identifier as { value?: string }[] | undefined) ?? []).map((i) => i.value).filter(Boolean).join(' · ')}</span>
                    </li>
                  ))}
                </ul>
              </>
            )}
          </div>
        )}
      </section>
      <section className="panel stack" aria-labelledby="emergency-title">
        <h2 id="emergency-title">{t('clinic.patients.emergencyTitle')}</h2>
        <p>{t('clinic.patients.emergencyHelp')}</p>
        <form className="row" onSubmit={openRecord}>
          <label className="grow">
            {t('clinic.patients.recordId')}
            <input type="text" autoComplete="off" spellCheck={false} value={recordId} onChange={(e) => { setRecordId(e.target.value); setRecordError(undefined); }} data-testid="record-id" />
          </label>
          <button type="submit" data-testid="open-record">
            {t('clinic.patients.open')}
          </button>
        </form>
        <ErrorLine error={recordError} />
      </section>
    </main>
  );
}

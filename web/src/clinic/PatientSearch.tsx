import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { navigate } from '../app/navigation.js';
import { ApiError } from '../app/api.js';
import { call, personName, search, type Resource } from './fhir.js';
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
      // _sort by name is a string parameter; should a server refuse it (400), ask again without.
      if (!(err instanceof ApiError) || err.status !== 400) {
        setError(errorText(t, err));
        return;
      }
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
      <EmergencyLookup />
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

interface EmergencyMatch {
  id: string;
  name: string;
  birthDate?: string;
  identifiers: { kind: 'mrn' | 'national-id' | 'other'; last: string }[];
}

/**
 * The emergency lookup (POST /api/access/emergency-lookup): a patient outside the clinician's
 * care, found only by exact criteria, shown only as who they are, and opened through the
 * chart's break-the-glass step (reason and re-authentication). The normal search above stays
 * limited to patients in care.
 */
function EmergencyLookup() {
  const { t, i18n } = useTranslation();
  const [identifier, setIdentifier] = useState('');
  const [family, setFamily] = useState('');
  const [birthDate, setBirthDate] = useState('');
  const [answer, setAnswer] = useState<{ matches: EmergencyMatch[]; tooMany: boolean }>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(undefined);
    setAnswer(undefined);
    const byIdentifier = identifier.trim() !== '';
    const byName = family.trim() !== '' || birthDate !== '';
    if (byIdentifier && byName) return setError(t('clinic.patients.lookup.notBoth'));
    if (!byIdentifier && !(family.trim() && birthDate)) return setError(t('clinic.patients.lookup.needCriteria'));
    setBusy(true);
    try {
      const body = byIdentifier ? { identifier: identifier.trim() } : { family: family.trim(), birthDate };
      setAnswer(await call<{ matches: EmergencyMatch[]; tooMany: boolean }>('POST', '/api/access/emergency-lookup', { body, contentType: 'application/json' }));
    } catch (err) {
      // The emergency lookups' own hourly budget, told apart from the general rate limits (errorText says those).
      setError(err instanceof ApiError && err.status === 429 && err.code !== 'rate-limited' ? t('clinic.patients.lookup.throttled') : errorText(t, err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="panel stack" aria-labelledby="emergency-lookup-title" data-testid="emergency-lookup">
      <h2 id="emergency-lookup-title">{t('clinic.patients.lookup.title')}</h2>
      <p>{t('clinic.patients.lookup.help')}</p>
      <form className="stack" onSubmit={(e) => void submit(e)}>
        <label>
          {t('clinic.patients.lookup.identifier')}
          <input type="text" autoComplete="off" spellCheck={false} value={identifier} onChange={(e) => setIdentifier(e.target.value)} data-testid="lookup-identifier" />
        </label>
        <p className="muted">{t('clinic.patients.lookup.or')}</p>
        <div className="fields">
          <label>
            {t('clinic.patients.lookup.family')}
            <input type="text" autoComplete="off" spellCheck={false} value={family} onChange={(e) => setFamily(e.target.value)} data-testid="lookup-family" />
          </label>
          <label>
            {t('clinic.patients.lookup.birthdate')}
            <input type="date" value={birthDate} onChange={(e) => setBirthDate(e.target.value)} data-testid="lookup-birthdate" />
          </label>
        </div>
        <button type="submit" disabled={busy} data-testid="lookup-submit">
          {t('clinic.patients.lookup.submit')}
        </button>
      </form>
      <ErrorLine error={error} testId="lookup-error" />
      {busy && <Loading />}
      {answer && (
        <div aria-live="polite">
          {answer.tooMany ? (
            <p data-testid="lookup-too-many">{t('clinic.patients.lookup.tooMany')}</p>
          ) : answer.matches.length === 0 ? (
            <p data-testid="lookup-none">{t('clinic.patients.lookup.none')}</p>
          ) : (
            <>
              <p>{t('clinic.patients.lookup.results', { count: answer.matches.length })}</p>
              <ul className="result-list" data-testid="lookup-results">
                {answer.matches.map((m) => (
                  <li key={m.id} data-testid="lookup-match">
                    <strong>{m.name}</strong>{' '}
                    <span className="muted">{m.birthDate ? t('clinic.patients.lookup.born', { date: formatDate(m.birthDate, i18n.language) }) : t('clinic.patients.lookup.noBirthDate')}</span>{' '}
                    <span className="muted">{m.identifiers.map((i) => t(`clinic.patients.lookup.identifierEnding.${i.kind}`, { last: i.last })).join(' · ')}</span>{' '}
                    <Link to={`/clinic/patients/${m.id}`} className="danger" testId="lookup-open">
                      {t('clinic.patients.lookup.open')}
                    </Link>
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
      )}
    </section>
  );
}

import { useCallback, useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import type { Clinician } from './ClinicApp.js';
import { call, conceptText, fhirCreate, fhirUpdate, search, type Resource } from './fhir.js';
import { ErrorLine, errorText, formatDate, formatDateTime, formatNumber } from './ui.js';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const HL7 = 'http://terminology.hl7.org/CodeSystem';

/** A list of the patient's resources of one kind, reloaded after each change. */
function useList<T extends Resource>(query: string): { items: T[] | undefined; error: string | undefined; reload(): void; add(item: T): void } {
  const { t } = useTranslation();
  const [items, setItems] = useState<T[]>();
  const [error, setError] = useState<string>();
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    search<T>(query).then(
      ({ matches }) => live && setItems(matches),
      (err: unknown) => live && setError(errorText(t, err)),
    );
    return () => {
      live = false;
    };
  }, [query, round, t]);
  return { items, error, reload: () => setRound((n) => n + 1), add: (item) => setItems((list) => [item, ...(list ?? [])]) };
}

/** The form's submit: busy while it runs, a plain-words error when refused. */
function useSubmit(): { busy: boolean; error: string | undefined; setError(e: string | undefined): void; run(work: () => Promise<void>): Promise<void> } {
  const { t } = useTranslation();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = useCallback(
    async (work: () => Promise<void>) => {
      setBusy(true);
      setError(undefined);
      try {
        await work();
      } catch (err) {
        setError(errorText(t, err));
      } finally {
        setBusy(false);
      }
    },
    [t],
  );
  return { busy, error, setError, run };
}

export function ChartSection({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <section className="chart-section panel stack" aria-labelledby={`${id}-title`} data-testid={`chart-${id}`}>
      <h2 id={`${id}-title`}>{title}</h2>
      {children}
    </section>
  );
}

// ---- vital signs ----

interface VitalDef {
  key: 'heartRate' | 'temperature' | 'saturation' | 'weight' | 'respiratoryRate';
  code: string;
  display: string;
  unit: string;
  ucum: string;
  min: number;
  max: number;
  step: string;
}

const VITALS: VitalDef[] = [
  { key: 'heartRate', code: '8867-4', display: 'Heart rate', unit: '/min', ucum: '/min', min: 0, max: 600, step: '1' },
  { key: 'respiratoryRate', code: '9279-1', display: 'Respiratory rate', unit: '/min', ucum: '/min', min: 0, max: 200, step: '1' },
  { key: 'temperature', code: '8310-5', display: 'Body temperature', unit: '°C', ucum: 'Cel', min: 10, max: 47, step: '0.1' },
  { key: 'saturation', code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry', unit: '%', ucum: '%', min: 0, max: 100, step: '1' },
  { key: 'weight', code: '29463-7', display: 'Body weight', unit: 'kg', ucum: 'kg', min: 0.1, max: 700, step: '0.1' },
];

interface Observation extends Resource {
  code?: { coding?: { system?: string; code?: string }[] };
  effectiveDateTime?: string;
  valueQuantity?: { value?: number; unit?: string };
  component?: { code?: { coding?: { code?: string }[] }; valueQuantity?: { value?: number } }[];
  status?: string;
}

const vitalCategory = [{ coding: [{ system: `${HL7}/observation-category`, code: 'vital-signs', display: 'Vital Signs' }] }];

export function VitalSigns({ patientId }: { patientId: string }) {
  const { t, i18n } = useTranslation();
  const list = useList<Observation>(`Observation?patient=${encodeURIComponent(patientId)}&category=vital-signs&_sort=-date&_count=30`);
  const [values, setValues] = useState<Record<string, string>>({});
  const submit = useSubmit();

  async function save(event: FormEvent) {
    event.preventDefault();
    const filled = (key: string) => (values[key] ?? '').trim() !== '';
    if (filled('systolic') !== filled('diastolic')) return submit.setError(t('clinic.vitals.needBoth'));
    if (!['systolic', ...VITALS.map((v) => v.key)].some(filled)) return submit.setError(t('clinic.vitals.needOne'));
    await submit.run(async () => {
      const now = new Date().toISOString();
      const base = { resourceType: 'Observation', status: 'final', category: vitalCategory, subject: { reference: `Patient/${patientId}` }, effectiveDateTime: now };
      if (filled('systolic')) {
        const mmHg = (v: string) => ({ value: Number(v), unit: 'mmHg', system: UCUM, code: 'mm[Hg]' });
        await fhirCreate<Observation>({
            ...base,
            code: { coding: [{ system: LOINC, code: '85354-9', display: 'Blood pressure panel with all children optional' }] },
            component: [
              { code: { coding: [{ system: LOINC, code: '8480-6', display: 'Systolic blood pressure' }] }, valueQuantity: mmHg(values.systolic!) },
              { code: { coding: [{ system: LOINC, code: '8462-4', display: 'Diastolic blood pressure' }] }, valueQuantity: mmHg(values.diastolic!) },
            ],
        });
      }
      for (const v of VITALS.filter((d) => filled(d.key))) {
        await fhirCreate<Observation>({ ...base, code: { coding: [{ system: LOINC, code: v.code, display: v.display }] }, valueQuantity: { value: Number(values[v.key]), unit: v.unit, system: UCUM, code: v.ucum } });
      }
      setValues({});
      list.reload();
    });
  }

  const field = (key: string, label: string, min: number, max: number, step: string) => (
    <label key={key}>
      {label}
      <input type="number" inputMode="decimal" min={min} max={max} step={step} value={values[key] ?? ''} onChange={(e) => setValues({ ...values, [key]: e.target.value })} data-testid={`vital-${key}`} />
    </label>
  );

  const describe = (o: Observation): { name: string; value: string } => {
    const code = o.code?.coding?.find((c) => c.system === LOINC)?.code ?? '';
    const name = t(`clinic.vitals.names.${code}`, { defaultValue: conceptText(o.code) });
    if (code === '85354-9') {
      const part = (c: string) => o.component?.find((x) => x.code?.coding?.some((y) => y.code === c))?.valueQuantity?.value;
      const sys = part('8480-6');
      const dia = part('8462-4');
      return { name, value: `${sys !== undefined ? formatNumber(sys, i18n.language) : '–'}/${dia !== undefined ? formatNumber(dia, i18n.language) : '–'} mmHg` };
    }
    const q = o.valueQuantity;
    return { name, value: q?.value !== undefined ? `${formatNumber(q.value, i18n.language)} ${q.unit ?? ''}` : '' };
  };

  return (
    <ChartSection id="vitals" title={t('clinic.chart.vitals')}>
      <ErrorLine error={list.error} />
      {list.items?.length === 0 && <p>{t('clinic.chart.none')}</p>}
      {list.items && list.items.length > 0 && (
        <table className="compact" data-testid="vitals-table">
          <tbody>
            {list.items
              .filter((o) => o.status !== 'entered-in-error')
              .map((o) => {
                const d = describe(o);
                return (
                  <tr key={o.id}>
                    <th scope="row">{d.name}</th>
                    <td>{d.value}</td>
                    <td className="muted">{formatDateTime(o.effectiveDateTime, i18n.language)}</td>
                  </tr>
                );
              })}
          </tbody>
        </table>
      )}
      <form className="stack" onSubmit={(e) => void save(e)} data-testid="vitals-form">
        <fieldset className="fields">
          <legend>{t('clinic.vitals.bloodPressure')}</legend>
          {field('systolic', t('clinic.vitals.systolic'), 20, 500, '1')}
          {field('diastolic', t('clinic.vitals.diastolic'), 0, 400, '1')}
        </fieldset>
        <div className="fields">{VITALS.map((v) => field(v.key, t(`clinic.vitals.${v.key}`), v.min, v.max, v.step))}</div>
        <button type="submit" disabled={submit.busy} data-testid="save-vitals">
          {submit.busy ? t('clinic.chart.saving') : t('clinic.vitals.save')}
        </button>
        <ErrorLine error={submit.error} />
      </form>
    </ChartSection>
  );
}

// ---- problems ----

interface Condition extends Resource {
  code?: unknown;
  clinicalStatus?: { coding?: { code?: string }[] };
  onsetDateTime?: string;
  recordedDate?: string;
}

export function Problems({ patientId, clinician }: { patientId: string; clinician: Clinician }) {
  const { t, i18n } = useTranslation();
  const list = useList<Condition>(`Condition?patient=${encodeURIComponent(patientId)}&_count=100`);
  const [text, setText] = useState('');
  const [onset, setOnset] = useState('');
  const submit = useSubmit();
  const statusOf = (c: Condition) => c.clinicalStatus?.coding?.[0]?.code ?? 'active';

  async function add(event: FormEvent) {
    event.preventDefault();
    if (!text.trim()) return;
    await submit.run(async () => {
      const made = await fhirCreate<Condition>({
        resourceType: 'Condition',
        clinicalStatus: { coding: [{ system: `${HL7}/condition-clinical`, code: 'active' }] },
        verificationStatus: { coding: [{ system: `${HL7}/condition-ver-status`, code: 'confirmed' }] },
        category: [{ coding: [{ system: `${HL7}/condition-category`, code: 'problem-list-item', display: 'Problem List Item' }] }],
        code: { text: text.trim() },
        subject: { reference: `Patient/${patientId}` },
        ...(onset ? { onsetDateTime: onset } : {}),
        recordedDate: new Date().toISOString(),
        recorder: { reference: clinician.fhirRef! },
      });
      list.add(made);
      setText('');
      setOnset('');
    });
  }

  async function resolve(condition: Condition) {
    await submit.run(async () => {
      await fhirUpdate({ ...condition, clinicalStatus: { coding: [{ system: `${HL7}/condition-clinical`, code: 'resolved' }] }, abatementDateTime: new Date().toISOString() });
      list.reload();
    });
  }

  return (
    <ChartSection id="problems" title={t('clinic.chart.problems')}>
      <ErrorLine error={list.error} />
      {list.items?.length === 0 && <p>{t('clinic.chart.none')}</p>}
      <ul className="chart-list" data-testid="problem-list">
        {(list.items ?? []).map((c) => (
          <li key={c.id} className="row">
            <span className="grow">
              <strong>{conceptText(c.code)}</strong> · <span className={statusOf(c) === 'active' ? '' : 'muted'}>{t(`clinic.problems.${statusOf(c) === 'active' ? 'active' : 'resolved'}`)}</span>
              {c.onsetDateTime && <span className="muted"> · {formatDate(c.onsetDateTime, i18n.language)}</span>}
            </span>
            {statusOf(c) === 'active' && (
              <button type="button" className="small" onClick={() => void resolve(c)} aria-label={t('clinic.problems.resolve', { name: conceptText(c.code) })}>
                ✓
              </button>
            )}
          </li>
        ))}
      </ul>
      <form className="fields" onSubmit={(e) => void add(e)} data-testid="problem-form">
        <label>
          {t('clinic.problems.text')}
          <input type="text" required maxLength={300} value={text} onChange={(e) => setText(e.target.value)} data-testid="problem-text" />
        </label>
        <label>
          {t('clinic.problems.onset')}
          <input type="date" value={onset} onChange={(e) => setOnset(e.target.value)} />
        </label>
        <button type="submit" disabled={submit.busy} data-testid="add-problem">
          {t('clinic.problems.save')}
        </button>
      </form>
      <ErrorLine error={submit.error} />
    </ChartSection>
  );
}

// ---- allergies ----

interface Allergy extends Resource {
  code?: unknown;
  criticality?: string;
  reaction?: { manifestation?: unknown[] }[];
  recordedDate?: string;
}

export function Allergies({ patientId, clinician }: { patientId: string; clinician: Clinician }) {
  const { t } = useTranslation();
  const list = useList<Allergy>(`AllergyIntolerance?patient=${encodeURIComponent(patientId)}&_count=100`);
  const [substance, setSubstance] = useState('');
  const [reaction, setReaction] = useState('');
  const [criticality, setCriticality] = useState('low');
  const submit = useSubmit();

  async function add(event: FormEvent) {
    event.preventDefault();
    if (!substance.trim()) return;
    await submit.run(async () => {
      const made = await fhirCreate<Allergy>({
        resourceType: 'AllergyIntolerance',
        clinicalStatus: { coding: [{ system: `${HL7}/allergyintolerance-clinical`, code: 'active' }] },
        verificationStatus: { coding: [{ system: `${HL7}/allergyintolerance-verification`, code: 'confirmed' }] },
        criticality,
        code: { text: substance.trim() },
        patient: { reference: `Patient/${patientId}` },
        recordedDate: new Date().toISOString(),
        recorder: { reference: clinician.fhirRef! },
        ...(reaction.trim() ? { reaction: [{ manifestation: [{ text: reaction.trim() }] }] } : {}),
      });
      list.add(made);
      setSubstance('');
      setReaction('');
    });
  }

  return (
    <ChartSection id="allergies" title={t('clinic.chart.allergies')}>
      <ErrorLine error={list.error} />
      {list.items?.length === 0 && <p>{t('clinic.chart.none')}</p>}
      <ul className="chart-list" data-testid="allergy-list">
        {(list.items ?? []).map((a) => (
          <li key={a.id}>
            <strong className={a.criticality === 'high' ? 'bad' : undefined}>{conceptText(a.code)}</strong>
            {a.criticality && <span className="muted"> · {t(`clinic.allergies.criticalityValue.${a.criticality}`, { defaultValue: a.criticality })}</span>}
            {a.reaction?.[0]?.manifestation?.[0] !== undefined && <span className="muted"> · {conceptText(a.reaction[0].manifestation[0])}</span>}
          </li>
        ))}
      </ul>
      <form className="fields" onSubmit={(e) => void add(e)} data-testid="allergy-form">
        <label>
          {t('clinic.allergies.substance')}
          <input type="text" required maxLength={200} value={substance} onChange={(e) => setSubstance(e.target.value)} data-testid="allergy-substance" />
        </label>
        <label>
          {t('clinic.allergies.reaction')}
          <input type="text" maxLength={200} value={reaction} onChange={(e) => setReaction(e.target.value)} />
        </label>
        <label>
          {t('clinic.allergies.criticality')}
          <select value={criticality} onChange={(e) => setCriticality(e.target.value)}>
            {(['low', 'high', 'unable-to-assess'] as const).map((c) => (
              <option key={c} value={c}>
                {t(`clinic.allergies.criticalityValue.${c}`)}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={submit.busy} data-testid="add-allergy">
          {t('clinic.allergies.save')}
        </button>
      </form>
      <ErrorLine error={submit.error} />
    </ChartSection>
  );
}

// ---- medications and prescriptions ----

interface Medication extends Resource {
  status?: string;
  medicationCodeableConcept?: unknown;
  dosage?: { text?: string }[];
  dosageInstruction?: { text?: string }[];
  authoredOn?: string;
}

export function Medications({ patientId, clinician }: { patientId: string; clinician: Clinician }) {
  const { t, i18n } = useTranslation();
  const statements = useList<Medication>(`MedicationStatement?patient=${encodeURIComponent(patientId)}&_count=100`);
  const requests = useList<Medication>(`MedicationRequest?patient=${encodeURIComponent(patientId)}&_sort=-authoredon&_count=100`);
  const [medication, setMedication] = useState('');
  const [dosage, setDosage] = useState('');
  const submit = useSubmit();

  async function prescribe(event: FormEvent) {
    event.preventDefault();
    if (!medication.trim() || !dosage.trim()) return;
    await submit.run(async () => {
      const made = await fhirCreate<Medication>({
        resourceType: 'MedicationRequest',
        status: 'active',
        intent: 'order',
        medicationCodeableConcept: { text: medication.trim() },
        subject: { reference: `Patient/${patientId}` },
        authoredOn: new Date().toISOString(),
        requester: { reference: clinician.fhirRef! },
        dosageInstruction: [{ text: dosage.trim() }],
      });
      requests.add(made);
      setMedication('');
      setDosage('');
    });
  }

  const status = (m: Medication) => t(`clinic.medications.status.${m.status ?? 'unknown'}`, { defaultValue: m.status ?? '' });
  return (
    <ChartSection id="medications" title={t('clinic.chart.medications')}>
      <ErrorLine error={statements.error ?? requests.error} />
      {statements.items?.length === 0 && requests.items?.length === 0 && <p>{t('clinic.chart.none')}</p>}
      <ul className="chart-list" data-testid="medication-list">
        {(statements.items ?? []).map((m) => (
          <li key={m.id}>
            <strong>{conceptText(m.medicationCodeableConcept)}</strong> · {t('clinic.medications.taking')} ({status(m)}){m.dosage?.[0]?.text && <span className="muted"> · {m.dosage[0].text}</span>}
          </li>
        ))}
        {(requests.items ?? []).map((m) => (
          <li key={m.id} data-testid="prescription">
            <strong>{conceptText(m.medicationCodeableConcept)}</strong> · {t('clinic.medications.prescribed')} ({status(m)}){m.dosageInstruction?.[0]?.text && <span className="muted"> · {m.dosageInstruction[0].text}</span>}
            {m.authoredOn && <span className="muted"> · {t('clinic.medications.prescribedBy', { date: formatDate(m.authoredOn, i18n.language) })}</span>}
          </li>
        ))}
      </ul>
      <form className="fields" onSubmit={(e) => void prescribe(e)} data-testid="prescription-form">
        <label>
          {t('clinic.medications.medication')}
          <input type="text" required maxLength={200} value={medication} onChange={(e) => setMedication(e.target.value)} data-testid="prescription-medication" />
        </label>
        <label>
          {t('clinic.medications.dosage')}
          <input type="text" required maxLength={500} value={dosage} onChange={(e) => setDosage(e.target.value)} data-testid="prescription-dosage" />
        </label>
        <button type="submit" disabled={submit.busy} data-testid="prescribe">
          {t('clinic.medications.prescribe')}
        </button>
      </form>
      <ErrorLine error={submit.error} />
    </ChartSection>
  );
}

// ---- documents ----

interface DocumentReference extends Resource {
  description?: string;
  date?: string;
  content?: { attachment?: { title?: string; contentType?: string; url?: string } }[];
}

const ACCEPTED = 'application/pdf,image/png,image/jpeg,text/plain';

export function Documents({ patientId }: { patientId: string }) {
  const { t, i18n } = useTranslation();
  const list = useList<DocumentReference>(`DocumentReference?patient=${encodeURIComponent(patientId)}&_count=100`);
  const [file, setFile] = useState<File>();
  const [title, setTitle] = useState('');
  const [done, setDone] = useState(false);
  const [inputKey, setInputKey] = useState(0);
  const submit = useSubmit();

  async function upload(event: FormEvent) {
    event.preventDefault();
    setDone(false);
    if (!file || !title.trim()) return submit.setError(t('clinic.documents.needFile'));
    if (!ACCEPTED.split(',').includes(file.type)) return submit.setError(t('clinic.documents.badType'));
    await submit.run(async () => {
      try {
        const made = await call<DocumentReference>('POST', `/api/documents?patient=${encodeURIComponent(patientId)}&title=${encodeURIComponent(title.trim())}&category=clinical-note`, { raw: file, contentType: file.type });
        list.add(made);
        setFile(undefined);
        setTitle('');
        setInputKey((k) => k + 1);
        setDone(true);
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status === 413) throw Object.assign(new Error('too big'), { plain: t('clinic.documents.tooBig') });
        if (status === 415) throw Object.assign(new Error('type'), { plain: t('clinic.documents.badType') });
        throw err;
      }
    });
  }

  return (
    <ChartSection id="documents" title={t('clinic.chart.documents')}>
      <ErrorLine error={list.error} />
      {list.items?.length === 0 && <p>{t('clinic.chart.none')}</p>}
      <ul className="chart-list" data-testid="document-list">
        {(list.items ?? []).map((d) => {
          const title = d.description ?? d.content?.[0]?.attachment?.title ?? d.id ?? '';
          return (
            <li key={d.id}>
              <a href={`/api/documents/${d.id}/content`} download aria-label={t('clinic.documents.download', { title })}>
                {title}
              </a>{' '}
              <span className="muted">{formatDate(d.date, i18n.language)}</span>
            </li>
          );
        })}
      </ul>
      <form className="fields" onSubmit={(e) => void upload(e)} data-testid="document-form">
        <label>
          {t('clinic.documents.file')}
          <input key={inputKey} type="file" accept={ACCEPTED} onChange={(e) => setFile(e.target.files?.[0])} data-testid="document-file" />
        </label>
        <label>
          {t('clinic.documents.title')}
          <input type="text" maxLength={200} value={title} onChange={(e) => setTitle(e.target.value)} data-testid="document-title" />
        </label>
        <button type="submit" disabled={submit.busy} data-testid="upload-document">
          {submit.busy ? t('clinic.documents.uploading') : t('clinic.documents.upload')}
        </button>
      </form>
      {done && <p role="status">{t('clinic.documents.uploaded')}</p>}
      <ErrorLine error={submit.error} />
    </ChartSection>
  );
}

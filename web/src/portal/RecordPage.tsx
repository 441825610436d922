import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { explain } from './explain.js';
import { formatDateTime, formatShortDate } from './format.js';
import { call, conceptText, download, fhirSearch, humanName, type CodeableConcept, type Reference, type Resource } from './portal-api.js';
import { VitalsChart, type VitalSeries } from './VitalsChart.js';

interface Composition extends Resource {
  status: string;
  title?: string;
  date?: string;
  author?: Reference[];
  section?: { title?: string; text?: { div?: string } }[];
}
interface Observation extends Resource {
  code?: CodeableConcept;
  effectiveDateTime?: string;
  effectiveInstant?: string;
  effectivePeriod?: { start?: string };
  valueQuantity?: { value?: number; unit?: string };
  component?: { code?: CodeableConcept; valueQuantity?: { value?: number; unit?: string } }[];
}
interface DocumentReference extends Resource {
  description?: string;
  date?: string;
  type?: CodeableConcept;
  content?: { attachment?: { url?: string; title?: string; contentType?: string } }[];
}
interface Access {
  when: string;
  action: string;
  resource?: string;
  outcome: string;
  /** `display` is a person's or app's own name; without one, `kind` is worded here in the reader's language. */
  who: { role: string; kind?: ActorKind; display?: string };
  /** The app the access went through, when an app acted for someone. */
  through?: { client: string; name?: string };
}

/** The sorts of actor the server names by code (src/audit/record-access-routes.ts). */
type ActorKind = 'self' | 'staff' | 'integration' | 'installation-token' | 'system' | 'unknown';

/** Who did it: their own name, else their kind in the reader's language (a server without `kind` only left integrations unnamed). */
function actorName(t: (key: string) => string, who: Access['who']): string {
  return who.display ?? t(`portal.access.kinds.${who.kind ?? 'integration'}`);
}

interface PatientRecord {
  notes: Composition[];
  authors: Map<string, string>;
  problems: Resource[];
  allergies: Resource[];
  medications: Resource[];
  vitals: VitalSeries[];
  documents: DocumentReference[];
}

/** A note's XHTML narrative as plain text: never put into the page as markup. */
function narrativeText(div: string | undefined): string {
  if (!div) return '';
  return new DOMParser().parseFromString(div, 'text/html').body.textContent?.trim() ?? '';
}

/** Every vital sign (and each component of a panel such as blood pressure) as one series per code. */
function vitalSeries(observations: Observation[]): VitalSeries[] {
  const series = new Map<string, VitalSeries>();
  const add = (code: CodeableConcept | undefined, quantity: { value?: number; unit?: string } | undefined, when: string | undefined) => {
    if (typeof quantity?.value !== 'number' || !when) return;
    const key = code?.coding?.[0]?.code ?? conceptText(code);
    if (!key) return;
    const entry = series.get(key) ?? { key, label: conceptText(code), unit: quantity.unit ?? '', points: [] };
    entry.points.push({ when, value: quantity.value });
    series.set(key, entry);
  };
  for (const o of observations) {
    const when = o.effectiveDateTime ?? o.effectiveInstant ?? o.effectivePeriod?.start;
    add(o.code, o.valueQuantity, when);
    for (const c of o.component ?? []) add(c.code, c.valueQuantity, when);
  }
  return [...series.values()];
}

async function loadRecord(patientRef: string): Promise<PatientRecord> {
  const p = encodeURIComponent(patientRef);
  const [notes, problems, allergies, statements, requests, vitals, documents] = await Promise.all([
    fhirSearch<Composition>(`Composition?patient=${p}&status=final,amended&_include=Composition:author&_sort=-date&_count=50`),
    fhirSearch(`Condition?patient=${p}&_count=100`),
    fhirSearch(`AllergyIntolerance?patient=${p}&_count=100`),
    fhirSearch(`MedicationStatement?patient=${p}&_count=100`),
    fhirSearch(`MedicationRequest?patient=${p}&status=active&_count=100`),
    fhirSearch<Observation>(`Observation?patient=${p}&category=vital-signs&_sort=date&_count=500`),
    fhirSearch<DocumentReference>(`DocumentReference?patient=${p}&status=current&_count=100`),
  ]);
  const authors = new Map<string, string>();
  for (const [ref, r] of notes.included) authors.set(ref, humanName(r.name));
  return {
    notes: notes.matches,
    authors,
    problems: problems.matches,
    allergies: allergies.matches,
    medications: [...requests.matches, ...statements.matches],
    vitals: vitalSeries(vitals.matches),
    documents: documents.matches,
  };
}

/** /portal/record: visit summaries, problems, allergies, medications, vitals, documents, and who looked. */
export function RecordPage({ patientRef }: { patientRef: string }) {
  const { t } = useTranslation();
  const [record, setRecord] = useState<PatientRecord>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    loadRecord(patientRef).then(setRecord, (err: unknown) => setError(explain(t, err)));
  }, [patientRef, t]);

  return (
    <div className="stack" data-testid="record-page">
      <h1>{t('portal.record.title')}</h1>
      {error && <p role="alert" className="error">{error}</p>}
      {!record && !error && <p aria-busy="true">{t('portal.loading')}</p>}
      {record && (
        <>
          <section aria-labelledby="notes-title" className="stack">
            <h2 id="notes-title">{t('portal.record.notes')}</h2>
            {record.notes.length === 0 && <p>{t('portal.record.noNotes')}</p>}
            {record.notes.map((note) => (
              <details key={note.id} className="card" data-testid="visit-summary">
                <summary>
                  {formatShortDate(note.date)} · {note.title ?? t('portal.record.note')}
                  {note.author?.[0]?.reference && record.authors.get(note.author[0].reference) ? ` · ${record.authors.get(note.author[0].reference)}` : ''}
                </summary>
                {(note.section ?? []).map((s, i) => (
                  <div key={i} className="note-section">
                    {s.title && <h3>{s.title}</h3>}
                    <p>{narrativeText(s.text?.div)}</p>
                  </div>
                ))}
              </details>
            ))}
          </section>
          <ListSection id="problems" title={t('portal.record.problems')} empty={t('portal.record.noProblems')} items={record.problems.map((r) => ({ id: r.id, text: conceptText(r.code as CodeableConcept), detail: conceptText(r.clinicalStatus as CodeableConcept) }))} />
          <ListSection
            id="allergies"
            title={t('portal.record.allergies')}
            empty={t('portal.record.noAllergies')}
            items={record.allergies.map((r) => ({ id: r.id, text: conceptText(r.code as CodeableConcept), detail: ((r.reaction as { manifestation?: CodeableConcept[] }[] | undefined) ?? []).flatMap((x) => (x.manifestation ?? []).map(conceptText)).join(', ') }))}
          />
          <ListSection
            id="medications"
            title={t('portal.record.medications')}
            empty={t('portal.record.noMedications')}
            items={record.medications.map((r) => ({ id: r.id, text: conceptText(r.medicationCodeableConcept as CodeableConcept), detail: ((r.dosageInstruction ?? r.dosage) as { text?: string }[] | undefined)?.[0]?.text ?? '' }))}
          />
          <section aria-labelledby="vitals-title" className="stack">
            <h2 id="vitals-title">{t('portal.record.vitals')}</h2>
            {record.vitals.length === 0 && <p>{t('portal.record.noVitals')}</p>}
            <div className="vitals">
              {record.vitals.map((s) => (
                <VitalsChart key={s.key} series={s} />
              ))}
            </div>
          </section>
          <section aria-labelledby="documents-title" className="stack">
            <h2 id="documents-title">{t('portal.record.documents')}</h2>
            {record.documents.length === 0 && <p>{t('portal.record.noDocuments')}</p>}
            <ul className="cards">
              {record.documents.map((d) => (
                <DocumentItem key={d.id} document={d} />
              ))}
            </ul>
          </section>
        </>
      )}
      <RecordAccess />
    </div>
  );
}

function ListSection({ id, title, empty, items }: { id: string; title: string; empty: string; items: { id: string; text: string; detail: string }[] }) {
  return (
    <section aria-labelledby={`${id}-title`} className="stack" data-testid={id}>
      <h2 id={`${id}-title`}>{title}</h2>
      {items.length === 0 ? (
        <p>{empty}</p>
      ) : (
        <ul className="cards">
          {items.map((item) => (
            <li key={item.id} className="card">
              <p>{item.text}</p>
              {item.detail && <p className="hint">{item.detail}</p>}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function DocumentItem({ document: d }: { document: DocumentReference }) {
  const { t } = useTranslation();
  const [error, setError] = useState<string>();
  const attachment = d.content?.[0]?.attachment;
  const path = attachment?.url ? new URL(attachment.url, location.origin).pathname : undefined;
  const name = attachment?.title ?? d.description ?? conceptText(d.type) ?? t('portal.record.document');
  return (
    <li className="card stack">
      <p>{name}</p>
      <p className="hint">{formatShortDate(d.date)}</p>
      {path?.startsWith('/api/documents/') && (
        <button type="button" onClick={() => download('GET', path, attachment?.title ?? `document-${d.id}`).catch((err: unknown) => setError(explain(t, err)))} aria-label={t('portal.record.downloadNamed', { name })}>
          {t('portal.record.download')}
        </button>
      )}
      {error && <p role="alert" className="error">{error}</p>}
    </li>
  );
}

/** Who has looked at or changed my record (other than me), newest first, page by page. */
function RecordAccess() {
  const { t } = useTranslation();
  const [entries, setEntries] = useState<Access[]>([]);
  const [next, setNext] = useState<string | null | undefined>(undefined);
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(true);

  async function load(before?: string) {
    setLoading(true);
    try {
      const page = await call<{ entries: Access[]; next?: { _count: number; before: number } }>('GET', `/api/me/record-access?_count=20${before ? `&before=${before}` : ''}`);
      setEntries((old) => (before ? [...old, ...page.entries] : page.entries));
      setNext(page.next ? String(page.next.before) : null);
    } catch (err) {
      setError(explain(t, err));
    } finally {
      setLoading(false);
    }
  }
  useEffect(() => {
    void load();
  }, []);

  return (
    <section aria-labelledby="access-title" className="stack" data-testid="record-access">
      <h2 id="access-title">{t('portal.access.title')}</h2>
      <p className="hint">{t('portal.access.intro')}</p>
      {error && <p role="alert" className="error">{error}</p>}
      {!loading && entries.length === 0 && !error && <p>{t('portal.access.none')}</p>}
      {entries.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">{t('portal.access.when')}</th>
                <th scope="col">{t('portal.access.who')}</th>
                <th scope="col">{t('portal.access.what')}</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e, i) => (
                <tr key={`${e.when}-${i}`} data-testid="access-entry">
                  <td>{formatDateTime(e.when)}</td>
                  <td>
                    {actorName(t, e.who)}
                    {e.through ? ` ${t('portal.access.through', { app: e.through.name ?? t('portal.access.unknownApp') })}` : ''}
                    {e.who.role !== 'system' && e.who.role !== 'other' && <span className="hint"> ({t(`portal.access.roles.${e.who.role}`, { defaultValue: e.who.role })})</span>}
                  </td>
                  <td>
                    {t(`portal.access.actions.${e.action}`, { defaultValue: e.action })}
                    {e.resource ? ` · ${t(`portal.access.types.${e.resource.split('/')[0]}`, { defaultValue: e.resource.split('/')[0] })}` : ''}
                    {e.outcome !== 'success' ? ` (${t('portal.access.refused')})` : ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next && (
        <button type="button" disabled={loading} onClick={() => void load(next)}>{t('portal.access.more')}</button>
      )}
      {loading && <p aria-busy="true">{t('portal.loading')}</p>}
    </section>
  );
}

import { useCallback, useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from '../app/api.js';
import type { Clinician } from './ClinicApp.js';
import { fhirCreate, fhirUpdate, search, type Resource } from './fhir.js';
import { keepPageWhenSessionEnds } from './session-end.js';
import { SignInAgainDialog } from './SignInAgainDialog.js';
import { ErrorLine, errorText, formatDateTime, formatTime } from './ui.js';

const LOINC = 'http://loinc.org';
const XHTML = 'http://www.w3.org/1999/xhtml';
/** How long typing must pause before the draft is saved. */
const AUTOSAVE_MS = 1200;

/** The SOAP sections, by their LOINC codes. */
const SECTIONS = [
  { key: 'subjective', code: '61150-9', display: 'Subjective' },
  { key: 'objective', code: '61149-1', display: 'Objective' },
  { key: 'assessment', code: '51848-0', display: 'Assessment' },
  { key: 'plan', code: '18776-5', display: 'Plan of care' },
] as const;
const ADDENDUM_CODE = '55107-7';

type SectionKey = (typeof SECTIONS)[number]['key'];
type NoteText = Record<SectionKey, string>;
const EMPTY: NoteText = { subjective: '', objective: '', assessment: '', plan: '' };

interface Section {
  title?: string;
  code?: { coding?: { system?: string; code?: string }[] };
  text?: { status: string; div: string };
}

export interface Composition extends Resource {
  status?: string;
  date?: string;
  title?: string;
  author?: { reference?: string; display?: string }[];
  attester?: { mode?: string; time?: string; party?: { reference?: string; display?: string } }[];
  relatesTo?: { code?: string; targetReference?: { reference?: string } }[];
  event?: { detail?: { reference?: string }[] }[];
  section?: Section[];
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Plain text as FHIR narrative: one paragraph per line, so the text comes back exactly as typed. */
export function textToDiv(text: string): string {
  return `<div xmlns="${XHTML}">${text
    .split('\n')
    .map((line) => `<p>${escapeXml(line)}</p>`)
    .join('')}</div>`;
}

export function divToText(div: string | undefined): string {
  if (!div) return '';
  const doc = new DOMParser().parseFromString(div, 'application/xml');
  const paragraphs = [...doc.getElementsByTagName('p')];
  return paragraphs.length ? paragraphs.map((p) => p.textContent ?? '').join('\n') : (doc.documentElement.textContent ?? '');
}

const sectionCode = (s: Section) => s.code?.coding?.find((c) => c.system === LOINC)?.code;

function textOf(note: Composition | undefined): NoteText {
  const text = { ...EMPTY };
  for (const section of note?.section ?? []) {
    const def = SECTIONS.find((d) => d.code === sectionCode(section));
    if (def) text[def.key] = divToText(section.text?.div);
  }
  return text;
}

const isSigned = (note: Composition) => note.status === 'final' || note.status === 'amended';
const appendsTo = (note: Composition) => note.relatesTo?.find((r) => r.code === 'appends')?.targetReference?.reference;
const aboutAppointment = (note: Composition, appointmentId: string | undefined) =>
  (note.event ?? []).some((e) => (e.detail ?? []).some((d) => d.reference === `Appointment/${appointmentId}`));

/** `held`: the session ended; the text waits on the page (in memory only) for the clinician to sign in again. */
type SaveState = { kind: 'idle' } | { kind: 'saving' } | { kind: 'saved'; at: string } | { kind: 'failed'; reason: string } | { kind: 'held' };

/**
 * Warns before the page unloads (reload, close, typed address) while `unsaved()` holds. In-app
 * navigation needs no warning: unmounting saves.
 */
function useWarnBeforeLeaving(unsaved: () => boolean): void {
  const check = useRef(unsaved);
  check.current = unsaved;
  useEffect(() => {
    const warn = (event: BeforeUnloadEvent) => {
      if (!check.current()) return;
      event.preventDefault();
      // Browsers before the preventDefault() convention ask for a returnValue.
      event.returnValue = '';
    };
    addEventListener('beforeunload', warn);
    return () => removeEventListener('beforeunload', warn);
  }, []);
}

/**
 * The visit note: a Composition with Subjective/Objective/Assessment/Plan sections, saved as a
 * draft (status preliminary) while the clinician types, signed at the end (status final, the
 * clinician as legal attester). A signed note is read-only (the server refuses changes);
 * corrections are addenda: signed Compositions whose relatesTo appends the note.
 *
 * Typed text is never lost to an ended session: a save answered 401 keeps the text in memory (never
 * in the browser's storage: a shared hospital PC), the clinician signs in again over the page, and
 * the draft is saved then.
 */
export function SoapNote({ patientId, appointmentId, clinician }: { patientId: string; appointmentId: string | undefined; clinician: Clinician }) {
  const { t, i18n } = useTranslation();
  const [notes, setNotes] = useState<Composition[]>();
  const [draft, setDraft] = useState<Composition>();
  const [text, setText] = useState<NoteText>(EMPTY);
  const [saveState, setSaveState] = useState<SaveState>({ kind: 'idle' });
  const [error, setError] = useState<string>();
  const [signing, setSigning] = useState(false);
  // After signing this visit's note the form folds away; "New note" opens a fresh one.
  const [writingAnother, setWritingAnother] = useState(false);
  // What the autosave works from: the latest text and saved version, whatever render we are in.
  const textRef = useRef(text);
  const draftRef = useRef<Composition | undefined>(undefined);
  const dirty = useRef(false);
  const queue = useRef<Promise<void>>(Promise.resolve());
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  // A save on its way: its text is not on the server yet.
  const inFlight = useRef(false);
  // The server said the session ended (any call of the clinic while this note is open): sign in again here.
  const [signedOut, setSignedOut] = useState(false);
  const signedOutRef = useRef(false);

  useEffect(
    () =>
      keepPageWhenSessionEnds(() => {
        signedOutRef.current = true;
        setSignedOut(true);
      }),
    [],
  );

  const hasText = () => Object.values(textRef.current).some((v) => v.trim() !== '');
  useWarnBeforeLeaving(() => inFlight.current || (dirty.current && (hasText() || !!draftRef.current)));

  const load = useCallback(async () => {
    const { matches } = await search<Composition>(`Composition?patient=${encodeURIComponent(patientId)}&_sort=-date&_count=100`);
    setNotes(matches);
    // Carry on with this visit's draft (or, outside a call, this clinician's latest draft) if there is one.
    const mine = matches.filter((n) => n.status === 'preliminary' && !appendsTo(n) && (n.author ?? []).some((a) => a.reference === clinician.fhirRef));
    const open = appointmentId ? mine.find((n) => aboutAppointment(n, appointmentId)) : mine.find((n) => !n.event?.length) ?? mine[0];
    if (open && !draftRef.current) {
      draftRef.current = open;
      setDraft(open);
      const restored = textOf(open);
      textRef.current = restored;
      setText(restored);
    }
  }, [patientId, appointmentId, clinician.fhirRef]);

  useEffect(() => {
    load().catch((err: unknown) => setError(errorText(t, err)));
  }, [load, t]);

  const composition = useCallback(
    (body: NoteText, status: 'preliminary' | 'final'): Composition => {
      const now = new Date().toISOString();
      const previous = draftRef.current;
      return {
        resourceType: 'Composition',
        ...(previous?.id ? { id: previous.id, meta: previous.meta } : {}),
        status,
        type: { coding: [{ system: LOINC, code: '11506-3', display: 'Progress note' }] },
        subject: { reference: `Patient/${patientId}` },
        date: now,
        author: [{ reference: clinician.fhirRef!, ...(clinician.name ? { display: clinician.name } : {}) }],
        title: t('clinic.note.titleText'),
        ...(appointmentId ? { event: [{ detail: [{ reference: `Appointment/${appointmentId}` }] }] } : {}),
        ...(status === 'final' ? { attester: [{ mode: 'legal', time: now, party: { reference: clinician.fhirRef!, ...(clinician.name ? { display: clinician.name } : {}) } }] } : {}),
        section: SECTIONS.filter((s) => body[s.key].trim() !== '').map((s) => ({
          title: t(`clinic.note.${s.key}`),
          code: { coding: [{ system: LOINC, code: s.code, display: s.display }] },
          text: { status: 'additional', div: textToDiv(body[s.key]) },
        })),
      };
    },
    [patientId, appointmentId, clinician, t],
  );

  /** Saves the draft if it changed; one save at a time, in order. */
  const saveDraft = useCallback(() => {
    clearTimeout(timer.current);
    queue.current = queue.current.then(async () => {
      if (!dirty.current) return;
      // No session: nothing could be saved; the text waits for the sign-in over the page.
      if (signedOutRef.current) return setSaveState({ kind: 'held' });
      const body = textRef.current;
      if (!draftRef.current && Object.values(body).every((v) => v.trim() === '')) return;
      dirty.current = false;
      inFlight.current = true;
      setSaveState({ kind: 'saving' });
      try {
        const next = composition(body, 'preliminary');
        const saved = next.id ? await fhirUpdate(next) : await fhirCreate(next);
        draftRef.current = saved;
        setDraft(saved);
        setSaveState({ kind: 'saved', at: saved.meta?.lastUpdated ?? new Date().toISOString() });
      } catch (err) {
        // Still to save; whatever was typed meanwhile is in textRef and goes with the next save.
        dirty.current = true;
        setSaveState(err instanceof ApiError && err.status === 401 ? { kind: 'held' } : { kind: 'failed', reason: errorText(t, err) });
      } finally {
        inFlight.current = false;
      }
    });
    return queue.current;
  }, [composition, t]);

  // Leaving the page (or the call) saves what was typed since the last save.
  useEffect(() => () => void saveDraft(), [saveDraft]);

  /** Signed in again over the page: what waited is saved now. */
  function signedInAgain() {
    signedOutRef.current = false;
    setSignedOut(false);
    void saveDraft();
  }

  function edit(key: SectionKey, value: string) {
    const next = { ...textRef.current, [key]: value };
    textRef.current = next;
    setText(next);
    dirty.current = true;
    clearTimeout(timer.current);
    timer.current = setTimeout(() => void saveDraft(), AUTOSAVE_MS);
  }

  async function sign() {
    setError(undefined);
    if (Object.values(textRef.current).every((v) => v.trim() === '')) return setError(t('clinic.note.signEmpty'));
    setSigning(true);
    try {
      await saveDraft();
      // The session ended: signing waits for the sign-in over the page (the clinician signs again then).
      if (signedOutRef.current) return setError(t('clinic.errors.sessionEnded'));
      const signedNote = composition(textRef.current, 'final');
      const saved = signedNote.id ? await fhirUpdate(signedNote) : await fhirCreate(signedNote);
      draftRef.current = undefined;
      setDraft(undefined);
      textRef.current = EMPTY;
      setText(EMPTY);
      setSaveState({ kind: 'idle' });
      setNotes((list) => [saved, ...(list ?? []).filter((n) => n.id !== saved.id)]);
      setWritingAnother(false);
    } catch (err) {
      setError(errorText(t, err));
    } finally {
      setSigning(false);
    }
  }

  const signed = (notes ?? []).filter((n) => isSigned(n) && !appendsTo(n));
  const addenda = (notes ?? []).filter((n) => isSigned(n) && appendsTo(n));
  const justSigned = appointmentId ? signed.filter((n) => aboutAppointment(n, appointmentId)) : [];
  const statusText =
    saveState.kind === 'saving'
      ? t('clinic.note.draftSaving')
      : saveState.kind === 'saved'
        ? t('clinic.note.draftSaved', { time: formatTime(saveState.at, i18n.language) })
        : saveState.kind === 'failed'
          ? t('clinic.note.draftNotSaved', { reason: saveState.reason })
          : saveState.kind === 'held'
            ? t('clinic.note.draftHeld')
            : draft
              ? t('clinic.note.draftSaved', { time: formatTime(draft.meta?.lastUpdated, i18n.language) })
              : t('clinic.note.draftEmpty');

  return (
    <div className="stack" data-testid="soap-note">
      {signedOut && <SignInAgainDialog email={clinician.email} accountId={clinician.id} onSignedIn={signedInAgain} />}
      {justSigned.map((note) => (
        <SignedNote key={note.id} note={note} addenda={addenda} clinician={clinician} patientId={patientId} onAddendum={(a) => setNotes((list) => [a, ...(list ?? [])])} />
      ))}
      {justSigned.length > 0 && !draft && !writingAnother && (
        <button type="button" onClick={() => setWritingAnother(true)} data-testid="new-note">
          {t('clinic.note.newNote')}
        </button>
      )}
      {(justSigned.length === 0 || draft || writingAnother) && (
        <form className="stack" onSubmit={(e) => (e.preventDefault(), void sign())} data-testid="note-form" data-note-id={draft?.id ?? ''}>
          {SECTIONS.map((s) => (
            <label key={s.key}>
              <span>
                <strong>{t(`clinic.note.${s.key}`)}</strong> <span className="muted">{t(`clinic.note.${s.key}Help`)}</span>
              </span>
              <textarea rows={3} value={text[s.key]} onChange={(e) => edit(s.key, e.target.value)} onBlur={() => void saveDraft()} data-testid={`note-${s.key}`} />
            </label>
          ))}
          <p role="status" aria-live="polite" className={saveState.kind === 'failed' || saveState.kind === 'held' ? 'error' : 'muted'} data-testid="note-save-state" data-state={saveState.kind === 'idle' && draft ? 'saved' : saveState.kind}>
            {statusText}
          </p>
          <p className="muted">{t('clinic.note.signConfirm')}</p>
          <button type="submit" className="primary" disabled={signing} data-testid="sign-note">
            {signing ? t('clinic.note.signing') : t('clinic.note.sign')}
          </button>
          <ErrorLine error={error} />
        </form>
      )}
      <details className="earlier-notes">
        <summary>
          {t('clinic.note.earlierNotes')} ({signed.length - justSigned.length})
        </summary>
        {signed.length - justSigned.length === 0 && <p>{t('clinic.note.noNotes')}</p>}
        {signed
          .filter((n) => !justSigned.includes(n))
          .map((note) => (
            <SignedNote key={note.id} note={note} addenda={addenda} clinician={clinician} patientId={patientId} onAddendum={(a) => setNotes((list) => [a, ...(list ?? [])])} />
          ))}
      </details>
    </div>
  );
}

/** A signed note, read-only, with its addenda and the way to write one more. */
function SignedNote({ note, addenda, clinician, patientId, onAddendum }: { note: Composition; addenda: Composition[]; clinician: Clinician; patientId: string; onAddendum(addendum: Composition): void }) {
  const { t, i18n } = useTranslation();
  const [writing, setWriting] = useState(false);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const attester = note.attester?.find((a) => a.mode === 'legal');
  const signer = attester?.party?.reference === clinician.fhirRef ? t('clinic.note.you') : (attester?.party?.display ?? attester?.party?.reference ?? '');
  const own = addenda.filter((a) => appendsTo(a) === `Composition/${note.id}`);
  useWarnBeforeLeaving(() => writing && text.trim() !== '');

  async function signAddendum() {
    if (!text.trim()) return setError(t('clinic.note.signEmpty'));
    setBusy(true);
    setError(undefined);
    const now = new Date().toISOString();
    const party = { reference: clinician.fhirRef!, ...(clinician.name ? { display: clinician.name } : {}) };
    try {
      const saved = await fhirCreate<Composition>({
        resourceType: 'Composition',
        status: 'final',
        type: { coding: [{ system: LOINC, code: '11506-3', display: 'Progress note' }] },
        subject: { reference: `Patient/${patientId}` },
        date: now,
        author: [party],
        title: t('clinic.note.addendum'),
        attester: [{ mode: 'legal', time: now, party }],
        relatesTo: [{ code: 'appends', targetReference: { reference: `Composition/${note.id}` } }],
        ...(note.event ? { event: note.event } : {}),
        section: [{ title: t('clinic.note.addendum'), code: { coding: [{ system: LOINC, code: ADDENDUM_CODE, display: 'Addendum' }] }, text: { status: 'additional', div: textToDiv(text) } }],
      });
      onAddendum(saved);
      setWriting(false);
      setText('');
    } catch (err) {
      setError(errorText(t, err));
    } finally {
      setBusy(false);
    }
  }

  const body = textOf(note);
  return (
    <article className="signed-note panel" data-testid="signed-note" data-note-id={note.id} data-status={note.status}>
      <p role="status" className="ok">
        {t('clinic.note.signed', { name: signer, time: formatDateTime(attester?.time ?? note.date, i18n.language) })}
      </p>
      <dl>
        {SECTIONS.filter((s) => body[s.key]).map((s) => (
          <div key={s.key}>
            <dt>{t(`clinic.note.${s.key}`)}</dt>
            <dd className="pre">{body[s.key]}</dd>
          </div>
        ))}
      </dl>
      {own.map((a) => (
        <div key={a.id} className="addendum" data-testid="addendum">
          <strong>{t('clinic.note.addendumOf', { date: formatDateTime(note.date, i18n.language) })}</strong> · <span className="muted">{formatDateTime(a.date, i18n.language)}</span>
          <p className="pre">{divToText(a.section?.[0]?.text?.div)}</p>
        </div>
      ))}
      {writing ? (
        <div className="stack">
          <label>
            {t('clinic.note.addendumText')}
            <textarea rows={3} value={text} onChange={(e) => setText(e.target.value)} data-testid="addendum-text" />
          </label>
          <div className="row">
            <button type="button" className="primary" disabled={busy} onClick={() => void signAddendum()} data-testid="sign-addendum">
              {t('clinic.note.signAddendum')}
            </button>
            <button type="button" onClick={() => setWriting(false)}>
              {t('clinic.note.cancel')}
            </button>
          </div>
        </div>
      ) : (
        <button type="button" onClick={() => setWriting(true)} data-testid="write-addendum">
          {t('clinic.note.writeAddendum')}
        </button>
      )}
      <ErrorLine error={error} />
    </article>
  );
}

/**
 * Realistic telehealth traffic in Spanish and English, for measuring the shield's false
 * positives: FHIR searches for people named O'Brien, Núñez or D'Angelo, clinical notes full of
 * apostrophes, quotes, "<5 mg", "--", "drop the dose", "select", "union"; sign-ins with
 * punctuation-rich passwords; document uploads; and what real browsers send while using the web
 * app and the consultation (browser-traffic.ts). Deterministic (seeded), so runs compare.
 */
import { browserRequest, browserSignalingMessage } from './browser-traffic.js';

export interface BenignRequest {
  kind: 'fhir-search' | 'fhir-read' | 'note-write' | 'appointment-write' | 'sign-in' | 'upload' | 'app-api' | 'browser' | 'browser-by-ip';
  method: string;
  url: string;
  headers: [string, string][];
  body?: Buffer;
}

/** What the replaying script created first: ids the requests point at. */
export interface BenignFixtures {
  host: string;
  origin: string;
  patientIds: string[];
  /** Practitioners and telehealth appointments the requests point at (booking, guest links). */
  practitionerIds?: string[];
  appointmentIds?: string[];
  bearer: string;
  /** An address the node is also reached at (a hospital LAN), not its public host: Host is then an IP. */
  ipHost?: string;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FAMILIES = ["O'Brien", 'Núñez', "D'Angelo", 'Fernández', 'Peña', "O'Connor", 'García-Márquez', 'Muñoz', "Dell'Acqua", 'Ibáñez', 'Smith', 'López de la Cruz', "N'Diaye", 'Zúñiga', 'Castaño', 'McDonald', 'Ó Súilleabháin', 'Álvarez', 'Gómez', "D'Souza"];
const GIVENS = ['María José', 'Siobhán', 'Íñigo', 'Ana', 'José Luis', 'Zoë', 'Chloé', 'Renée', 'Juan', 'Lucía', 'Mary-Kate', 'Begoña', 'Noël', 'Ángel', 'Sean', 'Aoife'];
const CITIES = ['Montevideo', 'Córdoba', 'São Paulo', 'Bogotá', 'Málaga', "L'Hospitalet", 'Dublin', 'Ciudad de México'];

const NOTE_PARTS_EN = [
  "Patient's BP 150/95 -- above target; increase amlodipine to 10 mg.",
  'Glucose <5 mmol/L fasting; A1c 6.9% (<7% goal).',
  "Drop the dose of metoprolol to 25 mg if HR < 55.",
  'Select the best option with the patient -- she prefers oral therapy.',
  'He said "I feel better" but still reports chest tightness > 2 times/week.',
  "Mother's history: breast cancer at 45; father's: MI at 60.",
  'Union of the fracture confirmed on X-ray; remove cast next visit.',
  'Script sent to pharmacy: metformin 500 mg BID -- review in 4 weeks.',
  "Plan: 1) labs; 2) ECG; 3) follow-up in 2/52. Don't stop aspirin.",
  'Pain 7/10 -> 3/10 after ibuprofen; no red flags; or consider PT.',
  "Discussed 'drop table' sign (wrist) with ortho -- not a concern.",
  'Where possible, order from the formulary; update the allergy list (penicillin -> rash).',
  'Insert IUD deferred; delete old duplicate problem entry.',
  'SpO2 >= 95% on room air; RR 16; T 37.2 °C.',
  "Creatinine 1.4 (was 1.1) -- hold NSAIDs; recheck in 1 week; if > 1.6 refer.",
  'Patient asked: "Can I drink alcohol with this?" -- advised no.',
  'Wound edges approximated; <1 cm dehiscence at the distal end; dressing changed.',
  "Child's weight 18 kg (50th percentile); vaccines up to date.",
  'Screening: PHQ-9 = 12 (moderate) -- start sertraline 50 mg; safety plan discussed.',
  'Telehealth visit: video OK, audio dropped twice -- called back by phone.',
];
const NOTE_PARTS_ES = [
  'Paciente refiere "mareos" al levantarse; TA 100/60 -- suspender enalapril.',
  'Glucemia <70 mg/dL en 2 ocasiones; bajar la dosis de insulina NPH a 10 UI.',
  "Control de O'Higgins: herida limpia, sin signos de infección.",
  'Se decide seleccionar la mejor opción terapéutica con la familia -- prefieren vía oral.',
  'Dolor 8/10 -> 4/10 tras paracetamol 1 g; reevaluar en 48 h.',
  'Antecedentes: madre con DM2; padre con IAM a los 55 años; hermano sano.',
  "Niña de 4 años, acompañada por su mamá; peso 16 kg (p50). Vacunas al día.",
  'Plan: 1) laboratorio; 2) ECG; 3) control en 2 semanas. No suspender aspirina.',
  'Creatinina 1,4 mg/dL (previa 1,1) -- evitar AINEs; si > 1,6 derivar a nefrología.',
  'Saturación >= 95 % aire ambiente; FR 16; T° 37,2 °C.',
  "Se explica a la paciente el uso del inhalador; dice: 'ahora sí entiendo'.",
  'Ecografía: vesícula con litiasis <1 cm; sin dilatación de vía biliar.',
  'PHQ-9 = 14 (moderado) -- iniciar sertralina 50 mg; plan de seguridad conversado.',
  'Consulta por video: buena conexión; se comparte pantalla con resultados.',
  'Alergia a penicilina (exantema). Actualizar la lista de alergias; eliminar entrada duplicada.',
  'Indicaciones: dieta hiposódica (<2 g/día de sal), caminar 30 min/día.',
  "Refiere que 'no puede dormir' desde hace 2 semanas; higiene del sueño.",
  'Ñandú? No -- el paciente dice "ñoño", broma familiar; ánimo conservado.',
  'Unión de la fractura confirmada; retirar yeso en la próxima visita.',
  'Se indica reposo relativo y control con traumatología -- o antes si empeora.',
];

const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
];
const LANGUAGES = ['es-AR,es;q=0.9,en;q=0.8', 'en-US,en;q=0.9', 'es-ES,es;q=0.9', 'es-419,es;q=0.9,en;q=0.7', 'en-GB,en;q=0.9,es;q=0.6'];

export function benignRequests(count: number, fx: BenignFixtures, seed = 20260301): BenignRequest[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const browserHeaders = (accept: string): [string, string][] => {
    const ua = pick(USER_AGENTS);
    const h: [string, string][] = [['Host', fx.host], ['User-Agent', ua], ['Accept', accept], ['Accept-Language', pick(LANGUAGES)], ['Accept-Encoding', 'gzip, deflate, br']];
    if (ua.includes('Chrome')) h.push(['sec-ch-ua', '"Not/A)Brand";v="8", "Chromium";v="126", "Google Chrome";v="126"'], ['sec-ch-ua-mobile', ua.includes('Mobile') ? '?1' : '?0'], ['sec-ch-ua-platform', '"Windows"'], ['Sec-Fetch-Site', 'same-origin'], ['Sec-Fetch-Mode', 'cors'], ['Sec-Fetch-Dest', 'empty']);
    h.push(['Referer', `${fx.origin}/${pick(['clinician', 'patient', 'consult', 'records'])}/${pick(['today', 'search', 'notes', 'documents'])}`]);
    return h;
  };
  const authed = (accept: string): [string, string][] => [...browserHeaders(accept), ['Authorization', `Bearer ${fx.bearer}`], ['Connection', 'close']];
  const note = () => {
    const parts = r() < 0.5 ? NOTE_PARTS_EN : NOTE_PARTS_ES;
    return Array.from({ length: 1 + Math.floor(r() * 4) }, () => pick(parts)).join(' ');
  };
  const out: BenignRequest[] = [];
  const appointmentIds = fx.appointmentIds?.length ? fx.appointmentIds : fx.patientIds;
  for (let i = 0; i < count; i++) {
    const roll = r();
    const patientId = pick(fx.patientIds);
    if (roll < 0.25) {
      // Browsers: a quarter of all traffic, some of it by the node's address from inside a hospital.
      const byIp = fx.ipHost !== undefined && r() < 0.25;
      const host = byIp ? fx.ipHost! : fx.host;
      out.push({ kind: byIp ? 'browser-by-ip' : 'browser', ...browserRequest(r, pick, host, byIp ? `https://${host}` : fx.origin, appointmentIds) });
      continue;
    }
    if (roll < 0.29) {
      const start = new Date(Date.UTC(2026, 2, 2 + Math.floor(r() * 60), 8 + Math.floor(r() * 10), pick([0, 20, 40]))).toISOString();
      const resource = {
        resourceType: 'Appointment',
        status: 'booked',
        appointmentType: { coding: [{ system: 'https://telesalud.org/fhir/CodeSystem/consultation-mode', code: pick(['telehealth', 'in-person']) }] },
        description: pick(["Control de TA -- traer registro domiciliario", "Follow-up: patient's A1c <7%?", 'Consulta por "mareos"', 'Revisión de resultados; select next steps']),
        start,
        end: new Date(Date.parse(start) + 20 * 60_000).toISOString(),
        participant: [
          { actor: { reference: `Patient/${patientId}` }, status: 'accepted' },
          ...(fx.practitionerIds?.length ? [{ actor: { reference: `Practitioner/${pick(fx.practitionerIds)}` }, status: 'accepted' }] : []),
        ],
      };
      out.push({ kind: 'appointment-write', method: 'POST', url: '/fhir/R4/Appointment', headers: [...authed('application/fhir+json'), ['Content-Type', 'application/fhir+json']], body: Buffer.from(JSON.stringify(resource)) });
      continue;
    }
    if (roll < 0.42) {
      const q = pick([
        () => `name=${encodeURIComponent(pick(FAMILIES))}`,
        () => `family=${encodeURIComponent(pick(FAMILIES))}&given=${encodeURIComponent(pick(GIVENS))}`,
        () => `name=${encodeURIComponent(`${pick(GIVENS)} ${pick(FAMILIES)}`)}&_count=20`,
        () => `birthdate=ge${1940 + Math.floor(r() * 70)}-01-01&gender=${pick(['female', 'male', 'other'])}&_sort=-_lastUpdated`,
        () => `identifier=${encodeURIComponent(`http://hospital.example.org/mrn|${100000 + Math.floor(r() * 900000)}`)}`,
        () => `address-city=${encodeURIComponent(pick(CITIES))}`,
      ])();
      const obs = pick([
        () => `subject=Patient/${patientId}&code=${encodeURIComponent('http://loinc.org|8867-4')}&date=ge2026-01-01&_count=50`,
        () => `patient=${patientId}&category=vital-signs&_sort=-date`,
        () => `subject=Patient/${patientId}&code=${encodeURIComponent('http://loinc.org|85354-9,http://loinc.org|8480-6')}`,
      ])();
      // Date-times with small hours, minutes and seconds (00–07 look octal to a naive rule), as the portal's slot search sends them.
      const day = `2026-11-2${Math.floor(r() * 8)}`;
      const at = `T0${Math.floor(r() * 8)}:0${Math.floor(r() * 8)}:0${Math.floor(r() * 8)}`;
      const [type, query] = pick([
        ['Patient', q],
        ['Observation', obs],
        ['Appointment', `date=ge2026-03-0${1 + Math.floor(r() * 9)}&status=booked`],
        ['Encounter', `patient=${patientId}`],
        ['Slot', `status=free&start=ge${day}${at}Z&start=lt${day}T23:59:59Z&_count=100`],
        ['Observation', `patient=${patientId}&date=gt${day}${at}.123${encodeURIComponent('+01:00')}&_sort=-date`],
      ] as const);
      out.push({ kind: 'fhir-search', method: 'GET', url: `/fhir/R4/${type}?${query}`, headers: authed('application/fhir+json') });
    } else if (roll < 0.5) {
      out.push({ kind: 'fhir-read', method: 'GET', url: `/fhir/R4/Patient/${patientId}`, headers: authed('application/fhir+json') });
    } else if (roll < 0.75) {
      const text = note();
      const resource = pick([
        () => ({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }], text: 'Frecuencia cardíaca' }, subject: { reference: `Patient/${patientId}` }, effectiveDateTime: '2026-03-01T10:00:00Z', valueQuantity: { value: 60 + Math.floor(r() * 40), unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' }, note: [{ text }] }),
        () => ({ resourceType: 'Composition', status: 'final', type: { coding: [{ system: 'http://loinc.org', code: '11506-3', display: 'Progress note' }] }, subject: { reference: `Patient/${patientId}` }, date: '2026-03-01T10:00:00Z', author: [{ display: `Dra. ${pick(FAMILIES)}` }], title: pick(['Nota de evolución', 'Progress note', "Follow-up: patient's request"]), section: [{ title: pick(['Subjetivo', 'Assessment', 'Plan']), text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}</p></div>` } }] }),
        () => ({ resourceType: 'Condition', clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] }, code: { text: pick(['Hipertensión arterial', "Crohn's disease", 'Diabetes mellitus tipo 2', 'Asthma -- mild persistent']) }, subject: { reference: `Patient/${patientId}` }, note: [{ text }] }),
        () => ({ resourceType: 'Patient', name: [{ family: pick(FAMILIES), given: [pick(GIVENS)] }], gender: pick(['female', 'male']), birthDate: `19${50 + Math.floor(r() * 49)}-0${1 + Math.floor(r() * 9)}-1${Math.floor(r() * 9)}`, address: [{ line: [pick(['Av. 18 de Julio 1234, apto 5', "Calle O'Higgins #45 - 2°B", '12 Main St. (rear)'])], city: pick(CITIES) }] }),
      ])();
      out.push({ kind: 'note-write', method: 'POST', url: `/fhir/R4/${resource.resourceType}`, headers: [...authed('application/fhir+json'), ['Content-Type', 'application/fhir+json']], body: Buffer.from(JSON.stringify(resource)) });
    } else if (roll < 0.88) {
      const password = pick([
        () => `it's-${pick(GIVENS).replace(/ /g, '')}-${Math.floor(r() * 1000)}!`,
        () => `"Correct horse" <battery> -- staple ${Math.floor(r() * 100)}`,
        () => `Ñandú;${pick(CITIES)}=${Math.floor(r() * 1e6)}`,
        () => `or 1=1? no: ${pick(FAMILIES)} & ${pick(GIVENS)} #${Math.floor(r() * 99)}`,
        () => `P@ss'w0rd-${Math.floor(r() * 1e4)}`,
      ])();
      const email = `${pick(GIVENS).toLowerCase().replace(/[^a-z]/g, '')}.${pick(FAMILIES).toLowerCase().normalize('NFD').replace(/[^a-z']/g, '')}@clinica.example.org`;
      const body = JSON.stringify({ email, password, ...(r() < 0.5 ? { code: String(100000 + Math.floor(r() * 900000)) } : {}) });
      out.push({ kind: 'sign-in', method: 'POST', url: '/api/auth/sign-in', headers: [...browserHeaders('application/json'), ['Origin', fx.origin], ['Content-Type', 'application/json'], ['Connection', 'close']], body: Buffer.from(body) });
    } else if (roll < 0.95) {
      const [type, bytes] = pick([
        ['application/pdf', Buffer.concat([Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <</Type /Catalog>> endobj\n', 'latin1'), Buffer.alloc(2048, 0x20)])],
        ['image/png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(Array.from({ length: 4096 }, () => Math.floor(r() * 256)))])],
        ['text/plain', Buffer.from(`Resumen de alta -- ${note()}\nFirma: Dr. ${pick(FAMILIES)}\n`)],
      ] as const);
      const title = pick(["Informe de laboratorio (O'Brien)", 'Rx tórax -- control', 'Referral letter: "urgent"', 'Consentimiento informado <firmado>', 'ECG 12 derivaciones']);
      out.push({ kind: 'upload', method: 'POST', url: `/api/documents?patient=${patientId}&title=${encodeURIComponent(title)}&category=${pick(['laboratory', 'imaging', 'referral', 'consent', 'clinical-note'])}`, headers: [...authed('application/json'), ['Content-Type', type]], body: Buffer.from(bytes) });
    } else {
      out.push({ kind: 'app-api', method: 'GET', url: pick(['/api/auth/session', '/api/consult/status', '/healthz', '/readyz', '/fhir/R4/metadata', '/.well-known/smart-configuration']), headers: authed('application/json') });
    }
  }
  return out;
}

/** Consultation signaling messages as the web app sends them, for `inspectWebSocketMessage`. */
export function benignSignalingMessages(count: number, appointmentIds: string[], seed = 20260302): string[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  return Array.from({ length: count }, () => browserSignalingMessage(r, pick, appointmentIds));
}

/**
 * `npm run shield:corpus`: measures the shield against ../shared/corpus/crs-attacks-dev.jsonl
 * and against a benign telehealth corpus, on a real node over HTTPS on loopback.
 *
 * 1. Every attack request replayed byte for byte over a raw TLS socket (corpus README rules);
 *    a detection is a 403 whose body is the shield's ({error:'blocked'} or an OperationOutcome
 *    with code "security"; a HEAD answer has no body, so there its `x-refused-by: shield` header).
 *    A 404/405/415 from the positive model is NOT counted.
 * 2. Each attack's payload injected into real parameters of real routes: sign-in email, FHIR
 *    search parameters (a token and a name), a JSON note text (clinical free text, read with the
 *    prose rules on purpose), and a header.
 * 3. The benign corpus (src/edge/benign-corpus) replayed the same way: false-positive rate; real
 *    browsers' requests among them, some by the node's address; and the consultation's signaling
 *    messages through inspectWebSocketMessage.
 *
 * Loopback is never banned (see shield-plugin.ts), so each request is judged on its own.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/logging/logger.js';
import { startNode } from '../src/server/node.js';
import { buildApp } from '../src/server/app.js';
import { loadTlsMaterial, TLS_OPTIONS } from '../src/server/tls.js';
import { Repository } from '../src/records/repository.js';
import { SYSTEM_ACTOR } from '../src/auth/actor.js';
import { benignRequests, benignSignalingMessages } from '../src/edge/benign-corpus/benign-requests.js';
import { inspectWebSocketMessage } from '../src/edge/request-inspection.js';
import type { FhirResource } from '../src/records/resource-types.js';
import { corpusRequestBytes, loadCorpus, type CorpusCase } from './attack-corpus.js';

const CORPUS = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '../../shared/corpus/crs-attacks-dev.jsonl'));
const BENIGN_COUNT = 8000;
const SIGNALING_COUNT = 4000;
const PARALLEL = 8;
/** What Chromium on a clinician's desktop sends: injected payloads ride on a real browser's request. */
const BROWSER_AGENT = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

interface Answer {
  status: number;
  shield: boolean;
}

function send(port: number, bytes: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = data.toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      const head = text.slice(0, Math.max(0, text.indexOf('\r\n\r\n')));
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      const shieldBody = body.includes('"error":"blocked"') || (body.includes('"resourceType":"OperationOutcome"') && body.includes('"code":"security"'));
      const bodiless = /^HEAD /.test(bytes.subarray(0, 5).toString('latin1'));
      resolve({ status, shield: status === 403 && (shieldBody || (bodiless && /\r\nx-refused-by: shield\r\n/i.test(`${head}\r\n`))) });
    };
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => socket.write(bytes));
    const timer = setTimeout(done, 5000);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      const head = data.indexOf('\r\n\r\n');
      if (head >= 0) {
        const length = /content-length:\s*(\d+)/i.exec(data.subarray(0, head).toString('latin1'))?.[1];
        if (length !== undefined && data.length >= head + 4 + Number(length)) done();
      }
    });
    socket.on('end', done);
    socket.on('error', done);
  });
}

async function pool<T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

/** The attack string a case carries: its longest query, form, JSON or custom-header value. */
function payloadOf(c: CorpusCase): string | undefined {
  const candidates: string[] = [];
  const dec = (s: string) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  const q = c.uri.indexOf('?');
  if (q >= 0) for (const pair of c.uri.slice(q + 1).split('&')) candidates.push(dec(pair.slice(pair.indexOf('=') + 1)), dec(pair.split('=')[0]!));
  if (c.body) {
    const body = c.body.trim();
    if (body.startsWith('{')) {
      try {
        const walk = (n: unknown): void => {
          if (typeof n === 'string') candidates.push(n);
          else if (n && typeof n === 'object') for (const [k, v] of Object.entries(n)) (candidates.push(k), walk(v));
        };
        walk(JSON.parse(body));
      } catch {
        candidates.push(body);
      }
    } else if (body.startsWith('<')) for (const m of body.matchAll(/="([^"]*)"|>([^<]+)</g)) candidates.push(m[1] ?? m[2] ?? '');
    else if (!body.startsWith('--')) for (const pair of body.split('&')) candidates.push(dec(pair.slice(pair.indexOf('=') + 1)), dec(pair.split('=')[0]!));
  }
  for (const [name, value] of c.headers) if (!/^(host|accept(-\w+)?|connection|keep-alive|proxy-connection|content-(type|length)|cache-control)$/i.test(name) && !/OWASP|CRS test/.test(value)) candidates.push(value);
  const best = candidates.filter((s) => s && !/^(test|value|whatever|bar|foo|1)$/.test(s)).sort((a, b) => b.length - a.length)[0];
  return best;
}

function rate(hit: number, total: number): string {
  return `${hit}/${total} ${total ? ((100 * hit) / total).toFixed(1) : '0.0'}%`;
}

export async function main(): Promise<void> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-shield-corpus-'));
  const config = loadConfig({ ...process.env, TELESALUD_DATA_DIR: dataDir, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1', TELESALUD_LOG_LEVEL: 'error', TELESALUD_SHIELD: 'on', TELESALUD_DATABASE_URL: '' });
  const logger = createLogger('error', pino.destination({ dest: path.join(dataDir, 'node.log'), sync: false, mkdir: true }));
  const node = await startNode(config, logger);
  const tls = await loadTlsMaterial(config);
  const app = await buildApp(node, { ...TLS_OPTIONS, cert: tls.cert, key: tls.key });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const token = await import('node:fs/promises').then((fs) => fs.readFile(path.join(dataDir, 'admin-token'), 'utf8').catch(() => ''));
  try {
    // 1. The attack corpus, byte for byte.
    const cases = loadCorpus(CORPUS);
    const started = performance.now();
    const answers = await pool(cases, (c) => send(port, corpusRequestBytes(c)));
    const elapsed = performance.now() - started;
    const families = new Map<string, { hit: number; total: number; statuses: Map<number, number> }>();
    let hit = 0;
    cases.forEach((c, i) => {
      const key = `${c.family} ${c.family_name}`;
      const f = families.get(key) ?? { hit: 0, total: 0, statuses: new Map() };
      families.set(key, f);
      f.total++;
      if (answers[i]!.shield) (f.hit++, hit++);
      else f.statuses.set(answers[i]!.status, (f.statuses.get(answers[i]!.status) ?? 0) + 1);
    });
    console.log(`\nAttack corpus ${path.basename(CORPUS)}: ${cases.length} requests replayed raw over TLS (${(elapsed / cases.length).toFixed(1)} ms each, ${PARALLEL} in parallel)`);
    for (const [key, f] of [...families].sort()) console.log(`  ${key.padEnd(28)} ${rate(f.hit, f.total).padStart(16)}   not blocked: ${[...f.statuses].map(([s, n]) => `${s}×${n}`).join(' ') || '-'}`);
    const total = (100 * hit) / cases.length;
    console.log(`  TOTAL blocked by the shield: ${rate(hit, cases.length)}  (target ≥ 97%: ${total >= 97 ? 'met' : 'NOT met'})`);

    // 2. Payloads injected into real parameters of real routes.
    const records = new Repository(node.store.db, node.audit, SYSTEM_ACTOR, { requestId: 'shield-corpus', source: 'shield-corpus' });
    const patientIds: string[] = [];
    for (const family of ["O'Brien", 'Núñez', "D'Angelo"]) {
      const patient: FhirResource = { resourceType: 'Patient', name: [{ family, given: ['Ana'] }] };
      patientIds.push((await records.create(patient)).id!);
    }
    const practitioner: FhirResource = { resourceType: 'Practitioner', name: [{ family: 'Fernández', given: ['Lucía'], prefix: ['Dra.'] }] };
    const practitionerId = (await records.create(practitioner)).id!;
    const appointmentIds: string[] = [];
    for (const patientId of patientIds) {
      const start = new Date(Date.now() + appointmentIds.length * 30 * 60_000).toISOString();
      const appointment: FhirResource = {
        resourceType: 'Appointment', status: 'booked', start, end: new Date(Date.parse(start) + 20 * 60_000).toISOString(),
        appointmentType: { coding: [{ system: 'https://telesalud.org/fhir/CodeSystem/consultation-mode', code: 'telehealth' }] },
        participant: [{ actor: { reference: `Patient/${patientId}` }, status: 'accepted' }, { actor: { reference: `Practitioner/${practitionerId}` }, status: 'accepted' }],
      };
      appointmentIds.push((await records.create(appointment)).id!);
    }
    const host = `localhost:${port}`;
    const base = (method: string, url: string, extra: string[] = [], body?: string) => {
      const b = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
      return Buffer.concat([Buffer.from(`${method} ${url} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: ${BROWSER_AGENT}\r\nAccept: application/json\r\nAccept-Language: es-AR,es;q=0.9,en;q=0.8\r\nAuthorization: Bearer ${token.trim()}\r\n${extra.map((h) => `${h}\r\n`).join('')}${body === undefined ? '' : `Content-Length: ${b.length}\r\n`}Connection: close\r\n\r\n`), b]);
    };
    const targets: Record<string, (p: string) => Buffer> = {
      'sign-in email (JSON)': (p) => base('POST', '/api/auth/sign-in', ['Content-Type: application/json'], JSON.stringify({ email: p, password: 'x' })),
      'FHIR search token (identifier=)': (p) => base('GET', `/fhir/R4/Patient?identifier=${encodeURIComponent(p)}`),
      'FHIR search name (name=, prose)': (p) => base('GET', `/fhir/R4/Patient?name=${encodeURIComponent(p)}`),
      'JSON note text (prose)': (p) => base('POST', '/fhir/R4/Observation', ['Content-Type: application/fhir+json'], JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'Nota' }, subject: { reference: `Patient/${patientIds[0]}` }, note: [{ text: p }] })),
      'header (X-Request-Note)': (p) => base('GET', '/fhir/R4/metadata', [`X-Request-Note: ${p.replace(/[\r\n]/g, ' ')}`]),
    };
    const payloads = cases.map((c) => ({ c, p: payloadOf(c) })).filter((x): x is { c: CorpusCase; p: string } => x.p !== undefined && x.p.length > 0);
    console.log(`\nPayloads injected into real routes: ${payloads.length} payloads (cases whose attack is a header, method or protocol shape carry none)`);
    for (const [name, build] of Object.entries(targets)) {
      const res = await pool(payloads, ({ p }) => send(port, build(p)));
      const byFamily = new Map<string, [number, number]>();
      payloads.forEach(({ c }, i) => {
        const f = byFamily.get(c.family) ?? [0, 0];
        f[1]++;
        if (res[i]!.shield) f[0]++;
        byFamily.set(c.family, f);
      });
      const blocked = res.filter((r) => r.shield).length;
      console.log(`  ${name.padEnd(34)} ${rate(blocked, res.length).padStart(16)}   ${[...byFamily].sort().map(([f, [h, t]]) => `${f}:${Math.round((100 * h) / t)}%`).join(' ')}`);
    }

    // 3. The benign corpus.
    const benign = benignRequests(BENIGN_COUNT, { host, origin: `https://${host}`, patientIds, practitionerIds: [practitionerId], appointmentIds, bearer: token.trim(), ipHost: `127.0.0.1:${port}` });
    const benignAnswers = await pool(benign, (r) => {
      const head = `${r.method} ${r.url} HTTP/1.1\r\n${r.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}${r.body && !r.headers.some(([n]) => n.toLowerCase() === 'content-length') ? `Content-Length: ${r.body.length}\r\n` : ''}${r.headers.some(([n]) => n.toLowerCase() === 'connection') ? '' : 'Connection: close\r\n'}\r\n`;
      return send(port, Buffer.concat([Buffer.from(head), r.body ?? Buffer.alloc(0)]));
    });
    const falsePositives = benignAnswers.filter((a) => a.shield).length;
    const byKind = new Map<string, [number, number, Map<number, number>]>();
    benign.forEach((r, i) => {
      const k = byKind.get(r.kind) ?? [0, 0, new Map()];
      k[1]++;
      if (benignAnswers[i]!.shield) k[0]++;
      k[2].set(benignAnswers[i]!.status, (k[2].get(benignAnswers[i]!.status) ?? 0) + 1);
      byKind.set(r.kind, k);
    });
    console.log(`\nBenign telehealth corpus: ${benign.length} requests (Spanish and English)`);
    for (const [kind, [fp, n, statuses]] of byKind) console.log(`  ${kind.padEnd(12)} blocked ${rate(fp, n).padStart(14)}   statuses: ${[...statuses].sort().map(([s, c]) => `${s}×${c}`).join(' ')}`);
    const fpRate = (100 * falsePositives) / benign.length;
    console.log(`  TOTAL false positives: ${rate(falsePositives, benign.length)}  (target ≤ 0.1%: ${fpRate <= 0.1 ? 'met' : 'NOT met'})`);
    const messages = benignSignalingMessages(SIGNALING_COUNT, appointmentIds);
    const refused = messages.map((m) => inspectWebSocketMessage(m)).filter((v) => v.blocked);
    console.log(`  signaling messages (inspectWebSocketMessage): blocked ${rate(refused.length, messages.length)}${refused.length ? `   rules: ${[...new Set(refused.flatMap((v) => v.rules))].join(' ')}` : ''}\n`);
  } finally {
    await app.close();
    await node.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();

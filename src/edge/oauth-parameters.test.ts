import { describe, expect, it } from 'vitest';
import { inspectRequest, type InspectedRequest } from './request-inspection.js';
import { edgeOAuthParameters, FHIR_BASE, oauthParameterGrammar } from './oauth-parameters.js';
import { FHIR_BASE_PATH } from '../records/fhir/fhir-routes.js';

const HEADERS: [string, string][] = [['host', 'telesalud.clinica.example'], ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0'], ['accept', '*/*']];
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

function get(route: string, params: Record<string, string>): InspectedRequest {
  return { method: 'GET', url: `${route}?${new URLSearchParams(params).toString()}`, httpVersion: '1.1', headers: HEADERS, body: undefined, route: { url: route, fhirSearch: false }, publicHost: 'telesalud.clinica.example', fhirBase: 'https://telesalud.clinica.example/fhir/R4' };
}
function post(route: string, type: 'form' | 'json', fields: Record<string, string>): InspectedRequest {
  const body = type === 'form' ? new URLSearchParams(fields).toString() : JSON.stringify(fields);
  return { method: 'POST', url: route, httpVersion: '1.1', headers: [...HEADERS, ['content-type', type === 'form' ? 'application/x-www-form-urlencoded' : 'application/json']], body: Buffer.from(body), route: { url: route, fhirSearch: false } };
}

/** What a native app (RFC 8252) and a backend service send: loopback redirect, SMART scopes, aud. */
const NATIVE_APP = {
  response_type: 'code',
  client_id: '5d0c4f0e-0a4c-4b7e-9f57-8d7d3f1f2b11',
  redirect_uri: 'http://127.0.0.1:51723/callback',
  scope: 'launch/patient patient/*.read patient/Observation.rs openid fhirUser offline_access',
  state: 'Zq3f9_x-T2',
  code_challenge: CHALLENGE,
  code_challenge_method: 'S256',
  aud: 'https://telesalud.clinica.example/fhir/R4',
};

describe('the shield on the OAuth routes (their known parameters, read by their grammar)', () => {
  it('lets a native app\'s loopback redirect URI, SMART scopes and aud through the authorization endpoints', () => {
    for (const redirect of ['http://127.0.0.1:51723/callback', 'http://[::1]:8080/cb?x=1', 'http://127.0.0.1/', 'org.example.diario:/oauth2redirect', 'https://diario.example.org/callback']) {
      for (const request of [get('/oauth2/authorize', { ...NATIVE_APP, redirect_uri: redirect }), get('/api/oauth/authorization', { ...NATIVE_APP, redirect_uri: redirect }), post('/api/oauth/authorization', 'json', { ...NATIVE_APP, redirect_uri: redirect, decision: 'approve' })]) {
        const verdict = inspectRequest(request);
        expect(verdict.score, `${request.method} ${request.route!.url} ${redirect}: ${verdict.rules.join(' ')}`).toBe(0);
      }
    }
    // The approval page itself (the web app's route), and sign-in leading back to it, carry the same request.
    const approvalPage = `/authorize?${new URLSearchParams(NATIVE_APP).toString()}`;
    expect(inspectRequest(get('/authorize', NATIVE_APP)).score).toBe(0);
    const signIn = inspectRequest(get('/sign-in', { next: approvalPage }));
    expect(signIn.score, signIn.rules.join(' ')).toBe(0);
    expect(inspectRequest(get('/sign-in', { next: `/authorize?${new URLSearchParams({ ...NATIVE_APP, state: "x' union select password from account--" }).toString()}` })).blocked).toBe(true);
    expect(inspectRequest(get('/sign-in', { next: `/elsewhere?${new URLSearchParams(NATIVE_APP).toString()}` })).blocked).toBe(true);
    const token = inspectRequest(post('/oauth2/token', 'form', { grant_type: 'authorization_code', code: 'Yp0d8v2-8hQwq_Kd9sLx3bT4mN7rC1eA0fG5iJ6kU2o', redirect_uri: 'http://127.0.0.1:51723/callback', code_verifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk', client_id: NATIVE_APP.client_id }));
    expect(token.score, token.rules.join(' ')).toBe(0);
    // A backend service asking for system scopes (the php-function-call rule read "system/*.read" as a call).
    for (const scope of ['system/*.read', 'system/Patient.read system/Appointment.write', 'system/Observation.rs']) {
      expect(inspectRequest(post('/oauth2/token', 'form', { grant_type: 'client_credentials', scope })).score).toBe(0);
      expect(inspectRequest(get('/oauth2/authorize', { ...NATIVE_APP, scope })).score).toBe(0);
    }
  });

  it('blocks the same payloads on every other route, where they are no OAuth parameter', () => {
    for (const route of ['/api/me/record-access', '/fhir/R4/Patient', '/api/oauth/other']) {
      const redirect = inspectRequest(get(route, { redirect_uri: 'http://127.0.0.1:51723/callback' }));
      expect(redirect.blocked, route).toBe(true);
      expect(redirect.families).toContain('rfi');
      const scope = inspectRequest(get(route, { scope: 'system/*.read' }));
      expect(scope.blocked, route).toBe(true);
      expect(scope.rules).toContain('php-function-call');
    }
    // A parameter the OAuth routes do not know is read as before there too.
    expect(inspectRequest(get('/oauth2/authorize', { ...NATIVE_APP, next: 'http://127.0.0.1:51723/callback' })).blocked).toBe(true);
    // And the same parameter names in a body of another route.
    expect(inspectRequest(post('/api/auth/sign-in', 'form', { redirect_uri: 'http://127.0.0.1:51723/callback' })).blocked).toBe(true);
  });

  it('still reads attacks inside the OAuth parameters: a value that does not fit its grammar is read whole', () => {
    const attacks: Record<string, string>[] = [
      { redirect_uri: 'http://169.254.169.254/latest/meta-data/' }, // SSRF to cloud metadata: http to no loopback address
      { redirect_uri: 'http://localhost:8080/cb' }, // localhost is not the loopback address (RFC 8252 §8.3)
      { redirect_uri: 'https://10.0.0.7/cb' }, // https to an address
      { redirect_uri: 'https://diario.example.org/cb?q=<script>alert(1)</script>' },
      { redirect_uri: "https://diario.example.org/cb?id=1' union select password from account--" },
      { redirect_uri: 'http://127.0.0.1:5000/../../../etc/passwd' },
      { state: "x' OR '1'='1" },
      { state: '<img src=x onerror=alert(1)>' },
      { scope: 'patient/*.read system(\'id\')' },
      { scope: 'system/*.read; cat /etc/passwd' },
      { code_challenge: '${jndi:ldap://198.51.100.7/a}' },
      { aud: 'http://127.0.0.1/fhir/R4' }, // aud is this server: never a loopback URL…
    ];
    for (const attack of attacks) {
      const verdict = inspectRequest(get('/oauth2/authorize', { ...NATIVE_APP, ...attack }));
      expect(verdict.blocked, JSON.stringify(attack)).toBe(true);
    }
    // …unless it is this server's own FHIR base URL: then its host may be any address (tested in full below).
    const bench = (aud: string) => inspectRequest({ ...get('/oauth2/authorize', { ...NATIVE_APP, aud }), publicHost: '127.0.0.1', fhirBase: 'https://127.0.0.1:8443/fhir/R4' });
    expect(bench('https://127.0.0.1:8443/fhir/R4').score).toBe(0);
    expect(bench('http://127.0.0.1:8443/fhir/R4').blocked).toBe(true);
    expect(bench('https://10.0.0.9:8443/fhir/R4').blocked).toBe(true);
    expect(bench('https://127.0.0.1:8443/fhir/R4/%3Cscript%3Ealert(1)%3C%2Fscript%3E').blocked).toBe(true);
    // The path and query of a well-formed redirect URI are still read by every rule.
    const inPath = inspectRequest(post('/oauth2/token', 'form', { grant_type: 'authorization_code', code: 'abc', redirect_uri: 'https://diario.example.org/cb/%3Cscript%3Ealert(1)%3C%2Fscript%3E' }));
    expect(inPath.blocked).toBe(true);
  });
});

describe('SMART\'s aud when the public URL is an address (a hospital reaching the service by IP)', () => {
  const BASES = ['https://10.1.2.3/fhir/R4', 'https://10.1.2.3:8443/fhir/R4', 'https://[fd00::7]/fhir/R4', 'https://[fd00:0:0:1::7]:8443/fhir/R4', 'https://telesalud.clinica.example:8443/fhir/R4'];
  const at = (fhirBase: string, request: InspectedRequest) => inspectRequest({ ...request, publicHost: new URL(fhirBase).hostname.replace(/^\[|\]$/g, ''), fhirBase });

  it('lets the service\'s own FHIR base URL through as aud on every authorization endpoint, whatever form its host takes', () => {
    expect(FHIR_BASE).toBe(FHIR_BASE_PATH);
    for (const fhirBase of BASES) {
      const app = { ...NATIVE_APP, redirect_uri: 'https://app.example/cb', scope: 'launch/patient patient/*.read offline_access openid', aud: fhirBase };
      for (const request of [get('/oauth2/authorize', app), get('/authorize', app), get('/api/oauth/authorization', app), post('/api/oauth/authorization', 'json', { ...app, decision: 'approve' }), get('/sign-in', { next: `/authorize?${new URLSearchParams(app).toString()}` })]) {
        const verdict = at(fhirBase, request);
        expect(verdict.score, `${fhirBase} ${request.method} ${request.route!.url}: ${verdict.rules.join(' ')}`).toBe(0);
      }
    }
  });

  it('still blocks a URL with an address for a host anywhere else: another address, another parameter, another route', () => {
    for (const fhirBase of BASES.slice(0, 4)) {
      const origin = new URL(fhirBase).origin;
      const blocked = (request: InspectedRequest) => {
        const verdict = at(fhirBase, request);
        expect(verdict.blocked, `${fhirBase} ${request.method} ${request.url}`).toBe(true);
        expect(verdict.families).toContain('rfi');
      };
      // aud is the FHIR base itself: not another path, scheme or port of the same address, nor another address.
      for (const aud of [`${origin}/fhir/R4/Patient`, `${origin}/`, fhirBase.replace('https:', 'http:'), `${fhirBase}?x=1`, 'https://10.1.2.4/fhir/R4', 'https://[fd00::8]/fhir/R4', 'https://169.254.169.254/fhir/R4']) {
        if (aud === fhirBase) continue;
        blocked(get('/oauth2/authorize', { ...NATIVE_APP, aud }));
      }
      if (!fhirBase.includes(':8443')) blocked(get('/oauth2/authorize', { ...NATIVE_APP, aud: fhirBase.replace('/fhir', ':9443/fhir') }));
      // The same URL in any other parameter of these routes, and as aud on any other route.
      blocked(get('/oauth2/authorize', { ...NATIVE_APP, aud: fhirBase, redirect_uri: `${origin}/cb` }));
      blocked(get('/oauth2/authorize', { ...NATIVE_APP, aud: fhirBase, next: fhirBase }));
      blocked(post('/oauth2/token', 'form', { grant_type: 'authorization_code', code: 'abc', aud: fhirBase }));
      for (const route of ['/api/me/record-access', '/fhir/R4/Patient', '/api/oauth/other']) blocked(get(route, { aud: fhirBase }));
    }
  });
});

describe('the OAuth routes\' model for the production edge (ModSecurity)', () => {
  /** Values a client may send, good and bad: each edge pattern must refuse what the shield\'s grammar refuses. */
  const SAMPLES: Record<string, string[]> = {
    redirect_uri: ['https://app.example/cb', 'https://app.example:8443/smart/redirect.html?x=1&y=2', 'http://127.0.0.1:51723/cb', 'http://[::1]:8080/cb', 'org.example.diario:/oauth2redirect', 'https://10.0.0.7/cb', 'http://localhost:8080/cb', 'https://printer.local/cb', 'https://app.example/cb?next=http://evil.example/', 'https://app.example/cb#frag', 'https://user:pw@app.example/cb', "https://app.example/cb?q=<script>", 'https://app.example/%2e%2e/cb', 'https://APP.example/cb', 'javascript:alert(1)', 'http://169.254.169.254/latest/meta-data/', 'https://app.example/cb?id=1%27'],
    scope: ['launch/patient patient/*.read offline_access openid', 'system/*.read', 'user/Patient.cruds', 'patient/*.read; cat /etc/passwd', "patient/*.read system('id')", ' openid', 'openid  fhirUser'],
    state: ['Zq3f9_x-T2', "x' OR '1'='1", '<img src=x>', '', 'a'.repeat(513)],
    grant_type: ['authorization_code', 'password', 'client_credentials '],
    code_challenge_method: ['S256', 'plain', 's256'],
  };

  it('holds every known parameter of the shield\'s model to a pattern the edge can run, but sign-in\'s nested request', () => {
    const edge = edgeOAuthParameters();
    const args = new Set(edge.map((p) => p.arg));
    for (const name of ['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'code_challenge', 'code_challenge_method', 'aud', 'problem', 'grant_type', 'code', 'code_verifier', 'refresh_token']) expect(args, name).toContain(name);
    for (const name of ['client_id', 'redirect_uri', 'scope', 'state', 'aud', 'decision']) expect(args, name).toContain(`json.${name}`);
    expect(args).not.toContain('next');
    const scope = edge.find((p) => p.arg === 'scope')!;
    expect(scope.paths.sort()).toEqual(['/api/oauth/authorization', '/authorize', '/oauth2/authorize', '/oauth2/token']);
    expect(edge.find((p) => p.arg === 'redirect_uri')!.excused).toBe('rfi');
    expect(edge.find((p) => p.arg === 'aud')!.equals).toBe('https://%{REQUEST_HEADERS.host}/fhir/R4');
    // Every pattern is anchored at both ends, and fits in a quoted ModSecurity argument.
    for (const p of edge) expect(p.pattern, p.arg).toMatch(/^\^[^"\n]*\$$/);
  });

  it('lets no value through at the edge that the shield\'s grammar would read whole', () => {
    const edge = new Map(edgeOAuthParameters().map((p) => [p.arg, p]));
    let fitting = 0;
    for (const [name, values] of Object.entries(SAMPLES)) {
      const route = name === 'grant_type' ? '/oauth2/token' : '/oauth2/authorize';
      const grammar = oauthParameterGrammar(route === '/oauth2/token' ? 'POST' : 'GET', route, name)!;
      for (const value of values) {
        const fits = new RegExp(edge.get(name)!.pattern).test(value);
        if (fits) fitting++;
        if (fits) expect(grammar(value, undefined), `${name}=${value}`).not.toBe(false);
      }
    }
    // The good ones do fit (the check above is not vacuous).
    expect(fitting).toBeGreaterThanOrEqual(12);
    for (const good of ['https://app.example/cb', 'http://127.0.0.1:51723/cb', 'org.example.diario:/oauth2redirect']) expect(new RegExp(edge.get('redirect_uri')!.pattern).test(good), good).toBe(true);
    for (const bad of ['https://10.0.0.7/cb', 'https://app.example/cb?next=http://evil.example/', 'http://169.254.169.254/latest/meta-data/']) expect(new RegExp(edge.get('redirect_uri')!.pattern).test(bad), bad).toBe(false);
    // aud: the FHIR base at a name or an address, nothing else (the edge also requires it name the request's Host).
    const aud = new RegExp(edge.get('aud')!.pattern);
    for (const base of ['https://10.1.2.3/fhir/R4', 'https://10.1.2.3:8443/fhir/R4', 'https://[fd00::7]:8443/fhir/R4', 'https://localhost:8443/fhir/R4', 'https://telesalud.clinica.example/fhir/R4']) expect(aud.test(base), base).toBe(true);
    for (const other of ['https://10.1.2.3/fhir/R4/Patient', 'http://10.1.2.3/fhir/R4', 'https://10.1.2.3/fhir/R4?x', 'https://a@10.1.2.3/fhir/R4', 'https://<x>/fhir/R4']) expect(aud.test(other), other).toBe(false);
  });
});

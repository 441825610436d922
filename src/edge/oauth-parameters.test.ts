import { describe, expect, it } from 'vitest';
import { inspectRequest, type InspectedRequest } from './request-inspection.js';

const HEADERS: [string, string][] = [['host', 'telesalud.clinica.example'], ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0'], ['accept', '*/*']];
const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

function get(route: string, params: Record<string, string>): InspectedRequest {
  return { method: 'GET', url: `${route}?${new URLSearchParams(params).toString()}`, httpVersion: '1.1', headers: HEADERS, body: undefined, route: { url: route, fhirSearch: false }, publicHost: 'telesalud.clinica.example' };
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
    // …unless this server's public host is an address (a test bench): then that host, over https, is its own.
    const bench = (aud: string) => inspectRequest({ ...get('/oauth2/authorize', { ...NATIVE_APP, aud }), publicHost: '127.0.0.1' });
    expect(bench('https://127.0.0.1:8443/fhir/R4').score).toBe(0);
    expect(bench('http://127.0.0.1:8443/fhir/R4').blocked).toBe(true);
    expect(bench('https://10.0.0.9:8443/fhir/R4').blocked).toBe(true);
    expect(bench('https://127.0.0.1:8443/fhir/R4/%3Cscript%3Ealert(1)%3C%2Fscript%3E').blocked).toBe(true);
    // The path and query of a well-formed redirect URI are still read by every rule.
    const inPath = inspectRequest(post('/oauth2/token', 'form', { grant_type: 'authorization_code', code: 'abc', redirect_uri: 'https://diario.example.org/cb/%3Cscript%3Ealert(1)%3C%2Fscript%3E' }));
    expect(inPath.blocked).toBe(true);
  });
});

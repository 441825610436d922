import { describe, it, expect } from 'vitest';
import { startTestNode } from '../src/test-support/test-node.js';
describe('smoke', () => {
  it('works', async () => {
    const n = await startTestNode('pglite');
    const r = await n.request({ method: 'POST', url: '/fhir/R4/Patient', payload: { resourceType: 'Patient', name: [{ family: 'Núñez', given: ['Ana'] }], gender: 'female', birthDate: '1980-02-03' } });
    console.log(r.statusCode, r.body);
    const id = r.json().id;
    const s = await n.request({ method: 'GET', url: '/fhir/R4/Patient?name=nun&birthdate=1980' });
    console.log(s.statusCode, s.body.slice(0, 500));
    await n.stop();
  });
});

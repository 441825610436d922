import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, patient } from '../test-support/fixtures.js';
import { startTestNode, type TestNode } from '../test-support/test-node.js';

const PROXY = '10.0.0.7';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * One request, one id, from the edge to the audit: the id nginx or HAProxy gave a request (their
 * X-Request-Id) becomes the node's request id, so the edge's access log, the node's log and the
 * audit entry can be joined. Only a trusted proxy's id is believed; anyone else gets the node's own.
 */
describe('request ids across the edge, the node and the audit', () => {
  let node: TestNode;
  let patientId: string;
  beforeAll(async () => {
    node = await startTestNode('pglite', { TELESALUD_TRUSTED_PROXIES: PROXY });
    patientId = (await create(node, patient('Identificador', ['Petición']))).id!;
  });
  afterAll(async () => node?.stop());

  const read = (remoteAddress: string, requestId: string) =>
    node.request({ method: 'GET', url: `/fhir/R4/Patient/${patientId}`, remoteAddress, headers: { 'x-request-id': requestId, 'x-forwarded-for': '198.51.100.23' } });
  const auditedIds = async () => {
    await node.ctx.audit.drain();
    const rows = await node.ctx.store.db.selectFrom('audit_event').select('request_id').where('action', '=', 'read').where('resource_id', '=', patientId).orderBy('seq').execute();
    return rows.map((r) => r.request_id);
  };

  it("keeps a trusted proxy's request id in the audit entry, and makes its own for anyone else or a malformed id", async () => {
    const edgeId = '6f1c2a9e8d7b4c1a9e2f0a1b2c3d4e5f';
    expect((await read(PROXY, edgeId)).statusCode).toBe(200);
    expect((await read('203.0.113.9', 'forged-by-a-client-0001')).statusCode).toBe(200);
    expect((await read(PROXY, 'not an id, with spaces')).statusCode).toBe(200);
    // One that tries to split the log line is an attack: the shield refuses the request.
    expect((await read(PROXY, 'bad id\r\nx-injected: 1')).statusCode).toBe(403);
    const ids = await auditedIds();
    expect(ids).toHaveLength(3);
    expect(ids[0]).toBe(edgeId);
    expect(ids[1]).toMatch(UUID);
    expect(ids[2]).toMatch(UUID);
  });
});

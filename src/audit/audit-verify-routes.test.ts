import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount, type NewAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { currentTotpCode } from '../auth/mfa/totp.js';
import { Repository } from '../records/repository.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';

describe.each(STORE_KINDS)('audit chain verification from the admin console (%s)', (kind) => {
  let node: TestNode;
  let admin: NewAccount;
  let clinician: NewAccount;
  let adminClient: AuthTestClient;

  beforeAll(async () => {
    node = await startTestNode(kind);
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'test', source: 'test' });
    admin = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'auditoria@clinica.example.org', role: 'admin', name: 'Marta Ruiz', password: PASSWORD });
    clinician = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: 'doctora@clinica.example.org', role: 'clinician', name: 'Lucía Fernández', password: PASSWORD });
    adminClient = new AuthTestClient(node);
    expect((await adminClient.signIn({ email: admin.email, password: PASSWORD, code: currentTotpCode(admin.totpSecret!) })).statusCode).toBe(200);
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('runs the same walk as `telesalud audit verify`: intact, then the first altered entry named', async () => {
    const none = await adminClient.get('/api/admin/audit/verify');
    expect(none.statusCode).toBe(404);
    expect(none.json().error).toBe('not-verified');

    const intact = await adminClient.post('/api/admin/audit/verify');
    expect(intact.statusCode).toBe(200);
    const report = intact.json();
    expect(report).toMatchObject({ ok: true, node: node.ctx.nodeId, warnings: [] });
    expect(report.entries).toBeGreaterThan(0);
    expect(report.firstProblem).toBeUndefined();
    expect(Date.parse(report.verifiedAt)).not.toBeNaN();
    expect((await adminClient.get('/api/admin/audit/verify')).json()).toEqual(report);

    // Someone with database access rewrites one entry behind the triggers' back.
    const target = Number((await sql<{ s: number }>`select min(seq) as s from audit_event where action = 'sign-in'`.execute(node.ctx.store.db)).rows[0]!.s);
    await node.ctx.store.db.transaction().execute(async (tx) => {
      await sql`alter table audit_event disable trigger audit_event_append_only`.execute(tx);
      await sql`update audit_event set outcome = 'failed' where seq = ${target}`.execute(tx);
      await sql`alter table audit_event enable trigger audit_event_append_only`.execute(tx);
    });
    const broken = (await adminClient.post('/api/admin/audit/verify')).json();
    expect(broken.ok).toBe(false);
    expect(broken.firstProblem).toMatchObject({ seq: target, kind: 'altered' });

    const runs = await node.ctx.store.db.selectFrom('audit_event').select(['actor', 'detail']).where('action', '=', 'audit-search').where('outcome', '=', 'success').execute();
    const verifications = runs.filter((r) => (r.detail as { view?: string }).view === 'chain-verification');
    expect(verifications.map((r) => [(r.detail as { ok: boolean }).ok, r.actor])).toEqual([
      [true, `account:${admin.id}`],
      [false, `account:${admin.id}`],
    ]);
  });

  it('is for administrators only: a clinician gets 403 and the attempt is audited', async () => {
    const doctor = new AuthTestClient(node);
    expect((await doctor.signIn({ email: clinician.email, password: PASSWORD, code: currentTotpCode(clinician.totpSecret!) })).statusCode).toBe(200);
    expect((await doctor.post('/api/admin/audit/verify')).statusCode).toBe(403);
    expect((await doctor.get('/api/admin/audit/verify')).statusCode).toBe(403);
    const denied = await node.ctx.store.db.selectFrom('audit_event').select('detail').where('action', '=', 'audit-search').where('outcome', '=', 'denied').execute();
    expect(denied.filter((d) => (d.detail as { view?: string }).view === 'chain-verification')).toHaveLength(2);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startTestNode, STORE_KINDS, type TestNode } from '../../test-support/test-node.js';
import { create, ids, patient, practitioner, search } from '../../test-support/fixtures.js';
import { Repository } from '../repository.js';
import { parseSearchRequest } from './search-request.js';
import * as searchStringRecency from '../../db/migrations/0021-search-string-recency.js';

// A string search in the default order sorts by the last_updated copy search_string keeps
// (migration 0021): these pin down that it always agrees with the resources' own.
describe.each(STORE_KINDS)('string search in last_updated order (%s)', (kind) => {
  let node: TestNode;
  const updatedAt = async (id: string) => (await node.request({ method: 'GET', url: `/fhir/R4/Patient/${id}` })).json().meta.lastUpdated as string;
  const put = async (resource: any) => {
    const res = await node.request({ method: 'PUT', url: `/fhir/R4/Patient/${resource.id}`, payload: resource, headers: { 'if-match': `W/"${resource.meta.versionId}"` } });
    expect(res.statusCode).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    node = await startTestNode(kind);
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('lists name matches newest first, moves an updated one to the front, pages and counts in that order', async () => {
    const made = [];
    for (const given of ['Uno', 'Dos', 'Tres', 'Cuatro']) made.push(await create(node, patient('Recencia', [given])));
    const [uno, dos, tres, cuatro] = made;
    expect(ids(await search(node, 'Patient?name=recen'))).toEqual([cuatro.id, tres.id, dos.id, uno.id]);

    await put({ ...dos, gender: 'female' });
    expect(ids(await search(node, 'Patient?family=RECENCIA'))).toEqual([dos.id, cuatro.id, tres.id, uno.id]);

    const first = await search(node, 'Patient?name=recen&_count=3');
    expect(ids(first)).toEqual([dos.id, cuatro.id, tres.id]);
    const next = first.link.find((l: any) => l.relation === 'next').url as string;
    const second = await search(node, `Patient${next.slice(next.indexOf('?'))}`);
    expect(ids(second)).toEqual([uno.id]);
    expect(second.link.map((l: any) => l.relation)).not.toContain('next');

    expect(ids(await search(node, 'Patient?name=recen&_sort=_lastUpdated'))).toEqual([uno.id, tres.id, cuatro.id, dos.id]);
    const counted = await search(node, 'Patient?name=recen&_total=accurate&_count=2');
    expect(counted.total).toBe(4);
    expect(ids(counted)).toEqual([dos.id, cuatro.id]);
  });

  it('returns each match once, with its content, when several of its strings match', async () => {
    const twice = await create(node, patient('Duplo Duplo', ['Duplicada'], { name: [{ family: 'Duplo Duplo', given: ['Duplicada'] }, { family: 'Duplovic', given: ['Dupla'] }] }));
    const bundle = await search(node, 'Patient?name=dupl');
    expect(ids(bundle)).toEqual([twice.id]);
    expect(bundle.entry[0].resource).toEqual(twice);
  });

  it('applies the other conditions and _include on the page it orders', async () => {
    const doctor = await create(node, practitioner('Filtrada'));
    const woman = await create(node, patient('Filtro', ['Ana'], { gender: 'female', generalPractitioner: [{ reference: `Practitioner/${doctor.id}` }] }));
    await create(node, patient('Filtro', ['Luis'], { gender: 'male' }));
    const bundle = await search(node, 'Patient?name=filtro&gender=female&_include=Patient:general-practitioner');
    expect(ids(bundle)).toEqual([woman.id]);
    expect(ids(bundle, 'include')).toEqual([doctor.id]);
  });

  it('shows a patient only what the access policy lets them see', async () => {
    const mine = await create(node, patient('Privada', ['Mía']));
    await create(node, patient('Privada', ['Ajena']));
    const asPatient = new Repository(node.ctx.store.db, node.ctx.audit, { ref: `Patient/${mine.id}`, scope: { kind: 'patient-compartment', patients: [`Patient/${mine.id}`] } }, { requestId: 'test', source: 'test' });
    const result = await asPatient.search(parseSearchRequest('Patient', { name: 'privada' }));
    expect(result.resources.map((r) => r.id)).toEqual([mine.id]);
  });

  it('keeps the copy of last_updated equal to the resource row it belongs to', async () => {
    const created = await create(node, patient('Copia', ['Exacta']));
    await put({ ...created, gender: 'male' });
    const rows = await sql<{ same: boolean }>`select s.last_updated = p.last_updated as same from search_string s join patient p on p.id = s.resource_id where s.resource_id = ${created.id}`.execute(node.ctx.store.db);
    expect(rows.rows.length).toBeGreaterThan(0);
    expect(rows.rows.every((r) => r.same)).toBe(true);
  });

  it('fills last_updated for search strings written by a node of the previous version (without it)', async () => {
    const older = await create(node, patient('Anterior', ['Vieja']));
    const newer = await create(node, patient('Anterior', ['Nueva']));
    // What the previous version writes on an update: the strings again, without last_updated.
    await sql`delete from search_string where resource_id = ${older.id}`.execute(node.ctx.store.db);
    await sql`update patient set last_updated = now() + interval '1 minute' where id = ${older.id}`.execute(node.ctx.store.db);
    await sql`insert into search_string (resource_type, resource_id, code, value) values ('Patient', ${older.id}, 'name', 'anterior'), ('Patient', ${older.id}, 'family', 'anterior')`.execute(node.ctx.store.db);
    const copied = await sql<{ last_updated: Date | null }>`select last_updated from search_string where resource_id = ${older.id}`.execute(node.ctx.store.db);
    expect(copied.rows.every((r) => r.last_updated !== null)).toBe(true);
    expect(ids(await search(node, 'Patient?name=anterior'))).toEqual([older.id, newer.id]);
    expect(await updatedAt(newer.id)).toBe(newer.meta.lastUpdated);
  });

  it('migrates existing search strings: 0021 copies each resource\'s last_updated', async () => {
    const a = await create(node, patient('Migrada', ['Primera']));
    const b = await create(node, patient('Migrada', ['Segunda']));
    await searchStringRecency.down(node.ctx.store.db);
    await searchStringRecency.up(node.ctx.store.db);
    const missing = await sql<{ n: number }>`select count(*)::int as n from search_string where last_updated is null`.execute(node.ctx.store.db);
    expect(missing.rows[0]!.n).toBe(0);
    expect(ids(await search(node, 'Patient?name=migrada'))).toEqual([b.id, a.id]);
  });
});

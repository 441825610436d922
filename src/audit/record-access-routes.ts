import type { FastifyInstance } from 'fastify';
import { FhirError, forbidden } from '../records/fhir/outcomes.js';
import type { Repository } from '../records/repository.js';
import { parseSearchRequest } from '../records/search/search-request.js';
import type { AppContext } from '../server/app-context.js';
import { findAuditRows, paging } from './audit-search.js';

const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });
const PRACTITIONER_RE = /^Practitioner\/([0-9a-f-]{36})$/;

/**
 * What sort of actor an entry names, as a code the portal words (portal.access.kinds): the patient
 * themselves (through an app), a staff account, an integration, the installation's admin token,
 * telesalud itself, or an actor the trail names in no way we know.
 */
export type ActorKind = 'self' | 'staff' | 'integration' | 'installation-token' | 'system' | 'unknown';

export interface RecordAccess {
  when: string;
  action: string;
  /** `Type/id` of what was touched, when the entry names one. */
  resource?: string;
  outcome: string;
  /**
   * `display` is a person's or app's own name, never a word of ours: where there is none the page
   * words `kind` (and `role`) in the reader's language.
   */
  who: { role: string; kind: ActorKind; display?: string; reference?: string };
  /** The app the access was made through (an OAuth client acting for `who`): "Ana López through Diario de salud". */
  through?: { client: string; name?: string };
}

/**
 * "Who accessed my record": a signed-in patient sees every entry of the audit trail about their
 * record made by someone else — staff, administrators, integrations, the system — newest first.
 * Their own accesses are left out (the list answers what others did), except those made through an
 * app they authorized: what an app did in their name is worth seeing. Viewing it is audited too.
 */
export async function recordAccessRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  app.get('/api/me/record-access', { schema: { querystring: { type: 'object', additionalProperties: false, properties: { _count: text(4), before: text(17) } } } }, async (request, reply) => {
    const account = request.session?.account;
    if (!account || account.role !== 'patient' || !account.fhirRef?.startsWith('Patient/')) throw forbidden('this list is for patients signed in to their own record');
    const q = request.query as { _count?: string; before?: string };
    const { count, beforeSeq } = paging(q._count, q.before, 20, 100);
    const own = [account.fhirRef, `account:${account.id}`];
    await ctx.audit.settled(); // this node's latest accesses, committed behind their answers
    const rows = await findAuditRows(ctx.store.db, { patient: account.fhirRef, excludeActors: own, keepThroughClient: true, ...(beforeSeq !== undefined ? { beforeSeq } : {}) }, { limit: count + 1, order: 'newest' });
    const page = rows.slice(0, count);
    const who = await describeActors(ctx, request.records, [...new Set(page.map((r) => r.actor))], { refs: own, name: await ownName(ctx, account.id) });
    const apps = await clientNames(ctx, page.map(throughClient).filter((c): c is string => c !== undefined));
    await ctx.audit.record({ actor: request.actor!.ref, action: 'audit-search', outcome: 'success', patient: account.fhirRef, source: request.ip, requestId: request.id, detail: { view: 'record-access', results: page.length } });
    const entries: RecordAccess[] = page.map((r) => ({
      when: new Date(r.recorded).toISOString(),
      action: r.action,
      ...(r.resource_type && r.resource_id ? { resource: `${r.resource_type}/${r.resource_id}` } : {}),
      outcome: r.outcome,
      who: who.get(r.actor)!,
      ...throughApp(throughClient(r), apps),
    }));
    return reply.header('Cache-Control', 'no-store').send({ entries, ...(rows.length > count ? { next: { _count: count, before: page.at(-1)!.seq } } : {}) });
  });
}

/** Role and name of each actor: staff by their Practitioner (as the patient may read it) or account, integrations by client name. */
async function describeActors(ctx: AppContext, records: Repository, actors: string[], self: { refs: string[]; name: string | undefined }): Promise<Map<string, RecordAccess['who']>> {
  const db = ctx.store.db;
  const described = new Map<string, RecordAccess['who']>();
  const accountIds = actors.flatMap((a) => (a.startsWith('account:') ? [a.slice('account:'.length)] : [])).filter(isUuid);
  const fhirRefs = actors.filter((a) => PRACTITIONER_RE.test(a));
  const accounts = accountIds.length + fhirRefs.length
    ? await db
        .selectFrom('account')
        .select(['id', 'role', 'display_name', 'fhir_ref'])
        .where((eb) => eb.or([...(accountIds.length ? [eb('id', 'in', accountIds)] : []), ...(fhirRefs.length ? [eb('fhir_ref', 'in', fhirRefs)] : [])]))
        .execute()
    : [];
  const clientIds = actors.flatMap((a) => (a.startsWith('client:') ? [a.slice('client:'.length)] : []));
  const clients = clientIds.length ? await db.selectFrom('oauth_client').select(['id', 'name']).where('id', 'in', clientIds).execute() : [];
  const names = await practitionerNames(records, fhirRefs);

  for (const actor of actors) {
    if (self.refs.includes(actor)) {
      described.set(actor, { role: 'patient', kind: 'self', ...(self.name ? { display: self.name } : {}) });
      continue;
    }
    const practitioner = PRACTITIONER_RE.test(actor);
    const acct = accounts.find((a) => (practitioner ? a.fhir_ref === actor : `account:${a.id}` === actor));
    const display = practitioner ? (names.get(actor) ?? acct?.display_name) : acct?.display_name;
    if (practitioner) described.set(actor, { role: acct?.role ?? 'clinician', kind: 'staff', ...(display ? { display } : {}), reference: actor });
    else if (acct) described.set(actor, { role: acct.role, kind: 'staff', ...(display ? { display } : {}) });
    else if (actor.startsWith('client:')) {
      const name = clients.find((c) => `client:${c.id}` === actor)?.name;
      described.set(actor, { role: 'integration', kind: 'integration', ...(name ? { display: name } : {}) });
    }
    else if (actor === 'admin-token') described.set(actor, { role: 'admin', kind: 'installation-token' });
    // The product's own name, the same in every language.
    else if (actor === 'system' || actor.startsWith('system:')) described.set(actor, { role: 'system', kind: 'system', display: 'telesalud' });
    else described.set(actor, { role: 'other', kind: 'unknown' });
  }
  return described;
}

async function ownName(ctx: AppContext, accountId: string): Promise<string | undefined> {
  const row = await ctx.store.db.selectFrom('account').select('display_name').where('id', '=', accountId).executeTakeFirst();
  return row?.display_name ?? undefined;
}

const throughClient = (row: { detail: unknown }): string | undefined => {
  const client = (row.detail as { client?: unknown } | null)?.client;
  return typeof client === 'string' && client.startsWith('client:') ? client : undefined;
};

function throughApp(client: string | undefined, names: Map<string, string>): Pick<RecordAccess, 'through'> {
  // A client whose row is gone has no name: the page says "an app" in the reader's language.
  const name = client ? names.get(client) : undefined;
  return client ? { through: { client, ...(name ? { name } : {}) } } : {};
}

async function clientNames(ctx: AppContext, clients: string[]): Promise<Map<string, string>> {
  const ids = [...new Set(clients.map((c) => c.slice('client:'.length)))];
  if (ids.length === 0) return new Map();
  const rows = await ctx.store.db.selectFrom('oauth_client').select(['id', 'name']).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [`client:${r.id}`, r.name]));
}

/** Names of the Practitioners, read through the patient's own repository (so this lookup is audited like any other). */
async function practitionerNames(records: Repository, refs: string[]): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  if (refs.length === 0) return names;
  try {
    const ids = refs.map((r) => r.slice('Practitioner/'.length));
    const result = await records.search(parseSearchRequest('Practitioner', { _id: ids.join(','), _count: String(ids.length) }));
    for (const p of result.resources) {
      const name = humanName((p as { name?: HumanName[] }).name);
      if (name) names.set(`Practitioner/${p.id}`, name);
    }
  } catch (err) {
    // A policy that hides Practitioners from patients leaves the account's name as the fallback.
    if (!(err instanceof FhirError)) throw err;
  }
  return names;
}

interface HumanName {
  use?: string;
  text?: string;
  prefix?: string[];
  given?: string[];
  family?: string;
}

function humanName(names: HumanName[] | undefined): string | undefined {
  const name = names?.find((n) => n.use === 'official') ?? names?.[0];
  if (!name) return undefined;
  return name.text ?? ([...(name.prefix ?? []), ...(name.given ?? []), name.family].filter(Boolean).join(' ') || undefined);
}

const isUuid = (v: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);

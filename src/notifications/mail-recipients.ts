import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { resourceTypeDef } from '../records/resource-types.js';
import { isResourceId } from '../records/search/search-request.js';
import { MAIL_LANGUAGES, type MailLanguage } from './mail-templates.js';

/** Where a patient's e-mail goes and in which language it is written. */
export interface PatientRecipient {
  email: string;
  language: MailLanguage;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,189}\.[^\s@]{2,63}$/;

/**
 * The patient's address — their account's (the one their invitation reached) first, else the
 * e-mail in their record — and their language: Patient.communication (the preferred one first),
 * else the clinic's default. Undefined when the patient has no usable address or a disabled account.
 */
export async function patientRecipient(db: Kysely<Database>, patientRef: string, defaultLanguage: MailLanguage): Promise<PatientRecipient | undefined> {
  const id = patientRef.slice('Patient/'.length);
  if (!patientRef.startsWith('Patient/') || !isResourceId(id)) return undefined;
  const table = resourceTypeDef('Patient')!.table;
  const row = (await (db as unknown as Kysely<any>).selectFrom(table).select(['content', 'deleted']).where('id', '=', id).executeTakeFirst()) as { content: any; deleted: boolean } | undefined;
  if (!row || row.deleted || row.content?.active === false) return undefined;
  const account = await db.selectFrom('account').select(['email', 'status']).where('fhir_ref', '=', patientRef).executeTakeFirst();
  if (account && account.status !== 'active') return undefined;
  const email = account?.email ?? recordEmail(row.content);
  if (!email || !EMAIL.test(email)) return undefined;
  return { email, language: preferredLanguage(row.content) ?? defaultLanguage };
}

function recordEmail(patient: any): string | undefined {
  const emails = (Array.isArray(patient?.telecom) ? patient.telecom : []).filter((t: any) => t?.system === 'email' && typeof t.value === 'string' && t.use !== 'old' && !t.period?.end);
  emails.sort((a: any, b: any) => (a.rank ?? 1e9) - (b.rank ?? 1e9));
  return emails[0]?.value;
}

/** The first language of Patient.communication (preferred ones first) that e-mails are written in: `es-MX` → es. */
export function preferredLanguage(patient: any): MailLanguage | undefined {
  const communication = Array.isArray(patient?.communication) ? [...patient.communication] : [];
  communication.sort((a: any, b: any) => Number(b?.preferred === true) - Number(a?.preferred === true));
  for (const c of communication) {
    const codes = [...(Array.isArray(c?.language?.coding) ? c.language.coding.map((x: any) => x?.code) : []), c?.language?.text];
    for (const code of codes) {
      const base = typeof code === 'string' ? code.trim().toLowerCase().split(/[-_]/)[0] : undefined;
      if (base && (MAIL_LANGUAGES as readonly string[]).includes(base)) return base as MailLanguage;
    }
  }
  return undefined;
}

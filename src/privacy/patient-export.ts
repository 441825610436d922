import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { DocumentIntegrityError, openDocument } from '../documents/envelope-crypto.js';
import type { KeyRing } from '../documents/key-ring.js';
import { compartmentSearch, COMPARTMENT_TYPES } from '../records/fhir/everything.js';
import type { Repository } from '../records/repository.js';
import type { FhirResource } from '../records/resource-types.js';

/** Resources fetched (and held) per search while the export streams. */
const PAGE_SIZE = 200;
/** Bytes of a document encoded per chunk: a multiple of 3, so the base64 pieces join without padding. */
const BASE64_CHUNK_BYTES = 3 * 16 * 1024;
const CONTENT_URL_RE = /\/api\/documents\/([0-9a-fA-F-]{36})\/content$/;

/** What an export held: written into its audit entry. */
export interface ExportCounts {
  resources: Record<string, number>;
  documents: number;
  documentBytes: number;
  /** Documents whose sealed bytes failed to open: listed in the bundle as an OperationOutcome instead. */
  documentsFailed: number;
}

export interface ExportSource {
  /** The caller's repository: every page is a search the access policy narrows and the audit records. */
  records: Repository;
  /** For the documents' sealed bytes, read only for DocumentReferences the repository returned. */
  db: Kysely<Database>;
  keyRing: KeyRing;
  /** `<public URL>/fhir/R4`, for fullUrl. */
  fhirBaseUrl: string;
  /** The Patient as the repository read it for this caller. */
  patient: FhirResource;
  /** Called with the id of a document that failed its integrity check (log ids only). */
  onDocumentFailed?: (documentId: string) => void;
}

export function emptyCounts(): ExportCounts {
  return { resources: {}, documents: 0, documentBytes: 0, documentsFailed: 0 };
}

/**
 * The patient's whole record as a FHIR `collection` Bundle, produced as text piece by piece so a
 * large record never sits in memory: at most one page of resources and one document at a time.
 * Each document's bytes follow its DocumentReference as a Binary (base64), and the exported
 * DocumentReference points at it (`attachment.url` = the Binary's fullUrl). `counts` fills in as
 * the pieces are produced, so the caller can audit what actually left, even after an abort.
 */
export async function* patientExportBundle(source: ExportSource, counts: ExportCounts, now = new Date()): AsyncGenerator<string> {
  const patientRef = `Patient/${source.patient.id}`;
  yield `{"resourceType":"Bundle","type":"collection","timestamp":${JSON.stringify(now.toISOString())},"entry":[`;
  let first = true;
  const separator = () => (first ? ((first = false), '') : ',');

  for (const type of COMPARTMENT_TYPES) {
    if (type === 'Patient') {
      counts.resources.Patient = 1;
      yield separator() + entryJson(source.fhirBaseUrl, source.patient);
      continue;
    }
    for (let offset = 0; ; offset += PAGE_SIZE) {
      const page = await source.records.search(compartmentSearch(type, { patient: patientRef, count: PAGE_SIZE, offset }));
      for (const resource of page.resources) {
        counts.resources[type] = (counts.resources[type] ?? 0) + 1;
        if (type === 'DocumentReference') yield* documentWithContent(source, resource, counts, separator);
        else yield separator() + entryJson(source.fhirBaseUrl, resource);
      }
      if (!page.hasMore) break;
    }
  }
  yield ']}';
}

async function* documentWithContent(source: ExportSource, documentReference: FhirResource, counts: ExportCounts, separator: () => string): AsyncGenerator<string> {
  const id = documentReference.id!;
  const blob = await source.db.selectFrom('document_blob').selectAll().where('id', '=', id).executeTakeFirst();
  if (!blob) {
    // A DocumentReference written through the FHIR API with an external URL has no stored bytes.
    yield separator() + entryJson(source.fhirBaseUrl, documentReference);
    return;
  }
  let bytes: Buffer;
  try {
    bytes = openDocument(source.keyRing, { kekId: blob.kek_id, wrappedKey: Buffer.from(blob.wrapped_key), nonce: Buffer.from(blob.nonce), tag: Buffer.from(blob.tag), ciphertext: Buffer.from(blob.ciphertext) }, id);
  } catch (err) {
    if (!(err instanceof DocumentIntegrityError)) throw err;
    counts.documentsFailed += 1;
    source.onDocumentFailed?.(id);
    yield separator() + entryJson(source.fhirBaseUrl, documentReference);
    yield separator() + JSON.stringify({
      resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: `the content of DocumentReference/${id} failed its integrity check and is not included`, expression: [`DocumentReference/${id}`] }] },
    });
    return;
  }
  // The bytes leave only after their download is audited, as GET /api/documents/<id>/content does.
  await source.records.recordAccess('download', documentReference);
  const binaryUrl = `urn:uuid:${randomUUID()}`;
  const pointed = withContentAt(documentReference, id, binaryUrl);
  yield separator() + entryJson(source.fhirBaseUrl, pointed);
  const head = { fullUrl: binaryUrl, resource: { resourceType: 'Binary', contentType: blob.content_type, securityContext: { reference: `DocumentReference/${id}` } } };
  const opening = JSON.stringify(head);
  // …,"securityContext":{…}}} → insert "data":" before the two closing braces, then stream the base64.
  yield `${separator()}${opening.slice(0, -2)},"data":"`;
  for (let at = 0; at < bytes.length; at += BASE64_CHUNK_BYTES) yield bytes.subarray(at, at + BASE64_CHUNK_BYTES).toString('base64');
  yield '"}}';
  counts.documents += 1;
  counts.documentBytes += bytes.length;
}

/** The DocumentReference as exported: the attachment that held the stored bytes now names the Binary beside it. */
function withContentAt(documentReference: FhirResource, id: string, binaryUrl: string): FhirResource {
  const content = Array.isArray(documentReference.content) ? documentReference.content : [];
  return {
    ...documentReference,
    content: content.map((c: any) => {
      const url = c?.attachment?.url;
      const m = typeof url === 'string' ? CONTENT_URL_RE.exec(url) : null;
      return m && m[1]!.toLowerCase() === id.toLowerCase() ? { ...c, attachment: { ...c.attachment, url: binaryUrl } } : c;
    }),
  };
}

function entryJson(baseUrl: string, resource: FhirResource): string {
  return JSON.stringify({ fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}`, resource });
}

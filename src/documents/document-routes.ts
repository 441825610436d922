import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound, FhirError, operationOutcome } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import { DOCUMENT_CATEGORY_SYSTEM } from '../records/telesalud-codes.js';
import { ACCEPTED_TYPES, acceptedType } from './content-types.js';
import { DocumentIntegrityError, openDocument, sealDocument } from './envelope-crypto.js';

const uuid = { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' };

/**
 * Clinical attachments. Upload seals the bytes (AES-256-GCM, one key per document, wrapped
 * by the key-encryption key) and creates the DocumentReference in the same transaction;
 * download goes through the record's access check and audit before anything is decrypted.
 */
export async function documentRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  for (const type of ACCEPTED_TYPES) {
    app.addContentTypeParser(type.contentType, { parseAs: 'buffer', bodyLimit: ctx.config.maxUploadBytes }, (_req, body, done) => done(null, body));
  }

  app.post(
    '/api/documents',
    {
      bodyLimit: ctx.config.maxUploadBytes,
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['patient', 'title'],
          properties: {
            patient: uuid,
            title: { type: 'string', minLength: 1, maxLength: 200 },
            encounter: uuid,
            category: { type: 'string', enum: ['clinical-note', 'imaging', 'laboratory', 'referral', 'consent', 'other'] },
          },
        },
      },
    },
    async (request: FastifyRequest, reply) => {
      const query = request.query as { patient: string; title: string; encounter?: string; category?: string };
      // The access policy decides uploads like any create; asked first, so a refused upload reads nothing.
      await request.records.requireAccess('DocumentReference', 'create');
      const type = acceptedType(request.headers['content-type']);
      const bytes = request.body;
      if (!type || !Buffer.isBuffer(bytes)) throw new FhirError(415, operationOutcome('not-supported', `accepted types: ${ACCEPTED_TYPES.map((t) => t.contentType).join(', ')}`));
      if (bytes.length === 0) throw badRequest('the document is empty');
      if (!type.looksRight(bytes)) throw badRequest(`the content is not a valid ${type.contentType} file`);
      // The patient must exist and be visible to the caller (audited as a read).
      await request.records.read('Patient', query.patient);

      const id = randomUUID();
      const sealed = sealDocument(ctx.keyRing, bytes, id);
      const now = new Date().toISOString();
      const documentReference = await request.records.create(
        {
          resourceType: 'DocumentReference',
          status: 'current',
          subject: { reference: `Patient/${query.patient}` },
          date: now,
          ...(query.category ? { category: [{ coding: [{ system: DOCUMENT_CATEGORY_SYSTEM, code: query.category }] }] } : {}),
          description: query.title,
          content: [
            {
              attachment: {
                contentType: type.contentType,
                size: bytes.length,
                hash: createHash('sha1').update(bytes).digest('base64'),
                title: query.title,
                url: `${ctx.config.publicUrl}/api/documents/${id}/content`,
                creation: now,
              },
            },
          ],
          ...(query.encounter ? { context: { encounter: [{ reference: `Encounter/${query.encounter}` }] } } : {}),
        },
        {
          id,
          alsoInTransaction: async (tx) => {
            await tx
              .insertInto('document_blob')
              .values({
                id,
                content_type: type.contentType,
                size: bytes.length,
                sha256: createHash('sha256').update(bytes).digest('hex'),
                kek_id: sealed.kekId,
                wrapped_key: sealed.wrappedKey,
                nonce: sealed.nonce,
                tag: sealed.tag,
                ciphertext: sealed.ciphertext,
              })
              .execute();
          },
        },
      );
      await request.records.recordAccess('upload', documentReference);
      return reply.code(201).type('application/fhir+json; charset=utf-8').header('Location', `${ctx.config.publicUrl}/fhir/R4/DocumentReference/${id}`).send(documentReference);
    },
  );

  app.get('/api/documents/:id/content', { schema: { params: { type: 'object', properties: { id: uuid }, required: ['id'] } } }, async (request, reply) => {
    const { id } = request.params as { id: string };
    // The bytes are only reachable through the DocumentReference read: the same policy, the same audit.
    const documentReference = await request.records.read('DocumentReference', id);
    const blob = await ctx.store.db.selectFrom('document_blob').selectAll().where('id', '=', id).executeTakeFirst();
    if (!blob) throw notFound(`DocumentReference/${id} has no stored content`);
    let plaintext: Buffer;
    try {
      plaintext = openDocument(ctx.keyRing, { kekId: blob.kek_id, wrappedKey: Buffer.from(blob.wrapped_key), nonce: Buffer.from(blob.nonce), tag: Buffer.from(blob.tag), ciphertext: Buffer.from(blob.ciphertext) }, id);
    } catch (err) {
      if (err instanceof DocumentIntegrityError) {
        request.log.error({ documentId: id }, 'document failed its integrity check');
        throw new FhirError(500, operationOutcome('exception', 'this document failed its integrity check and can not be served'));
      }
      throw err;
    }
    await request.records.recordAccess('download', documentReference);
    const extension = acceptedType(blob.content_type)?.extension ?? 'bin';
    return reply
      .type(blob.content_type)
      .headers({
        'Cache-Control': 'no-store',
        'Content-Disposition': `attachment; filename="document-${id}.${extension}"`,
        'X-Content-Type-Options': 'nosniff',
      })
      .send(plaintext);
  });
}

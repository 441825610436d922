import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** A guest link lives a day unless the host asks otherwise, and never more than three. */
export const GUEST_LINK_DEFAULT_MINUTES = 24 * 60;
export const GUEST_LINK_MAX_MINUTES = 72 * 60;

const hashToken = (token: string) => createHash('sha256').update(token).digest();

export interface GuestLink {
  id: string;
  appointmentId: string;
  label: string;
  expires: Date;
  usedAt: Date | undefined;
}

/** UTC day of a timestamp, the key of the daily traffic total. */
export const utcDay = (at: number): string => new Date(at).toISOString().slice(0, 10);

/**
 * What of consultations the database holds: guest links (only the token's SHA-256), the host's
 * invitations of a second clinician, and the daily traffic total every node adds to.
 */
export class ConsultStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Returns the token once; only its hash is kept. */
  async createGuestLink(input: { appointmentId: string; label: string; createdBy: string; minutes: number }, now = new Date()): Promise<{ token: string; id: string; expires: Date }> {
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const expires = new Date(now.getTime() + input.minutes * 60_000);
    await this.db
      .insertInto('consult_guest_link')
      .values({ id, token_hash: hashToken(token), appointment_id: input.appointmentId, label: input.label, created_by: input.createdBy, created: now, expires, used_at: null })
      .execute();
    return { token, id, expires };
  }

  async findGuestLink(token: string): Promise<GuestLink | undefined> {
    const row = await this.db.selectFrom('consult_guest_link').select(['id', 'appointment_id', 'label', 'expires', 'used_at']).where('token_hash', '=', hashToken(token)).executeTakeFirst();
    if (!row) return undefined;
    return { id: row.id, appointmentId: row.appointment_id, label: row.label, expires: new Date(row.expires), usedAt: row.used_at ? new Date(row.used_at) : undefined };
  }

  /** Marks an unused, unexpired link used; false when another join (on any node) got there first or it expired. */
  async consumeGuestLink(id: string, now = new Date()): Promise<boolean> {
    const result = await this.db.updateTable('consult_guest_link').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).where('expires', '>', now).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Gives a consumed link back when the join it was consumed for could not happen after all (room filled meanwhile). */
  async releaseGuestLink(id: string): Promise<void> {
    await this.db.updateTable('consult_guest_link').set({ used_at: null }).where('id', '=', id).execute();
  }

  async invite(appointmentId: string, practitionerRef: string, invitedBy: string, now = new Date()): Promise<void> {
    await this.db
      .insertInto('consult_invitation')
      .values({ appointment_id: appointmentId, practitioner_ref: practitionerRef, invited_by: invitedBy, created: now })
      .onConflict((oc) => oc.columns(['appointment_id', 'practitioner_ref']).doNothing())
      .execute();
  }

  async isInvited(appointmentId: string, practitionerRef: string): Promise<boolean> {
    const row = await this.db.selectFrom('consult_invitation').select('appointment_id').where('appointment_id', '=', appointmentId).where('practitioner_ref', '=', practitionerRef).executeTakeFirst();
    return row !== undefined;
  }

  /** Adds to the day's totals (relayed: the part of them over TURN relays); concurrent nodes add, never overwrite. */
  async addTraffic(day: string, sentBytes: number, receivedBytes: number, relayed: { sent: number; received: number } = { sent: 0, received: 0 }): Promise<void> {
    await this.db
      .insertInto('consult_traffic_daily')
      .values({ day, sent_bytes: sentBytes, received_bytes: receivedBytes, relayed_sent_bytes: relayed.sent, relayed_received_bytes: relayed.received })
      .onConflict((oc) =>
        oc.column('day').doUpdateSet({
          sent_bytes: sql`consult_traffic_daily.sent_bytes + excluded.sent_bytes`,
          received_bytes: sql`consult_traffic_daily.received_bytes + excluded.received_bytes`,
          relayed_sent_bytes: sql`consult_traffic_daily.relayed_sent_bytes + excluded.relayed_sent_bytes`,
          relayed_received_bytes: sql`consult_traffic_daily.relayed_received_bytes + excluded.relayed_received_bytes`,
        }),
      )
      .execute();
  }

  async trafficOn(day: string): Promise<{ sentBytes: number; receivedBytes: number; relayedSentBytes: number; relayedReceivedBytes: number }> {
    const row = await this.db.selectFrom('consult_traffic_daily').select(['sent_bytes', 'received_bytes', 'relayed_sent_bytes', 'relayed_received_bytes']).where('day', '=', day).executeTakeFirst();
    return { sentBytes: Number(row?.sent_bytes ?? 0), receivedBytes: Number(row?.received_bytes ?? 0), relayedSentBytes: Number(row?.relayed_sent_bytes ?? 0), relayedReceivedBytes: Number(row?.relayed_received_bytes ?? 0) };
  }
}

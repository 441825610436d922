import type { Kysely, Transaction } from 'kysely';
import type { Transporter } from 'nodemailer';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config, MailSettings } from '../config/config.js';
import type { Database } from '../db/schema.js';
import type { KeyRing } from '../documents/key-ring.js';
import type { Logger } from '../logging/logger.js';
import { authPolicy } from '../auth/policy/auth-policy.js';
import { effectiveClinicTimeZone } from '../auth/policy/clinic-time-zone.js';
import type { WriteObserver } from '../records/repository.js';
import { appointmentNotice } from './appointment-notices.js';
import { MailDelivery, smtpTransport, type DeliveryPolicy } from './mail-delivery.js';
import { MailOutbox } from './mail-outbox.js';
import { patientRecipient } from './mail-recipients.js';
import type { MailContent, MailLanguage } from './mail-templates.js';

/**
 * Outgoing e-mail as a node holds it: the farm-wide outbox and this node's delivery loop. Created
 * only when TELESALUD_SMTP_URL is set; without it nothing is queued and links are shown to whoever
 * creates them, as before.
 */
export class Notifications {
  readonly outbox: MailOutbox;
  readonly delivery: MailDelivery;
  readonly defaultLanguage: MailLanguage;

  /** Given to every signed-in request's Repository: appointment changes queue the patient's e-mail. */
  readonly recordObservers: readonly WriteObserver[];

  private constructor(
    db: Kysely<Database>,
    keyRing: KeyRing,
    transport: Pick<Transporter, 'sendMail' | 'close'>,
    settings: MailSettings,
    config: Pick<Config, 'publicUrl' | 'clinicTimeZone'>,
    logger: Logger,
    audit: Pick<AuditLog, 'recordIn'>,
    nodeId: string | undefined,
    policy?: Partial<DeliveryPolicy>,
  ) {
    this.outbox = new MailOutbox(db, keyRing);
    this.defaultLanguage = settings.defaultLanguage;
    this.delivery = new MailDelivery(this.outbox, transport, {
      from: settings.from,
      logger,
      audit,
      ...(nodeId ? { nodeId } : {}),
      ...(policy ? { policy } : {}),
      // Read at sending time, so an admin's change of the clinic's zone applies to what is still queued.
      renderContext: async () => ({ publicUrl: config.publicUrl, timeZone: effectiveClinicTimeZone(await authPolicy(db).current(), config.clinicTimeZone) }),
    });
    this.recordObservers = [(tx, written, previous) => this.queueAppointmentNotice(tx, written, previous)];
  }

  static async open(
    options: { db: Kysely<Database>; keyRing: KeyRing; config: Pick<Config, 'publicUrl' | 'clinicTimeZone' | 'mail'>; logger: Logger; audit: Pick<AuditLog, 'recordIn'>; nodeId?: string },
    overrides: { transport?: Pick<Transporter, 'sendMail' | 'close'>; policy?: Partial<DeliveryPolicy> } = {},
  ): Promise<Notifications | undefined> {
    const settings = options.config.mail;
    if (!settings) return undefined;
    const transport = overrides.transport ?? (await smtpTransport(settings));
    return new Notifications(options.db, options.keyRing, transport, settings, options.config, options.logger, options.audit, options.nodeId, overrides.policy);
  }

  start(): void {
    this.delivery.start();
  }

  async stop(): Promise<void> {
    await this.delivery.stop();
  }

  /**
   * Queues a message in `tx` (the transaction of what causes it). Call `sendSoon()` once that
   * transaction has committed; otherwise the next poll of any node sends it. Give
   * `content.patient` when the message concerns a patient: its sending is audited under them.
   */
  async queue(tx: Kysely<Database>, content: MailContent): Promise<string> {
    return this.outbox.enqueue(tx, content);
  }

  sendSoon(): void {
    this.delivery.wake();
  }

  private async queueAppointmentNotice(tx: Transaction<Database>, written: Parameters<WriteObserver>[1], previous: Parameters<WriteObserver>[2]): Promise<void> {
    const notice = appointmentNotice(written, previous);
    if (!notice) return;
    const to = await patientRecipient(tx, notice.patientRef, this.defaultLanguage);
    if (!to) return;
    await this.outbox.enqueue(tx, {
      template: `appointment-${notice.change}`,
      patient: notice.patientRef,
      to: to.email,
      language: to.language,
      start: notice.start,
      ...(notice.end ? { end: notice.end } : {}),
      ...(notice.mode ? { mode: notice.mode } : {}),
      ...(notice.previousStart ? { previousStart: notice.previousStart } : {}),
    });
    // Still inside the write's transaction: the pass a moment later finds the row committed.
    this.delivery.wake(250);
  }
}

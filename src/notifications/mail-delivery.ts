import { readFile } from 'node:fs/promises';
import nodemailer, { type Transporter } from 'nodemailer';
import type { AuditEntry, AuditLog } from '../audit/audit-log.js';
import type { MailSettings } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { ClaimedMail, MailOutbox } from './mail-outbox.js';
import { renderMail, type RenderContext } from './mail-templates.js';

/** What the node's figures count (see src/observability/metrics.ts). */
export interface DeliveryCounters {
  sent: number;
  retried: number;
  failed: number;
}

export interface DeliveryPolicy {
  /** Tries before a message is given up on and marked failed. */
  maxAttempts: number;
  /** Wait before try n+1 after try n failed for a passing reason. */
  retryDelayMs(attempt: number): number;
  /** How often a node looks for due messages (others' and retries) when nothing wakes it. */
  pollMs: number;
  /**
   * How long a claim holds a message: longer than any one SMTP exchange takes (the transport gives
   * up after 15 + 15 + 30 s). Renewed just before each message of a batch is sent.
   */
  leaseMs: number;
  batch: number;
}

/** 1 min, 2, 4 … capped at 1 h, jittered: about 10 h of trying over 12 attempts. */
export const DEFAULT_DELIVERY_POLICY: DeliveryPolicy = {
  maxAttempts: 12,
  retryDelayMs: (attempt) => Math.min(60_000 * 2 ** (attempt - 1), 3_600_000) * (0.8 + Math.random() * 0.4),
  pollMs: 5_000,
  leaseMs: 120_000,
  batch: 20,
};

/** The SMTP transport: TLS always (implicit on smtps://, STARTTLS required on smtp://), certificates checked. */
export async function smtpTransport(settings: MailSettings): Promise<Transporter> {
  const url = new URL(settings.smtpUrl);
  const secure = url.protocol === 'smtps:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const ca = settings.caFile ? await readFile(settings.caFile, 'utf8') : undefined;
  return nodemailer.createTransport({
    host,
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    requireTLS: !secure,
    ...(url.username ? { auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } } : {}),
    tls: { minVersion: 'TLSv1.2', rejectUnauthorized: true, ...(ca ? { ca } : {}) },
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 30_000,
    // nodemailer's own logger prints addresses and the message: off.
    logger: false,
    debug: false,
    disableFileAccess: true,
    disableUrlAccess: true,
  });
}

/** The actor of the `notification-sent` audit entries: the delivering node, not a person. */
export const MAIL_DELIVERY_ACTOR = 'system:mail-delivery';

/**
 * A node's delivery loop: claims due messages from the outbox, renders them in the recipient's
 * language and sends them. Logs say which message and template, never to whom or what it said.
 *
 * At least once: a node that dies after the relay took a message and before it marked it sent
 * leaves a claim whose lease runs out, and another node sends it again. The copy is harmless and
 * visible: both carry the same Message-ID (`<outbox id@telesalud>`), which mail clients and
 * relays use to recognise one message, and the second try is logged and audited as
 * `claimedAgain`.
 */
export class MailDelivery {
  readonly counters: DeliveryCounters = { sent: 0, retried: 0, failed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** Not looking for messages on its own (never started, or stopped). */
  private stopped = true;
  /** stop() was called: a pass in progress hands the rest of its batch back. (A pass called directly on a loop never started runs whole.) */
  private stopping = false;

  constructor(
    private readonly outbox: MailOutbox,
    private readonly transport: Pick<Transporter, 'sendMail' | 'close'>,
    private readonly options: {
      from: string;
      renderContext: () => Promise<RenderContext>;
      logger: Logger;
      /** Where each handing-over of a message is recorded (`notification-sent`). */
      audit: Pick<AuditLog, 'recordIn'>;
      /** This node, named in the audit entries. */
      nodeId?: string;
      policy?: Partial<DeliveryPolicy>;
    },
  ) {}

  private get policy(): DeliveryPolicy {
    return { ...DEFAULT_DELIVERY_POLICY, ...this.options.policy };
  }

  start(): void {
    this.stopped = false;
    this.stopping = false;
    this.schedule(0);
  }

  /** Something was queued on this node: look soon rather than at the next poll. */
  wake(afterMs = 20): void {
    if (!this.stopped) this.schedule(afterMs);
  }

  /** Stops looking for messages and waits for the ones being sent; unsent ones stay for another node. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping = true;
    clearTimeout(this.timer);
    await this.running;
    this.transport.close();
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.pass(), ms);
    this.timer.unref();
  }

  private pass(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.deliverDue()
      .then(() => undefined)
      .catch((err: unknown) => this.options.logger.error({ error: errorCode(err) }, 'e-mail delivery pass failed'))
      .finally(() => {
        this.running = undefined;
        const soon = this.again;
        this.again = false;
        if (!this.stopped) this.schedule(soon ? 0 : this.policy.pollMs);
      });
  }

  /** One pass: sends every message due at `now`; answers how many were tried. */
  async deliverDue(now = new Date()): Promise<number> {
    // The pass's clock: `now` (tests move it ahead), running on in real time, so renewed leases last.
    const offset = now.getTime() - Date.now();
    const clock = () => new Date(Date.now() + offset);
    let tried = 0;
    for (;;) {
      if (this.stopping && tried > 0) break;
      const claimed = await this.outbox.claimDue(this.policy.batch, this.policy.leaseMs, clock());
      if (claimed.length === 0) break;
      const context = await this.options.renderContext();
      for (const mail of claimed) {
        // A stopping node sends what it is sending and hands the rest of its batch back at once.
        if (this.stopping) await this.outbox.release(mail);
        else await this.deliver(mail, context, clock);
      }
      tried += claimed.length;
      if (claimed.length < this.policy.batch) break;
    }
    return tried;
  }

  private async deliver(mail: ClaimedMail, context: RenderContext, clock: () => Date): Promise<void> {
    const log = this.options.logger;
    if (!mail.content) {
      // A key this node lacks: it may be behind a rotation (its key file not yet updated); another node, or a later try, opens it.
      if (mail.unreadable === 'unknown-key' && mail.attempt < this.policy.maxAttempts) {
        const next = new Date(clock().getTime() + this.policy.retryDelayMs(mail.attempt));
        await this.outbox.markRetry(mail, next, 'unknown-key');
        this.counters.retried++;
        log.warn({ message: mail.id, template: mail.template, attempt: mail.attempt, error: 'unknown-key', retryAt: next.toISOString() }, "e-mail sealed under a key this node's key file lacks: will retry");
        return;
      }
      await this.outbox.markFailed(mail, mail.unreadable === 'unknown-key' ? 'unknown-key' : 'unreadable');
      this.counters.failed++;
      log.error({ message: mail.id, template: mail.template, error: mail.unreadable }, 'e-mail given up: its sealed content can not be opened');
      return;
    }
    // The claim may have run out while earlier messages of the batch went: send only what this node still holds.
    if (!(await this.outbox.renew(mail, this.policy.leaseMs, clock()))) {
      log.warn({ message: mail.id, template: mail.template, attempt: mail.attempt }, 'e-mail left to another node: its claim ran out before it was sent');
      return;
    }
    if (mail.claimedAgain) {
      log.warn({ message: mail.id, template: mail.template, attempt: mail.attempt }, 'e-mail tried again after its sender stopped mid-send: it may reach the recipient twice, with the same Message-ID');
    }
    const rendered = renderMail(mail.content, context);
    try {
      await this.transport.sendMail({
        from: this.options.from,
        to: mail.content.to,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        // The outbox id as Message-ID, the same on every try: a relay or a mail client that sees the message twice can tell.
        messageId: outboxMessageId(mail.id),
        headers: { 'Auto-Submitted': 'auto-generated' },
      });
    } catch (err) {
      const code = errorCode(err);
      const permanent = /^smtp-5/.test(code) || code === 'EENVELOPE';
      if (permanent || mail.attempt >= this.policy.maxAttempts) {
        await this.outbox.markFailed(mail, code);
        this.counters.failed++;
        log.warn({ message: mail.id, template: mail.template, attempt: mail.attempt, error: code }, 'e-mail given up');
      } else {
        const next = new Date(clock().getTime() + this.policy.retryDelayMs(mail.attempt));
        await this.outbox.markRetry(mail, next, code);
        this.counters.retried++;
        log.info({ message: mail.id, template: mail.template, attempt: mail.attempt, error: code, retryAt: next.toISOString() }, 'e-mail not accepted yet: will retry');
      }
      return;
    }
    // Handed over: health data (that this patient has an appointment, an invitation, a link) left the system.
    const held = await this.outbox.markSent(mail, clock(), (tx) => this.options.audit.recordIn(tx, [this.sentEntry(mail)]));
    this.counters.sent++;
    log.info({ message: mail.id, template: mail.template, attempt: mail.attempt, ...(held ? {} : { claimLost: true }) }, 'e-mail sent');
  }

  /** Who sent what about whom: the node, the template, the outbox id, the patient. Never the address or the content. */
  private sentEntry(mail: ClaimedMail): AuditEntry {
    const patient = mail.content?.patient;
    return {
      actor: MAIL_DELIVERY_ACTOR,
      action: 'notification-sent',
      outcome: 'success',
      source: 'mail-delivery',
      requestId: `mail:${mail.id}`,
      ...(patient?.startsWith('Patient/') ? { patient } : {}),
      detail: {
        message: mail.id,
        template: mail.template,
        attempt: mail.attempt,
        ...(this.options.nodeId ? { node: this.options.nodeId } : {}),
        ...(mail.claimedAgain ? { claimedAgain: true } : {}),
      },
    };
  }
}

/** The Message-ID of an outbox row: stable across tries, so a copy is recognisably the same message. */
export const outboxMessageId = (id: string) => `<${id}@telesalud>`;

/**
 * A code for an SMTP failure: the reply's code (smtp-451) or nodemailer's (ECONNECTION,
 * ETLS…). Never the server's text: it often quotes the recipient's address.
 */
export function errorCode(err: unknown): string {
  const e = err as { responseCode?: unknown; code?: unknown } | undefined;
  if (typeof e?.responseCode === 'number') return `smtp-${e.responseCode}`;
  if (typeof e?.code === 'string' && /^[A-Z_]{2,32}$/.test(e.code)) return e.code;
  return 'error';
}

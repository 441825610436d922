import { readFile } from 'node:fs/promises';
import nodemailer, { type Transporter } from 'nodemailer';
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
  /** How long a claim holds a message: longer than any one SMTP exchange takes. */
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

/**
 * A node's delivery loop: claims due messages from the outbox, renders them in the recipient's
 * language and sends them. Logs say which message and template, never to whom or what it said.
 */
export class MailDelivery {
  readonly counters: DeliveryCounters = { sent: 0, retried: 0, failed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;

  constructor(
    private readonly outbox: MailOutbox,
    private readonly transport: Pick<Transporter, 'sendMail' | 'close'>,
    private readonly options: { from: string; renderContext: () => Promise<RenderContext>; logger: Logger; policy?: Partial<DeliveryPolicy> },
  ) {}

  private get policy(): DeliveryPolicy {
    return { ...DEFAULT_DELIVERY_POLICY, ...this.options.policy };
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Something was queued on this node: look soon rather than at the next poll. */
  wake(afterMs = 20): void {
    if (!this.stopped) this.schedule(afterMs);
  }

  /** Stops looking for messages and waits for the ones being sent; unsent ones stay for another node. */
  async stop(): Promise<void> {
    this.stopped = true;
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
    let tried = 0;
    for (;;) {
      if (this.stopped && tried > 0) break;
      const claimed = await this.outbox.claimDue(this.policy.batch, this.policy.leaseMs, now);
      if (claimed.length === 0) break;
      const context = await this.options.renderContext();
      for (const mail of claimed) {
        // A stopping node sends what it is sending and hands the rest of its batch back at once.
        if (this.stopped) await this.outbox.release(mail.id);
        else await this.deliver(mail, context, now);
      }
      tried += claimed.length;
      if (claimed.length < this.policy.batch) break;
    }
    return tried;
  }

  private async deliver(mail: ClaimedMail, context: RenderContext, now: Date): Promise<void> {
    const log = this.options.logger;
    if (!mail.content) {
      await this.outbox.markFailed(mail.id, 'unreadable');
      this.counters.failed++;
      log.error({ message: mail.id, template: mail.template }, 'e-mail given up: its sealed content can not be opened');
      return;
    }
    const rendered = renderMail(mail.content, context);
    try {
      await this.transport.sendMail({
        from: this.options.from,
        to: mail.content.to,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        // The outbox id as Message-ID: a relay that sees the same message twice can tell.
        messageId: `<${mail.id}@telesalud>`,
        headers: { 'Auto-Submitted': 'auto-generated' },
      });
    } catch (err) {
      const code = errorCode(err);
      const permanent = /^smtp-5/.test(code) || code === 'EENVELOPE';
      if (permanent || mail.attempt >= this.policy.maxAttempts) {
        await this.outbox.markFailed(mail.id, code);
        this.counters.failed++;
        log.warn({ message: mail.id, template: mail.template, attempt: mail.attempt, error: code }, 'e-mail given up');
      } else {
        const next = new Date(now.getTime() + this.policy.retryDelayMs(mail.attempt));
        await this.outbox.markRetry(mail.id, next, code);
        this.counters.retried++;
        log.info({ message: mail.id, template: mail.template, attempt: mail.attempt, error: code, retryAt: next.toISOString() }, 'e-mail not accepted yet: will retry');
      }
      return;
    }
    await this.outbox.markSent(mail.id);
    this.counters.sent++;
    log.info({ message: mail.id, template: mail.template, attempt: mail.attempt }, 'e-mail sent');
  }
}

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

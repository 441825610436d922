import { Counter, Gauge, type Registry } from 'prom-client';
import type { Notifications } from './notifications.js';

/** E-mail figures for /metrics: this node's deliveries, and the farm's outbox by state. Counts only. */
export function registerMailMetrics(registry: Registry, notifications: Notifications): void {
  const counters = notifications.delivery.counters;
  const results = [
    ['sent', 'E-mails this node handed to the SMTP relay'],
    ['retried', 'E-mail attempts on this node that failed for a passing reason and will be retried'],
    ['failed', 'E-mails this node gave up on (refused for good, or out of attempts)'],
  ] as const;
  for (const [result, help] of results) {
    new Counter({
      name: `telesalud_mail_${result}_total`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(counters[result]);
      },
    });
  }
  new Gauge({
    name: 'telesalud_mail_outbox_messages',
    help: 'Messages in the outbox by state (pending, sending, sent, failed), all nodes',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await notifications.outbox.counts();
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
}

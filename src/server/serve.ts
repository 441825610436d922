import type { Config } from '../config/config.js';
import { createLogger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import { buildApp } from './app.js';
import { startNode } from './node.js';
import { startAdminSocket } from '../cli/admin-socket-server.js';
import { seedDemoIfEmpty } from '../demo/seed-demo-command.js';
import type { Server as TlsServer } from 'node:tls';
import { OcspStapler } from './ocsp-stapling.js';
import { CONNECTION_LIMITS, loadTlsMaterial, TLS_OPTIONS } from './tls.js';

/**
 * `telesalud serve`: one node on one TLS port. On SIGTERM or SIGINT it turns unready, keeps
 * serving for TELESALUD_DRAIN_DELAY_MS while the load balancer notices, stops taking connections, lets in-flight requests finish, flushes the audit and closes the store,
 * within TELESALUD_SHUTDOWN_TIMEOUT_MS.
 */
export async function serve(config: Config, options: { demo?: boolean } = {}): Promise<void> {
  const logger = createLogger(config.logLevel, config.logFile);
  const tls = await loadTlsMaterial(config);
  const node = await startNode(config, logger);
  if (options.demo) await seedDemoIfEmpty(node);
  // A CA-issued certificate that names an OCSP responder gets its status stapled to every handshake.
  const stapler = tls.selfSigned ? undefined : OcspStapler.forCertificate(tls.cert, logger);
  if (stapler) node.ocspStapling = stapler;
  const app = await buildApp(node, { ...TLS_OPTIONS, ...CONNECTION_LIMITS, cert: tls.cert, key: tls.key });
  stapler?.attach(app.server as unknown as TlsServer);
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, database: node.store.kind, selfSignedCertificate: tls.selfSigned, version: node.version }, 'telesalud is serving');
  // Embedded database only: how `telesalud backup`, `audit verify` and `keys …` reach this node (see admin-socket-server.ts).
  const adminSocket = await startAdminSocket(node).catch((err: unknown) => {
    logger.error({ err: safeError(err) }, 'admin socket could not start: backup, audit verify and keys commands need the service stopped');
    return undefined;
  });
  process.stdout.write(`telesalud ${node.version} listening on https://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port} (${node.store.kind})\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.lifecycle.draining = true;
    logger.info({ signal }, 'draining');
    const force = setTimeout(() => {
      // Audit entries answered for but not yet in the chain go to the log, the one witness left (ids only, as every entry).
      for (const { entry, at } of node.audit.unwritten()) logger.error({ auditEntry: { ...entry, accessedAt: new Date(at).toISOString() } }, 'audit entry not written before exit');
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    try {
      if (config.drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.drainDelayMs));
      await app.close();
      await adminSocket?.close();
      await node.stop();
      logger.info('stopped');
      logger.flush();
      clearTimeout(force);
    } catch (err) {
      logger.error({ err: safeError(err) }, 'shutdown failed');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

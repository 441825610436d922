import type { Config } from '../config/config.js';
import { commandLogLevel, createLogger } from '../logging/logger.js';
import { startNode } from '../server/node.js';

/**
 * A node for one CLI command (user add, client add, demo seed): it logs at the command's level,
 * and its audit entries commit before the command reports success, not behind it.
 */
export function startCommandNode(config: Config): ReturnType<typeof startNode> {
  return startNode({ ...config, auditCommit: 'before-answer' }, createLogger(commandLogLevel(config.logLevel), config.logFile));
}

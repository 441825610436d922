import { SYSTEM_ACTOR } from '../auth/actor.js';
import { AccountError, createAccount } from '../auth/accounts/account-service.js';
import type { Config } from '../config/config.js';
import { startCommandNode } from './command-node.js';
import { Repository } from '../records/repository.js';

/** `telesalud user add`: the password comes on stdin so it never shows in a process list or shell history. */
export async function userAddCommand(config: Config, options: { email: string; role: string; name?: string }): Promise<void> {
  const password = (await readStdin()).replace(/\r?\n$/, '');
  if (!password) throw new Error('give the password on standard input (e.g. `printf %s "$PASSWORD" | telesalud user add …`)');
  const node = await startCommandNode(config);
  try {
    const records = new Repository(node.store.db, node.audit, { ...SYSTEM_ACTOR, ref: 'system:user-add' }, { requestId: 'user-add', source: 'cli' });
    const account = await createAccount(node.store.db, records, node.keyRing, { ...options, password });
    process.stdout.write(`${JSON.stringify(account)}\n`);
  } catch (err) {
    if (err instanceof AccountError) throw new Error(err.message);
    throw err;
  } finally {
    await node.stop();
  }
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new Error('give the password on standard input, not interactively');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (chunks.reduce((n, c) => n + c.length, 0) > 4096) throw new Error('the password is too long');
  }
  return Buffer.concat(chunks).toString('utf8');
}

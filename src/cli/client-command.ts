import { addClient, clientActorRef, ClientError, listClients, revokeClient } from '../auth/oauth/oauth-clients.js';
import type { Config } from '../config/config.js';
import { startCommandNode } from './command-node.js';

type Node = Awaited<ReturnType<typeof startCommandNode>>;

async function withNode<T>(config: Config, work: (node: Node) => Promise<T>): Promise<T> {
  const node = await startCommandNode(config);
  try {
    return await work(node);
  } catch (err) {
    if (err instanceof ClientError) throw new Error(err.message);
    throw err;
  } finally {
    await node.stop();
  }
}

/** `telesalud client add`: prints the secret once; only its digest is kept, so it can't be shown again. */
export async function clientAddCommand(config: Config, options: { name: string; scopes: string; redirectUri?: string[]; public?: boolean }): Promise<void> {
  await withNode(config, async (node) => {
    const client = await addClient(node.store.db, { name: options.name, scopes: options.scopes, ...(options.redirectUri ? { redirectUris: options.redirectUri } : {}), ...(options.public ? { public: true } : {}) });
    const app = 'redirect_uris' in client ? { type: client.type, redirect_uris: client.redirect_uris } : {};
    await node.audit.record({ actor: 'system:client-add', action: 'client-added', outcome: 'success', source: 'cli', requestId: 'client-add', detail: { client: clientActorRef(client.client_id), scope: client.scope, ...app } });
    process.stdout.write(`${JSON.stringify(client)}\n`);
  });
}

export async function clientListCommand(config: Config): Promise<void> {
  await withNode(config, async (node) => process.stdout.write(`${JSON.stringify(await listClients(node.store.db))}\n`));
}

/** Revokes the client and every access token it holds, on every node at once. */
export async function clientRevokeCommand(config: Config, clientId: string): Promise<void> {
  await withNode(config, async (node) => {
    if (!(await revokeClient(node.store.db, clientId))) throw new Error(`no active client ${clientId.slice(0, 64)}`);
    await node.audit.record({ actor: 'system:client-revoke', action: 'client-revoked', outcome: 'success', source: 'cli', requestId: 'client-revoke', detail: { client: clientActorRef(clientId) } });
    process.stdout.write(`${JSON.stringify({ client_id: clientId, status: 'revoked' })}\n`);
  });
}

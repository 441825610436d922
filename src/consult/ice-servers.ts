import { createHmac } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { IceServer } from './signaling-protocol.js';

/** A TURN credential outlives the join by this much: long enough for a consultation, short enough to be useless when leaked. */
export const TURN_CREDENTIAL_SECONDS = 3600;

/**
 * coturn's REST API scheme (`use-auth-secret`): the username says until when it is valid and
 * for whom, the credential is base64(HMAC-SHA1(static-auth-secret, username)). coturn checks
 * both without asking us, so any node can hand them out.
 */
export function turnCredential(secret: string, participantId: string, now = Date.now(), lifetimeSeconds = TURN_CREDENTIAL_SECONDS): { username: string; credential: string } {
  const username = `${Math.floor(now / 1000) + lifetimeSeconds}:${participantId}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/** The ICE servers one participant gets in `welcome`. Without TURN or STUN configured: none (loopback and LAN work without). */
export function iceServersFor(config: Pick<Config, 'turn' | 'stunUrls'>, participantId: string, now = Date.now()): IceServer[] {
  const servers: IceServer[] = [];
  if (config.stunUrls.length > 0) servers.push({ urls: [...config.stunUrls] });
  if (config.turn) servers.push({ urls: [...config.turn.urls], ...turnCredential(config.turn.secret, participantId, now) });
  return servers;
}

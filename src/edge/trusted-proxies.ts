import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * The load balancers and edge proxies in front of the nodes (TELESALUD_TRUSTED_PROXIES): only
 * their X-Forwarded-For is believed, so bans, throttles and the audit name the real client,
 * not the proxy every request arrives from. Anyone else's X-Forwarded-For is ignored: it is
 * just a header a client wrote.
 */
export interface TrustedProxies {
  /** As written in the configuration: addresses and CIDR ranges (Fastify's trustProxy takes them). */
  readonly entries: readonly string[];
  /** Whether a connection's own address is one of them (such an address is never banned). */
  has(address: string): boolean;
}

/** Parses `10.0.0.5, 10.1.0.0/16, fd00::/8`; returns an error message for the first bad entry. */
export function parseTrustedProxies(value: string): TrustedProxies | string {
  const list = new BlockList();
  const entries = value.split(',').map((e) => e.trim()).filter(Boolean);
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    if (!family || extra !== undefined) return `"${entry}" is not an IP address or CIDR range`;
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) {
      list.addAddress(address!, type);
      continue;
    }
    const prefix = Number(bits);
    if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) return `"${entry}" has a bad prefix length`;
    list.addSubnet(address!, prefix, type);
  }
  return {
    entries,
    has(address: string): boolean {
      const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
      const family = isIP(plain);
      return family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

export const NO_TRUSTED_PROXIES: TrustedProxies = { entries: [], has: () => false };

/** What a request id may look like: nginx's 32 hex digits, a UUID, HAProxy's unique-id; nothing a log line could be forged with. */
export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$/;

/**
 * The X-Request-Id a trusted proxy gave the request, so one id follows it from the edge to the
 * node and into the audit; from anyone else, or malformed, none (the node makes its own).
 */
export function forwardedRequestId(req: IncomingMessage, proxies: TrustedProxies): string | undefined {
  const header = req.headers['x-request-id'];
  if (typeof header !== 'string' || !REQUEST_ID.test(header)) return undefined;
  const peer = req.socket?.remoteAddress;
  return peer !== undefined && proxies.has(peer) ? header : undefined;
}

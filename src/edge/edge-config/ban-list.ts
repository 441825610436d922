import { isIP } from 'node:net';
import { rename, writeFile } from 'node:fs/promises';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { DEFAULT_BAN_POLICY } from '../ban-store.js';

/** A source the shield banned, and when the ban ends. */
export interface EdgeBan {
  source: string;
  until: Date;
}

/** The file of the edge's `geo` block that lists banned sources; nginx includes it. */
export const BAN_LIST_FILE = 'banned-sources.conf';

/**
 * Bans in force, from the shield's security events (`shield-ban` in the audit trail, written by
 * every node): the edge refuses those sources before ModSecurity spends a cycle on them.
 */
export async function activeBans(db: Kysely<Database>, now = new Date()): Promise<EdgeBan[]> {
  // No ban outlasts the longest the policy gives, so older events need not be read.
  const since = new Date(now.getTime() - DEFAULT_BAN_POLICY.maxBanMs);
  const rows = await db
    .selectFrom('audit_event')
    .select(['source', 'detail'])
    .where('action', '=', 'shield-ban')
    .where('recorded', '>=', since)
    .orderBy('seq', 'asc')
    .execute();
  const latest = new Map<string, Date>();
  for (const row of rows) {
    const until = new Date(String((row.detail as { until?: unknown } | null)?.until ?? ''));
    if (!row.source || Number.isNaN(until.getTime())) continue;
    const known = latest.get(row.source);
    if (!known || until > known) latest.set(row.source, until);
  }
  return [...latest].filter(([, until]) => until > now).map(([source, until]) => ({ source: plainAddress(source), until }));
}

/** `::ffff:192.0.2.7` as nginx sees it: 192.0.2.7. */
function plainAddress(source: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(source);
  return mapped ? mapped[1]! : source;
}

/**
 * The `geo` entries: one address per line, nothing else (the file is included into nginx's
 * configuration, so anything that is not an IP address is left out rather than written).
 */
export function banListText(bans: EdgeBan[], now = new Date()): string {
  const lines = [`# Sources banned by the telesalud shield, written ${now.toISOString()} by \`telesalud edge-config --bans-only\`.`];
  for (const ban of bans) {
    if (isIP(ban.source) === 0) continue;
    lines.push(`${ban.source} 1; # until ${ban.until.toISOString()}`);
  }
  return lines.join('\n') + '\n';
}

/** Replaced whole (write, then rename), so a reload never reads half a file. */
export async function writeBanList(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o644 });
  await rename(temporary, file);
}

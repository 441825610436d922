import path from 'node:path';
import type { Config } from '../config/config.js';
import { activeBans, BAN_LIST_FILE, banListText, writeBanList } from '../edge/edge-config/ban-list.js';
import { writeEdgeConfig, type EdgeConfigOptions } from '../edge/edge-config/nginx-config.js';
import { readRouteTable } from '../edge/edge-config/route-table.js';
import { openCommandStore } from './command-store.js';

export interface EdgeConfigCommandOptions {
  serverName?: string;
  listen?: string[];
  upstream?: string[];
  upstreamCa?: string;
  upstreamName?: string;
  cert?: string;
  key?: string;
  trustedCertificate?: string;
  resolver?: string;
  crsDir?: string;
  modulesDir?: string;
  stateDir?: string;
  user?: string;
  bansOnly?: boolean;
  diagnosticLog?: boolean;
}

/** Anything that would end or open a directive in nginx's configuration language. */
const UNSAFE = /[\s;{}"'$#\\]/;

function checked(name: string, value: string, shape?: RegExp): string {
  if (value === '' || UNSAFE.test(value) || (shape && !shape.test(value))) throw new Error(`${name}: not a valid value: ${JSON.stringify(value.slice(0, 80))}`);
  return value;
}

function absolutePath(name: string, value: string): string {
  return checked(name, path.resolve(value));
}

/**
 * `telesalud edge-config DIR`: the production edge (nginx + ModSecurity v3 + OWASP CRS) generated
 * from this version's route table; `--bans-only` rewrites just the ban list from the shield's
 * security events.
 */
export async function edgeConfigCommand(config: Config, dir: string, options: EdgeConfigCommandOptions): Promise<void> {
  const target = absolutePath('DIR', dir);
  if (options.bansOnly) {
    const store = await openCommandStore(config, 'telesalud edge-config --bans-only', { ifMissing: 'nothing to read bans from' });
    try {
      const bans = await activeBans(store.db);
      const file = path.join(target, BAN_LIST_FILE);
      await writeBanList(file, banListText(bans));
      process.stdout.write(`${bans.length} banned source${bans.length === 1 ? '' : 's'} written to ${file}; reload nginx to apply (nginx -s reload)\n`);
    } finally {
      await store.release();
    }
    return;
  }

  const hostPort = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
  const edge: EdgeConfigOptions = {
    dir: target,
    serverName: checked('--server-name', options.serverName ?? new URL(config.publicUrl).hostname, /^(?:[A-Za-z0-9*_-][A-Za-z0-9.*_-]*|_)$/),
    listen: (options.listen?.length ? options.listen : ['443', '[::]:443']).map((l) => checked('--listen', l, /^(?:(?:\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):)?\d{1,5}$/)),
    upstreams: (options.upstream?.length ? options.upstream : [`127.0.0.1:${config.port}`]).map((u) => checked('--upstream', u, hostPort)),
    upstreamCa: options.upstreamCa ? absolutePath('--upstream-ca', options.upstreamCa) : undefined,
    upstreamName: options.upstreamName ? checked('--upstream-name', options.upstreamName, /^[A-Za-z0-9.-]+$/) : undefined,
    cert: absolutePath('--cert', options.cert ?? '/etc/telesalud/edge/fullchain.pem'),
    key: absolutePath('--key', options.key ?? '/etc/telesalud/edge/privkey.pem'),
    trustedCertificate: options.trustedCertificate ? absolutePath('--trusted-certificate', options.trustedCertificate) : undefined,
    resolver: options.resolver ? checked('--resolver', options.resolver, /^[0-9a-fA-F.:[\]]+$/) : undefined,
    crsDir: absolutePath('--crs-dir', options.crsDir ?? '/usr/share/modsecurity-crs'),
    modulesDir: absolutePath('--modules-dir', options.modulesDir ?? '/usr/lib/nginx/modules'),
    stateDir: absolutePath('--state-dir', options.stateDir ?? '/var/lib/telesalud-edge'),
    diagnosticLog: options.diagnosticLog === true,
    user: options.user === undefined ? 'www-data' : options.user === '' ? undefined : checked('--user', options.user, /^[a-z_][a-z0-9_-]*$/),
  };
  for (const port of edge.upstreams.map((u) => Number(u.slice(u.lastIndexOf(':') + 1)))) {
    if (port < 1 || port > 65535) throw new Error(`--upstream: ${port} is not a port`);
  }
  const routes = await readRouteTable(config);
  const result = await writeEdgeConfig(edge, routes);
  process.stdout.write(
    `edge configuration for ${result.routes} routes written to ${target}: ${result.files.join(', ')}\n` +
      `OCSP stapling ${result.ocspStapling ? 'on' : 'off (self-signed certificate or no OCSP responder)'}; node certificates ${result.upstreamVerified ? 'verified' : 'NOT verified (give --upstream-ca)'}\n` +
      `check it with: nginx -t -c ${path.join(target, 'nginx.conf')}  (create ${edge.stateDir} first)\n`,
  );
}

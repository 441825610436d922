import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { edgeConfigCommand } from '../../cli/edge-config-command.js';
import { banListText } from './ban-list.js';
import { edgeLocations } from './nginx-allowlist.js';
import { readRouteTable, type EdgeRoute } from './route-table.js';

// One value for each shape of path parameter the routes take (a resource type, a UUID, a hex id, an app's client id…).
const CANDIDATE_VALUES = ['Patient', '0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d', '0123456789abcdef', 'tsc-0123456789abcdef01234567', '7', 'AbC-12.x', 'x'];

/** A path the route answers, with each parameter filled by a value its schema accepts. */
function examplePath(route: EdgeRoute): string {
  const value = (name: string) => CANDIDATE_VALUES.find((v) => route.paramPatterns[name] === undefined || new RegExp(route.paramPatterns[name]!).test(v)) ?? 'x';
  return route.url.replace(/:([A-Za-z]+)/g, (_m, name: string) => value(name)).replace(/\*/g, () => value('*'));
}

describe('telesalud edge-config: the allowlist generated from the route table', () => {
  let routes: EdgeRoute[];
  let dir: string;
  const config = loadConfig({ TELESALUD_DATA_DIR: '/nonexistent/telesalud-edge-config-test', TELESALUD_PUBLIC_URL: 'https://telesalud.hospital.example' });

  beforeAll(async () => {
    routes = await readRouteTable(config);
    dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-edge-config-'));
  }, 60_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads every route, method, body type and limit the shield allows, without opening a database', () => {
    const byUrl = new Map(routes.map((r) => [r.url, r]));
    expect(byUrl.get('/fhir/R4/:type')).toMatchObject({ methods: ['GET', 'HEAD', 'POST'] });
    expect(byUrl.get('/fhir/R4/:type')!.types).toContain('application/fhir+json');
    expect(byUrl.get('/api/auth/sign-in')).toMatchObject({ methods: ['POST'], types: ['application/json'], bodyLimit: 4096 });
    expect(byUrl.get('/consult/ws')!.methods).toContain('GET');
    expect(byUrl.get('/api/documents')!.types).toEqual(expect.arrayContaining(['application/pdf', 'image/png']));
    expect(existsSync('/nonexistent/telesalud-edge-config-test')).toBe(false);
  });

  it('gives every route a location that matches its paths and allows its methods, most specific first', () => {
    const locations = edgeLocations(routes);
    for (const route of routes) {
      const sample = examplePath(route);
      // nginx: an exact location wins, else the first regex that matches.
      const chosen = locations.find((l) => l.match === `= ${sample}`) ?? locations.find((l) => l.regex?.test(sample));
      expect(chosen, route.url).toBeDefined();
      for (const method of route.methods) expect(chosen!.methods, `${method} ${route.url}`).toContain(method);
    }
    // A path no route has matches no location but the final refusal.
    for (const unknown of ['/wp-login.php', '/api/unknown', '/fhir/R4/Patient/1/2/3', '/fhir/R4/NoSuchResource/1']) {
      expect(locations.some((l) => l.match === `= ${unknown}` || l.regex?.test(unknown)), unknown).toBe(false);
    }
  });

  it('refuses a value that would break out of the nginx configuration, and writes nothing', async () => {
    const target = path.join(dir, 'refused');
    await expect(edgeConfigCommand(config, target, { upstream: ['10.0.0.1:8443; include /etc/passwd'] })).rejects.toThrow(/--upstream: not a valid value/);
    await expect(edgeConfigCommand(config, target, { serverName: 'a b' })).rejects.toThrow(/--server-name/);
    await expect(edgeConfigCommand(config, target, { upstream: ['10.0.0.1:99999'] })).rejects.toThrow(/not a port/);
    expect(existsSync(target)).toBe(false);
  });

  it('writes a configuration with TLS 1.2/1.3 AEAD only, HSTS, the upstreams, CRS at paranoia level 2 and every CRS file named', async () => {
    if (!existsSync('/usr/share/modsecurity-crs/rules')) return void console.warn('modsecurity-crs not installed: test/edge/nginx-edge.test.ts installs it');
    const target = path.join(dir, 'written');
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
    try {
      await edgeConfigCommand(config, target, { upstream: ['10.0.2.11:8443', '10.0.2.12:8443'], cert: '/etc/ssl/edge.pem', key: '/etc/ssl/edge.key' });
    } finally {
      process.stdout.write = write;
    }
    expect(out.join('')).toMatch(/edge configuration for \d+ routes written/);
    const http = await readFile(path.join(target, 'telesalud-http.conf'), 'utf8');
    expect(http).toContain('ssl_protocols TLSv1.2 TLSv1.3;');
    expect(http).toMatch(/ssl_ciphers (?:ECDHE-(?:ECDSA|RSA)-(?:AES\d+-GCM-SHA\d+|CHACHA20-POLY1305):?)+;/);
    expect(http).toContain('Strict-Transport-Security "max-age=63072000; includeSubDomains; preload" always');
    expect(http).toContain('server 10.0.2.11:8443');
    expect(http).toContain('server 10.0.2.12:8443');
    expect(http).toContain('server_name telesalud.hospital.example;');
    // A certificate not on this machine yet is taken to be a CA's: stapling on.
    expect(http).toContain('ssl_stapling on;');
    expect(http).not.toMatch(/\$request_uri|\$args|\$query_string/);
    // The node has /metrics (admins only); the edge does not publish it: Prometheus scrapes the nodes directly.
    expect(routes.some((r) => r.url === '/metrics')).toBe(true);
    expect(http).not.toMatch(/location [=~] "?\^?\/metrics/);
    expect(http).toContain('location = /healthz {');
    const setup = await readFile(path.join(target, 'modsecurity', 'crs-setup.conf'), 'utf8');
    expect(setup).toContain('setvar:tx.paranoia_level=2');
    // SMART's parameters: excused on the OAuth paths only, each sent once and held to its grammar (oauth-parameters.ts).
    const before = await readFile(path.join(target, 'modsecurity', 'telesalud-before-crs.conf'), 'utf8');
    const scope = before.split('\n').findIndex((l) => l.startsWith('    SecRule &ARGS:scope '));
    expect(before.split('\n')[scope - 1]).toMatch(/^SecRule REQUEST_FILENAME "@rx \^\(\?:(?:\/authorize|\/oauth2\/authorize|\/api\/oauth\/authorization|\/oauth2\/token)(?:\|(?:\/authorize|\/oauth2\/authorize|\/api\/oauth\/authorization|\/oauth2\/token)){3}\)\$" "id:\d+,phase:2,pass,nolog,t:none,chain"$/);
    expect(before.split('\n')[scope]).toBe('    SecRule &ARGS:scope "@eq 1" "t:none,chain"');
    expect(before.split('\n')[scope + 1]).toMatch(/^    SecRule ARGS:scope "@rx \^.*\$" "t:none,ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:scope"$/);
    // A redirect URI is excused from the remote-file-inclusion rules only: its path and query are still read.
    expect(before).toContain('ctl:ruleRemoveTargetById=931100;ARGS:redirect_uri');
    expect(before).not.toContain('ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:redirect_uri');
    // aud must be the FHIR base at the host the request was sent to, a name or an address.
    expect(before).toContain('    SecRule ARGS:aud "@streq https://%{REQUEST_HEADERS.host}/fhir/R4" "t:none,ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:aud"');
    expect(new Set([...before.matchAll(/id:(\d+)/g)].map((m) => m[1])).size).toBe([...before.matchAll(/id:(\d+)/g)].length);
    const main = await readFile(path.join(target, 'modsecurity', 'main.conf'), 'utf8');
    expect(main).not.toMatch(/^IncludeOptional/m);
    expect(main).toMatch(/^Include \/usr\/share\/modsecurity-crs\/rules\/REQUEST-942-APPLICATION-ATTACK-SQLI\.conf$/m);
    expect(main).toMatch(/^Include \/usr\/share\/modsecurity-crs\/rules\/REQUEST-949-BLOCKING-EVALUATION\.conf$/m);
  });

  it('writes only IP addresses into the ban list nginx includes', () => {
    const until = new Date(Date.now() + 60_000);
    const text = banListText([
      { source: '203.0.113.9', until },
      { source: '2001:db8::7', until },
      { source: '10.0.0.1; include /etc/shadow', until },
      { source: 'unknown', until },
    ]);
    const entries = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(entries.map((l) => l.split(' ')[0])).toEqual(['203.0.113.9', '2001:db8::7']);
  });
});

import { readFileSync } from 'node:fs';

/** One request of ../shared/corpus/crs-attacks-dev.jsonl (see its README). */
export interface CorpusCase {
  id: string;
  rule_id: number;
  family: string;
  family_name: string;
  rule_paranoia_level: number;
  method: string;
  uri: string;
  version: string;
  headers: [string, string][];
  body: string | null;
  autocomplete_headers: boolean;
  raw_request_b64: string | null;
}

export function loadCorpus(file: string): CorpusCase[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as CorpusCase);
}

function encodeFormPart(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+');
}

/**
 * The bytes to send, exactly as the corpus README says: with autocompletion, a body without a
 * Content-Type is a form; a form body with neither % nor + gets each key and value URL-encoded;
 * Content-Length and Connection: close are added; multipart bodies get CRLF line ends.
 */
export function corpusRequestBytes(c: CorpusCase): Buffer {
  if (c.raw_request_b64) return Buffer.from(c.raw_request_b64, 'base64');
  const headers: [string, string][] = c.headers.map(([n, v]) => [n, v]);
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name);
  let body = c.body;
  if (c.autocomplete_headers && body !== null) {
    if (!has('content-type')) headers.push(['Content-Type', 'application/x-www-form-urlencoded']);
    const type = headers.find(([n]) => n.toLowerCase() === 'content-type')![1].toLowerCase();
    if (type.startsWith('application/x-www-form-urlencoded') && !body.includes('%') && !body.includes('+')) {
      body = body
        .split('&')
        .map((pair) => {
          const eq = pair.indexOf('=');
          return eq < 0 ? encodeFormPart(pair) : `${encodeFormPart(pair.slice(0, eq))}=${encodeFormPart(pair.slice(eq + 1))}`;
        })
        .join('&');
    }
    if (type.startsWith('multipart/')) body = body.replace(/\r?\n/g, '\r\n');
  }
  const bodyBytes = body === null ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
  if (c.autocomplete_headers) {
    if (!has('content-length') && (body !== null || ['POST', 'PUT', 'PATCH'].includes(c.method))) headers.push(['Content-Length', String(bodyBytes.length)]);
    if (!has('connection')) headers.push(['Connection', 'close']);
  }
  const head = `${c.method} ${c.uri} ${c.version}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), bodyBytes]);
}

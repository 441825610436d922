import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/config.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  selfSigned: boolean;
}

/** Forward-secret AEAD suites only for TLS 1.2; TLS 1.3 suites are all AEAD. */
export const TLS_OPTIONS = {
  minVersion: 'TLSv1.2' as const,
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
};

/**
 * Slow and oversized traffic on the node's HTTPS server (slowloris and friends): a TLS handshake
 * gets 10 s, the whole request head 15 s (checked every 2 s, so a client that trickles a byte at a
 * time is cut off within 17 s, long before the 60 s idle timeout would notice), and the request
 * line with all headers 16 KiB (answered 431; a URL longer than that is refused the same way).
 * Bodies are bounded per route (bodyLimit) and in time by requestTimeout (app.ts).
 */
export const CONNECTION_LIMITS = {
  handshakeTimeout: 10_000,
  headersTimeout: 15_000,
  connectionsCheckingInterval: 2_000,
  maxHeaderSize: 16 * 1024,
};

/**
 * The certificate to serve: the operator's, or a self-signed one for localhost kept in the
 * data dir (generated on first start, renewed when it is about to expire).
 */
export async function loadTlsMaterial(config: Pick<Config, 'tls' | 'dataDir'>): Promise<TlsMaterial> {
  if (config.tls) {
    const [cert, key] = await Promise.all([readTlsFile('TELESALUD_TLS_CERT', config.tls.certFile), readTlsFile('TELESALUD_TLS_KEY', config.tls.keyFile)]);
    return { cert, key, selfSigned: false };
  }
  const dir = path.join(config.dataDir, 'tls');
  const certFile = path.join(dir, 'localhost-cert.pem');
  const keyFile = path.join(dir, 'localhost-key.pem');
  try {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    const renewBy = Date.parse(new X509Certificate(cert).validTo) - 7 * 24 * 3600_000;
    if (Date.now() < renewBy) return { cert, key, selfSigned: true };
  } catch {
    // missing or unreadable: generate below
  }
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 365 * 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  } as never);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(keyFile, pems.private, { mode: 0o600 });
  await chmod(keyFile, 0o600);
  await writeFile(certFile, pems.cert);
  return { cert: pems.cert, key: pems.private, selfSigned: true };
}

async function readTlsFile(variable: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${variable}: can not read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A throwaway CA for OCSP stapling tests, made with the openssl CLI: the CA, a delegated OCSP
 * responder certificate (id-kp-OCSPSigning), and a server certificate for localhost / 127.0.0.1
 * whose Authority Information Access names `http://127.0.0.1:<responderPort>`, plus the
 * `openssl ocsp` responder answering from an index file the test can revoke in.
 */
export interface TestPki {
  dir: string;
  caCert: string;
  /** Server certificate followed by the CA: what an operator puts in TELESALUD_TLS_CERT / ssl_certificate. */
  fullchain: string;
  serverKey: string;
  serverSerial: string;
  responderPort: number;
  /** Start (or restart) the responder on 127.0.0.1:responderPort. */
  startResponder(): Promise<void>;
  /** OCSP requests answered so far. */
  answered(): number;
  stopResponder(): Promise<void>;
  /** Mark the server certificate revoked in the responder's index (read again for every request). */
  revoke(): Promise<void>;
}

/** openssl's index.txt time format: YYMMDDHHMMSSZ (UTC). */
function indexTime(date: Date): string {
  return date.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z');
}

async function openssl(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('openssl', args, { cwd, timeout: 30_000 });
  return stdout;
}

/**
 * @param validityMinutes how long each OCSP answer says it is good for (its nextUpdate).
 */
export async function createTestPki(dir: string, responderPort: number, options: { validityMinutes: number }): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Telesalud OCSP Test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);

  await writeFile(path.join(dir, 'responder.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n');
  await openssl(['req', ...ec, '-keyout', 'responder.key', '-out', 'responder.csr', '-subj', '/CN=Telesalud OCSP Test Responder'], dir);
  await openssl(['x509', '-req', '-in', 'responder.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x1001', '-days', '2', '-extfile', 'responder.ext', '-out', 'responder.pem'], dir);

  const serverSerial = '2002';
  await writeFile(
    path.join(dir, 'server.ext'),
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:${responderPort}\n`,
  );
  await openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${serverSerial}`, '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem'], dir);
  const notAfter = new Date(Date.now() + 2 * 24 * 3600_000);
  const [serverPem, caPem] = await Promise.all([readFile(path.join(dir, 'server.pem'), 'utf8'), readFile(path.join(dir, 'ca.pem'), 'utf8')]);
  const fullchain = path.join(dir, 'fullchain.pem');
  await writeFile(fullchain, serverPem + caPem);

  const index = path.join(dir, 'index.txt');
  await writeFile(index, `V\t${indexTime(notAfter)}\t\t${serverSerial}\tunknown\t/CN=localhost\n`);
  await writeFile(`${index}.attr`, 'unique_subject = no\n');

  // `openssl ocsp -port` binds every interface (OpenSSL 3.0 takes no host): the test keeps to loopback by
  // serving HTTP itself on 127.0.0.1 and having `openssl ocsp` answer each request from its DER file.
  let responder: Server | undefined;
  let answered = 0;
  const answer = async (request: Buffer): Promise<Buffer> => {
    const work = await mkdtemp(path.join(dir, 'request-'));
    try {
      await writeFile(path.join(work, 'request.der'), request);
      await openssl(['ocsp', '-index', index, '-CA', 'ca.pem', '-rsigner', 'responder.pem', '-rkey', 'responder.key', '-nmin', String(options.validityMinutes), '-reqin', path.join(work, 'request.der'), '-respout', path.join(work, 'response.der')], dir);
      return await readFile(path.join(work, 'response.der'));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  };
  const stopResponder = async () => {
    const server = responder;
    responder = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return {
    dir,
    caCert: path.join(dir, 'ca.pem'),
    fullchain,
    serverKey: path.join(dir, 'server.key'),
    serverSerial,
    responderPort,
    answered: () => answered,
    async startResponder() {
      await stopResponder();
      const server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          // RFC 6960 A.1: POST with the DER body (the node), or GET /<url-encoded base64 DER> (nginx).
          const der =
            req.method === 'POST' && req.headers['content-type'] === 'application/ocsp-request'
              ? Buffer.concat(chunks)
              : req.method === 'GET' && (req.url ?? '/').length > 1
                ? Buffer.from(decodeURIComponent((req.url ?? '/').slice(1)), 'base64')
                : undefined;
          if (!der?.length) {
            res.writeHead(400).end();
            return;
          }
          answer(der).then(
            (der) => {
              answered += 1;
              res.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': der.length }).end(der);
            },
            () => res.writeHead(500).end(),
          );
        });
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(responderPort, '127.0.0.1', () => resolve());
      });
      responder = server;
    },
    stopResponder,
    async revoke() {
      await writeFile(index, `R\t${indexTime(notAfter)}\t${indexTime(new Date(Date.now() - 60_000))}\t${serverSerial}\tunknown\t/CN=localhost\n`);
    },
  };
}

/** What `openssl s_client -status` saw of the stapled OCSP response. */
export interface StapleSeen {
  /** A response was stapled to the handshake. */
  stapled: boolean;
  /** "good", "revoked" or "unknown" as openssl printed it, when stapled. */
  certStatus: string | undefined;
  /** The handshake verified against the CA. */
  verified: boolean;
  output: string;
}

/** One TLS handshake with openssl s_client asking for the certificate status (status_request). */
export async function handshakeWithStatusRequest(port: number, caCert: string): Promise<StapleSeen> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-status', '-CAfile', caCert, '-verify_return_error'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  child.stdin.end('');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await new Promise((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  const stapled = /OCSP Response Status: successful/.test(output);
  return {
    stapled,
    certStatus: stapled ? /Cert Status: (\w+)/.exec(output)?.[1] : undefined,
    verified: /Verify return code: 0 \(ok\)/.test(output),
    output,
  };
}

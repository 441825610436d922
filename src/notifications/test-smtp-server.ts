import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A message as the peer received it, with how it arrived. */
export interface ReceivedMail {
  parsed: ParsedMail;
  raw: string;
  envelopeTo: string[];
  /** The session was under TLS (STARTTLS) when the message came. */
  secure: boolean;
  user: string | undefined;
}

export interface TestSmtpServer {
  port: number;
  /** PEM of the server's self-signed certificate: give it as TELESALUD_SMTP_CA_FILE. */
  caFile: string;
  user: string;
  password: string;
  received: ReceivedMail[];
  /** The next `n` recipients are refused with this SMTP code (451: try later; 550: never). */
  refuseNext(n: number, code: 451 | 550): void;
  /** Refusals given so far. */
  refusals: number;
  waitFor(predicate: (mail: ReceivedMail) => boolean, timeoutMs?: number): Promise<ReceivedMail>;
  close(): Promise<void>;
}

/**
 * A real SMTP peer on loopback for the tests: STARTTLS with its own certificate (for 127.0.0.1),
 * AUTH only once under TLS, every message parsed with mailparser.
 */
export async function startTestSmtpServer(): Promise<TestSmtpServer> {
  const { generate } = await import('selfsigned');
  const pems = (await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
    ],
  } as never)) as { private: string; cert: string };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-smtp-'));
  const caFile = path.join(dir, 'ca.pem');
  await writeFile(caFile, pems.cert);

  const user = 'mailer';
  const password = 'relay-Pa55:word/with@signs';
  const received: ReceivedMail[] = [];
  const waiters = new Set<() => void>();
  let refusing = 0;
  let refusalCode: 451 | 550 = 451;
  const state = { refusals: 0 };

  const server = new SMTPServer({
    secure: false,
    key: pems.private,
    cert: pems.cert,
    // Plain AUTH is refused until STARTTLS (smtp-server's default): a client that skipped TLS could not sign in.
    allowInsecureAuth: false,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === user && auth.password === password) callback(null, { user });
      else callback(Object.assign(new Error('authentication failed'), { responseCode: 535 }));
    },
    onRcptTo(_address, _session, callback) {
      if (refusing > 0) {
        refusing--;
        state.refusals++;
        callback(Object.assign(new Error(refusalCode === 451 ? 'try again later' : 'no such mailbox'), { responseCode: refusalCode }));
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        simpleParser(raw)
          .then((parsed) => {
            received.push({ parsed, raw: raw.toString('utf8'), envelopeTo: session.envelope.rcptTo.map((r) => r.address), secure: session.secure, user: typeof session.user === 'string' ? session.user : undefined });
            for (const wake of waiters) wake();
            callback();
          })
          .catch(callback);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;

  return {
    port,
    caFile,
    user,
    password,
    received,
    get refusals() {
      return state.refusals;
    },
    refuseNext(n, code) {
      refusing = n;
      refusalCode = code;
    },
    waitFor(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = received.find(predicate);
          if (!found) return false;
          clearTimeout(timer);
          waiters.delete(check as () => void);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check as () => void);
          reject(new Error(`no matching e-mail within ${timeoutMs} ms (${received.length} received)`));
        }, timeoutMs);
        if (!check()) waiters.add(check as () => void);
      });
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

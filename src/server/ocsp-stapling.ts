import { X509Certificate } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import * as pkijs from 'pkijs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../logging/logger.js';

/**
 * OCSP stapling for the node's own TLS server (issue 6). With a CA-issued certificate whose
 * Authority Information Access names an OCSP responder, the node asks that responder about its
 * own certificate in the background, keeps the answer until it is half way to its nextUpdate
 * (or an hour, whichever comes first) and hands it to every TLS client that asks for it
 * (status_request), so browsers need not contact the CA themselves: faster handshakes, and the
 * CA never learns who visits the clinic.
 *
 * Only a response that is signed by the issuer (or a responder the issuer delegated with
 * id-kp-OCSPSigning), is about this very certificate, says `good` and is in date is stapled.
 * A responder that is down never fails a handshake: the node goes on without a staple, logs a
 * warning (the responder's origin and the reason, nothing else) and counts it in /metrics.
 *
 * pkijs (PeculiarVentures, already in the tree through `selfsigned`) builds the request and
 * parses and verifies the response: RFC 6960's ASN.1 and its responder-authorisation rules are
 * not something to hand-roll.
 */

/** How long the first handshakes wait for the first answer (after that, no handshake ever waits). */
const FIRST_FETCH_WAIT_MS = 3_000;
/** One request to the responder. */
const FETCH_TIMEOUT_MS = 5_000;
/** An OCSP response is a few KiB; anything bigger is not one. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Ask again at least this often even when the response lives longer: a revocation shows within the hour. */
const MAX_REFRESH_MS = 3600_000;
const MIN_REFRESH_MS = 10_000;
/** Retries after a failure: 10 s, 20 s, 40 s … up to 10 min. */
const MAX_RETRY_MS = 600_000;
/** Responses without nextUpdate (allowed by RFC 6960) are kept this long after their thisUpdate. */
const NO_NEXT_UPDATE_VALIDITY_MS = 3600_000;
/** Clocks differ: a thisUpdate this far in the future is still accepted. */
const CLOCK_SKEW_MS = 5 * 60_000;

const ID_PKIX_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';

export type OcspCertStatus = 'good' | 'revoked' | 'unknown';
/** What one fetch ended in: a certificate status, or why there was none. */
export type OcspFetchResult = OcspCertStatus | 'unreachable' | 'invalid';

interface CheckedResponse {
  der: Buffer;
  status: OcspCertStatus;
  thisUpdate: Date;
  /** nextUpdate, or thisUpdate + 1 h when the responder gave none. */
  validUntil: Date;
}

class OcspFetchError extends Error {
  constructor(
    readonly result: 'unreachable' | 'invalid',
    reason: string,
  ) {
    super(reason);
  }
}

/** The certificates of a PEM file, leaf first. */
function pemCertificates(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}

/** The OCSP responder URLs (http or https) in the certificate's Authority Information Access. */
export function ocspResponderUrls(cert: X509Certificate): URL[] {
  const urls: URL[] = [];
  for (const m of (cert.infoAccess ?? '').matchAll(/^OCSP - URI:(\S+)$/gm)) {
    try {
      const url = new URL(m[1]!);
      if (url.protocol === 'http:' || url.protocol === 'https:') urls.push(url);
    } catch {
      // not a URL: skipped
    }
  }
  return urls;
}

function toPkijs(cert: X509Certificate): pkijs.Certificate {
  return pkijs.Certificate.fromBER(cert.raw);
}

/** Why stapling is off for a certificate, or what it needs when on. */
export type StaplingPlan = { on: true; leaf: X509Certificate; issuer: X509Certificate; responder: URL } | { on: false; reason: string };

/**
 * Stapling is for a certificate a CA vouches for and that names an OCSP responder; the issuer
 * must be in the same file (the full chain, as every CA hands it out) to build the request.
 */
export function staplingPlan(certPem: string): StaplingPlan {
  const chain = pemCertificates(certPem);
  const leaf = chain[0];
  if (!leaf) return { on: false, reason: 'no certificate' };
  // Issuer name = subject name: self-issued (the embedded default); no CA to ask about it.
  if (leaf.issuer === leaf.subject) return { on: false, reason: 'self-signed certificate' };
  const responder = ocspResponderUrls(leaf)[0];
  if (!responder) return { on: false, reason: 'the certificate names no OCSP responder' };
  const issuer = chain.slice(1).find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey));
  if (!issuer) return { on: false, reason: 'the certificate file holds no issuer certificate (give the full chain)' };
  return { on: true, leaf, issuer, responder };
}

export interface OcspStaplerOptions {
  /** For tests: what "now" is. */
  now?: () => number;
}

/** Figures for /metrics. */
export interface OcspStaplingStatus {
  /** A good, in-date response is being stapled. */
  stapling: boolean;
  /** Unix ms of the stapled response's nextUpdate; undefined when none is stapled. */
  validUntil: number | undefined;
  /** Fetches so far, by what they ended in. */
  fetches: Record<OcspFetchResult, number>;
}

export class OcspStapler {
  private current: CheckedResponse | undefined;
  private firstFetch: Promise<void> | undefined;
  private firstDone = false;
  private timer: NodeJS.Timeout | undefined;
  private failuresInARow = 0;
  private closed = false;
  private readonly leafPkijs: pkijs.Certificate;
  private readonly issuerPkijs: pkijs.Certificate;
  private readonly now: () => number;
  private readonly fetches: Record<OcspFetchResult, number> = { good: 0, revoked: 0, unknown: 0, unreachable: 0, invalid: 0 };

  private constructor(
    private readonly leaf: X509Certificate,
    issuer: X509Certificate,
    private readonly responder: URL,
    private readonly logger: Logger,
    options: OcspStaplerOptions,
  ) {
    this.leafPkijs = toPkijs(leaf);
    this.issuerPkijs = toPkijs(issuer);
    this.now = options.now ?? Date.now;
  }

  /** A stapler for this certificate, or undefined (logged at info) when stapling does not apply. */
  static forCertificate(certPem: string, logger: Logger, options: OcspStaplerOptions = {}): OcspStapler | undefined {
    const plan = staplingPlan(certPem);
    if (!plan.on) {
      logger.info({ ocspStapling: 'off', reason: plan.reason }, 'OCSP stapling is off');
      return undefined;
    }
    logger.info({ ocspStapling: 'on', responder: plan.responder.origin }, 'OCSP stapling is on');
    return new OcspStapler(plan.leaf, plan.issuer, plan.responder, logger, options);
  }

  /** Start fetching (in the background) and answer the server's OCSPRequest events; stops when the server closes. */
  attach(server: TlsServer): void {
    this.firstFetch = this.refresh().finally(() => (this.firstDone = true));
    server.on('OCSPRequest', (certificate, _issuer, callback) => {
      // The server has one certificate; anything else (a future SNI context) gets no staple rather than a wrong one.
      if (!certificate.equals(this.leaf.raw)) return callback(null, null);
      const staple = this.staple();
      if (staple || this.firstDone || !this.firstFetch) return callback(null, staple);
      // Only the handshakes that arrive before the very first answer wait for it, and only briefly.
      let answered = false;
      const answer = () => {
        if (answered) return;
        answered = true;
        clearTimeout(wait);
        callback(null, this.staple());
      };
      const wait = setTimeout(answer, FIRST_FETCH_WAIT_MS);
      void this.firstFetch.then(answer, answer);
    });
    server.once('close', () => this.close());
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  status(): OcspStaplingStatus {
    const staple = this.staple();
    return { stapling: staple !== null, validUntil: staple ? this.current!.validUntil.getTime() : undefined, fetches: { ...this.fetches } };
  }

  /** The response to staple now: only a good one still in date. */
  private staple(): Buffer | null {
    const c = this.current;
    if (!c || c.status !== 'good') return null;
    const now = this.now();
    if (c.validUntil.getTime() <= now || c.thisUpdate.getTime() > now + CLOCK_SKEW_MS) return null;
    return c.der;
  }

  /** Ask the responder once, keep what it says, and schedule the next time. Never throws. */
  async refresh(): Promise<void> {
    if (this.closed) return;
    try {
      const checked = await this.fetchAndCheck();
      this.fetches[checked.status] += 1;
      this.failuresInARow = 0;
      if (checked.status === 'good') {
        this.current = checked;
      } else {
        // A revoked (or unknown) certificate must not go on being vouched for by an older good answer.
        this.current = undefined;
        this.logger.warn({ ocspStatus: checked.status, responder: this.responder.origin, serialNumber: this.leaf.serialNumber }, `the OCSP responder says the certificate is ${checked.status}: it is not stapled`);
      }
      const life = checked.validUntil.getTime() - checked.thisUpdate.getTime();
      this.schedule(Math.min(checked.thisUpdate.getTime() + life / 2 - this.now(), MAX_REFRESH_MS));
    } catch (err) {
      const result = err instanceof OcspFetchError ? err.result : 'invalid';
      const reason = err instanceof Error ? err.message : 'error';
      this.fetches[result] += 1;
      this.failuresInARow += 1;
      const retryMs = Math.min(MIN_REFRESH_MS * 2 ** (this.failuresInARow - 1), MAX_RETRY_MS);
      const stillStapling = this.staple() !== null;
      this.logger.warn(
        { ocspFetch: result, reason, responder: this.responder.origin, retryInSeconds: Math.round(retryMs / 1000), stillStapling },
        stillStapling ? 'OCSP responder failed: the last good response is stapled until it expires' : 'OCSP responder failed: handshakes go on without a stapled response',
      );
      this.schedule(retryMs);
    }
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), Math.max(ms, MIN_REFRESH_MS));
    this.timer.unref();
  }

  private async fetchAndCheck(): Promise<CheckedResponse> {
    const request = new pkijs.OCSPRequest();
    // SHA-1 CertIDs are what every responder answers (RFC 5019); the hash only names the certificate.
    await request.createForCertificate(this.leafPkijs, { hashAlgorithm: 'SHA-1', issuerCertificate: this.issuerPkijs });
    const body = Buffer.from(request.toSchema(true).toBER(false));
    let der: Buffer;
    try {
      const response = await fetch(this.responder, {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new OcspFetchError('unreachable', `HTTP ${response.status}`);
      }
      der = await readBounded(response);
    } catch (err) {
      if (err instanceof OcspFetchError) throw err;
      const e = err as Error & { cause?: { code?: string } };
      throw new OcspFetchError('unreachable', e.cause?.code ?? e.name);
    }
    return this.check(der);
  }

  /** RFC 6960 §3.2: signed by the issuer or its delegate, about this certificate, in date. */
  private async check(der: Buffer): Promise<CheckedResponse> {
    let basic: pkijs.BasicOCSPResponse;
    try {
      const ocsp = pkijs.OCSPResponse.fromBER(der);
      const responseStatus = ocsp.responseStatus.valueBlock.valueDec;
      if (responseStatus !== 0) throw new OcspFetchError('invalid', `responder answered status ${responseStatus}`);
      if (!ocsp.responseBytes || ocsp.responseBytes.responseType !== ID_PKIX_OCSP_BASIC) throw new OcspFetchError('invalid', 'not a basic OCSP response');
      basic = pkijs.BasicOCSPResponse.fromBER(ocsp.responseBytes.response.valueBlock.valueHexView);
    } catch (err) {
      if (err instanceof OcspFetchError) throw err;
      throw new OcspFetchError('invalid', 'malformed OCSP response');
    }
    let signed = false;
    try {
      signed = await basic.verify({ trustedCerts: [this.issuerPkijs], issuerCerts: [this.issuerPkijs] });
    } catch {
      signed = false;
    }
    if (!signed) throw new OcspFetchError('invalid', 'OCSP response not signed by the issuer or its delegated responder');
    const single = await this.singleResponseFor(basic.tbsResponseData.responses);
    if (!single) throw new OcspFetchError('invalid', 'OCSP response is not about this certificate');
    const status = (['good', 'revoked', 'unknown'] as const)[single.certStatus.idBlock.tagNumber as number];
    if (!status) throw new OcspFetchError('invalid', 'OCSP response has no certificate status');
    const thisUpdate = single.thisUpdate;
    const validUntil = single.nextUpdate ?? new Date(thisUpdate.getTime() + NO_NEXT_UPDATE_VALIDITY_MS);
    const now = this.now();
    if (thisUpdate.getTime() > now + CLOCK_SKEW_MS) throw new OcspFetchError('invalid', 'OCSP response from the future (check the clock)');
    if (validUntil.getTime() <= now) throw new OcspFetchError('invalid', 'OCSP response already expired');
    return { der, status, thisUpdate, validUntil };
  }

  private async singleResponseFor(responses: pkijs.SingleResponse[]): Promise<pkijs.SingleResponse | undefined> {
    for (const single of responses) {
      const ours = new pkijs.CertID();
      const hash = pkijs.getAlgorithmByOID(single.certID.hashAlgorithm.algorithmId, false, 'hashAlgorithm') as { name?: string };
      if (!hash?.name) continue;
      await ours.createForCertificate(this.leafPkijs, { hashAlgorithm: hash.name, issuerCertificate: this.issuerPkijs });
      if (ours.isEqual(single.certID)) return single;
    }
    return undefined;
  }
}

async function readBounded(response: Response): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_RESPONSE_BYTES) {
    await response.body?.cancel();
    throw new OcspFetchError('invalid', 'OCSP response too large');
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > MAX_RESPONSE_BYTES) throw new OcspFetchError('invalid', 'OCSP response too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The stapler's figures in the node's /metrics registry. */
export function registerOcspStaplingMetrics(registry: Registry, stapler: Pick<OcspStapler, 'status'>): void {
  new Gauge({
    name: 'telesalud_ocsp_stapling',
    help: '1 while this node staples a good, in-date OCSP response for its certificate; 0 while it can not (responder down, certificate revoked)',
    registers: [registry],
    collect() {
      this.set(stapler.status().stapling ? 1 : 0);
    },
  });
  new Gauge({
    name: 'telesalud_ocsp_response_valid_until_timestamp_seconds',
    help: 'nextUpdate of the stapled OCSP response (Unix time); 0 when none is stapled',
    registers: [registry],
    collect() {
      const until = stapler.status().validUntil;
      this.set(until === undefined ? 0 : Math.floor(until / 1000));
    },
  });
  new Counter({
    name: 'telesalud_ocsp_fetches_total',
    help: 'Requests to the OCSP responder, by result: the certificate status it gave, or unreachable / invalid (an answer that was refused)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [result, count] of Object.entries(stapler.status().fetches)) this.inc({ result }, count);
    },
  });
}

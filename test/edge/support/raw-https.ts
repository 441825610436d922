import { connect } from 'node:tls';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One request written byte for byte over TLS (the attack corpus is sent as it is, malformed or
 * not), and the answer read until its length is complete or the peer closes.
 */
export function sendRaw(port: number, bytes: Buffer, options: { ca?: string; localAddress?: string; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = end >= 0 ? text.slice(0, end) : text;
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0), headers, body: end >= 0 ? text.slice(end + 4) : '' });
    };
    const socket = connect(
      { host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['http/1.1'], ...(options.ca ? { ca: options.ca } : { rejectUnauthorized: false }), ...(options.localAddress ? { localAddress: options.localAddress } : {}) },
      () => socket.write(bytes),
    );
    const timer = setTimeout(done, options.timeoutMs ?? 20_000);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString('latin1');
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
      if (length !== undefined && data.length >= end + 4 + Number(length)) done();
      else if (length === undefined && /\r\ntransfer-encoding:\s*chunked/i.test(head) && data.subarray(end).includes('\r\n0\r\n\r\n')) done();
      else if (length === undefined && /^HTTP\/1\.[01] (?:204|304)/.test(head)) done();
    });
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', done);
  });
}

/** A request as a client library would write it. */
export function request(method: string, url: string, headers: [string, string][], body?: string | Buffer): Buffer {
  const b = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const lines = [`${method} ${url} HTTP/1.1`, ...headers.map(([n, v]) => `${n}: ${v}`)];
  if (b !== undefined) lines.push(`Content-Length: ${b.length}`);
  if (!headers.some(([n]) => n.toLowerCase() === 'connection')) lines.push('Connection: close');
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), b ?? Buffer.alloc(0)]);
}

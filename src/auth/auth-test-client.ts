import type { LightMyRequestResponse } from 'fastify';
import type { TestNode } from '../test-support/test-node.js';
import { SESSION_COOKIE } from './sessions/session-store.js';

/**
 * For tests: one browser's view of the API — its session cookie and CSRF token, taken from every
 * answer that sets them, sent the way the web app sends them (same Origin, X-CSRF-Token).
 */
export class AuthTestClient {
  cookie: string | undefined;
  csrf: string | undefined;

  constructor(private readonly node: TestNode, readonly remoteAddress = '127.0.0.1') {}

  /** Takes the session a response started (sign-in, accepted invitation, password change…). */
  adopt(res: LightMyRequestResponse): LightMyRequestResponse {
    const cookie = res.cookies.find((c) => c.name === SESSION_COOKIE);
    if (cookie) this.cookie = cookie.value || undefined;
    if (res.statusCode < 300 && res.headers['content-type']?.toString().includes('json')) {
      const body = res.json();
      if (typeof body?.csrfToken === 'string') this.csrf = body.csrfToken;
    }
    return res;
  }

  async signIn(body: Record<string, string>): Promise<LightMyRequestResponse> {
    return this.adopt(await this.node.app.inject({ method: 'POST', url: '/api/auth/sign-in', payload: body, remoteAddress: this.remoteAddress }));
  }

  get(url: string): Promise<LightMyRequestResponse> {
    return this.send('GET', url);
  }

  /** A change with the session's CSRF token and own Origin; `csrf: false` leaves the token out. */
  async send(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown, options: { csrf?: boolean } = {}): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { origin: new URL(this.node.config.publicUrl).origin };
    if (method !== 'GET' && options.csrf !== false && this.csrf) headers['x-csrf-token'] = this.csrf;
    return this.adopt(
      await this.node.app.inject({
        method,
        url,
        headers,
        remoteAddress: this.remoteAddress,
        ...(this.cookie ? { cookies: { [SESSION_COOKIE]: this.cookie } } : {}),
        ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}),
      }),
    );
  }

  post(url: string, payload?: unknown, options: { csrf?: boolean } = {}): Promise<LightMyRequestResponse> {
    return this.send('POST', url, payload ?? {}, options);
  }
}

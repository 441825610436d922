import type { FastifyReply } from 'fastify';
import { SESSION_COOKIE, type NewSession } from './session-store.js';

const cookieOptions = { path: '/', httpOnly: true, secure: true, sameSite: 'strict' as const };

/** The session cookie: `__Host-` prefixed, HttpOnly, Secure, SameSite=Strict, ending with the session's absolute lifetime. */
export function setSessionCookie(reply: FastifyReply, session: Pick<NewSession, 'token' | 'expires'>): void {
  reply.setCookie(SESSION_COOKIE, session.token, { ...cookieOptions, expires: session.expires });
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, cookieOptions);
}

/**
 * A refused answer as the pages see it: its status, its code, its body and how long to wait.
 * Apart from api.ts because it needs nothing of the page (no location, no history): Node runs it
 * in tests as it is.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The API's `error` code, or a FHIR OperationOutcome's first issue code. */
    readonly code: string | undefined,
    /** The answer's JSON, for the words a page may show (field issues, OperationOutcome diagnostics). */
    readonly body?: unknown,
    /** A refusal's Retry-After in whole seconds (429, 503), when the server named one. */
    readonly retryAfterSeconds?: number,
  ) {
    super(`request failed with ${status}`);
  }

  /** What the server said in words, when it did (OperationOutcome diagnostics or a message). */
  get detail(): string | undefined {
    const body = this.body as { issue?: { diagnostics?: string }[]; message?: string } | undefined;
    return body?.issue?.[0]?.diagnostics ?? body?.message;
  }
}

/** An answer's JSON, or undefined for an empty or non-JSON body. */
export async function jsonOf(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** Retry-After as whole seconds: a number of seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  if (/^\d{1,9}$/.test(value)) return Math.max(1, Number(value));
  // IMF-fixdate only ("Mon, 23 Nov 2026 10:02:00 GMT"): Date.parse alone takes "-5" for a year.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(value)) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(1, Math.ceil((at - now) / 1000));
}

/** The ApiError of a refused answer. */
export async function failure(res: Response): Promise<ApiError> {
  const json = (await jsonOf(res)) as { error?: string; issue?: { code?: string }[] } | undefined;
  return new ApiError(res.status, json?.error ?? json?.issue?.[0]?.code, json, retryAfterSeconds(res.headers.get('retry-after')));
}


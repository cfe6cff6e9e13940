/**
 * How requests go out: the key, a timeout, and the retries. A 429 or 503 is retried after
 * its Retry-After (the service refused before running anything); a broken connection or a
 * 502/504 after a backoff, but only for requests that cannot run twice (GETs, DELETEs, and
 * submits, which always carry an Idempotency-Key).
 */
import { TransportError, errorBodyOf, errorFor } from "./errors.js";

export interface RetryPolicy {
  maxRetries: number;
  /** A Retry-After longer than this is not waited out: the error is thrown. */
  maxWaitSeconds: number;
  backoffSeconds: number;
}

export type Fetch = typeof globalThis.fetch;

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 3, maxWaitSeconds: 60, backoffSeconds: 0.5 };

export interface Request {
  method: "GET" | "POST" | "DELETE";
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
}

const RETRIED_STATUSES = new Set([429, 502, 503, 504]);

export class Transport {
  constructor(readonly baseUrl: string, private readonly apiKey: string | undefined,
              readonly timeoutMs: number, readonly retry: RetryPolicy,
              readonly fetch: Fetch) {}

  url(path: string, query?: Record<string, string>): string {
    const search = query ? `?${new URLSearchParams(query).toString()}` : "";
    return `${this.baseUrl.replace(/\/+$/, "")}${path}${search}`;
  }

  headers(extra?: Record<string, string>): Record<string, string> {
    const auth: Record<string, string> = this.apiKey ? { Authorization: `Bearer ${this.apiKey}` } : {};
    return { "User-Agent": "comfy-serverless-client-ts/0.1", ...auth, ...extra };
  }

  /** The answer to `request`, after the retries its policy allows. */
  async send(request: Request): Promise<Response> {
    const runsOnce = request.method !== "POST" || "Idempotency-Key" in (request.headers ?? {});
    for (let attempt = 1; ; attempt++) {
      let response: Response | null = null;
      try {
        response = await this.fetchOnce(request);
      } catch (error) {
        const wait = this.delay(attempt, runsOnce, null);
        if (wait === null) {
          throw new TransportError(`${request.method} ${request.path}: ${String(error)}`);
        }
        await sleep(wait);
        continue;
      }
      const wait = this.delay(attempt, runsOnce, response);
      if (wait === null) return response;
      await response.body?.cancel();
      await sleep(wait);
    }
  }

  private fetchOnce(request: Request): Promise<Response> {
    const json = request.body !== undefined;
    return this.fetch(this.url(request.path, request.query), {
      method: request.method,
      headers: this.headers({ ...(json ? { "Content-Type": "application/json" } : {}),
                              ...request.headers }),
      ...(json ? { body: JSON.stringify(request.body) } : {}),
      signal: AbortSignal.timeout(request.timeoutMs ?? this.timeoutMs),
    });
  }

  /** Seconds to wait before retry `attempt` (1, 2 …), or null to stop there. */
  delay(attempt: number, runsOnce: boolean, response: Response | null): number | null {
    if (attempt > this.retry.maxRetries) return null;
    if (response !== null && !RETRIED_STATUSES.has(response.status)) return null;
    const refusedBeforeRunning = response !== null && [429, 503].includes(response.status);
    if (!refusedBeforeRunning && !runsOnce) return null;
    const retryAfter = response === null ? null : retryAfterOf(response);
    const wait = retryAfter ?? this.retry.backoffSeconds * 2 ** (attempt - 1);
    return wait > this.retry.maxWaitSeconds ? null : wait;
  }
}

export function retryAfterOf(response: Response): number | null {
  const value = Number.parseFloat(response.headers.get("Retry-After") ?? "");
  return Number.isFinite(value) ? Math.max(0, value) : null;
}

/** Throws the typed error of an answer that is not the one expected. */
export async function fail(response: Response): Promise<never> {
  const text = await response.text();
  if (response.status >= 400) {
    throw errorFor(response.status, errorBodyOf(response.status, text, response.statusText),
                   retryAfterOf(response));
  }
  throw new TransportError(`unexpected ${response.status} from ${response.url}`);
}

/** The JSON body of a success answer, or the typed error of an error answer. */
export async function decode<T>(response: Response): Promise<T> {
  if (response.status >= 400) return fail(response);
  try {
    return (await response.json()) as T;
  } catch (error) {
    throw new TransportError(`unexpected answer from ${response.url}: ${String(error)}`);
  }
}

export function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

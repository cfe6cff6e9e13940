/**
 * The client's errors. Every error the API answers carries the spec's fields.
 *
 *     ComfyServerlessError
 *      ├── TransportError        the service could not be reached (after the retries)
 *      └── ApiError              an error body: statusCode, errorCode, message, details
 *           ├── BadRequest       400, 422: the request or the workflow is invalid
 *           ├── Unauthorized     401
 *           ├── Forbidden        403
 *           ├── NotFound         404
 *           ├── Conflict         409
 *           │    └── ExecutionFailed   EXECUTION_NOT_SUCCESSFUL: it failed or was cancelled
 *           ├── RateLimited      429: retryAfter seconds (already waited out maxRetries times)
 *           └── ServerError      5xx
 */
import type { ErrorBody } from "./types.js";

export class ComfyServerlessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;  // BadRequest, NotFound …: in the stack and String(error)
  }
}

export class TransportError extends ComfyServerlessError {}

/** `message` is the spec's message; `String(error)` adds the status and the error code. */
export class ApiError extends ComfyServerlessError {
  readonly errorCode: string;
  readonly details: Record<string, unknown>;
  readonly retryInfo: Record<string, unknown> | null;
  readonly documentationUrl: string | null;

  constructor(readonly statusCode: number, readonly body: ErrorBody,
              readonly retryAfter: number | null = null) {
    super(body.message);
    this.errorCode = body.error_code;
    this.details = body.details;
    this.retryInfo = body.retry_info ?? null;
    this.documentationUrl = body.documentation_url ?? null;
  }

  override toString(): string {
    return `${this.name}: ${this.statusCode} ${this.errorCode}: ${this.message}`;
  }
}

export class BadRequest extends ApiError {}
export class Unauthorized extends ApiError {}
export class Forbidden extends ApiError {}
export class NotFound extends ApiError {}
export class Conflict extends ApiError {}
/** The execution ended failed or cancelled: `details.status` says which. */
export class ExecutionFailed extends Conflict {}
export class RateLimited extends ApiError {}
export class ServerError extends ApiError {}

const BY_STATUS: Record<number, typeof ApiError> = {
  400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
  422: BadRequest, 429: RateLimited,
};

/** The most specific error for an error answer. */
export function errorFor(statusCode: number, body: ErrorBody, retryAfter: number | null
): ApiError {
  if (body.error_code === "EXECUTION_NOT_SUCCESSFUL") {
    return new ExecutionFailed(statusCode, body, retryAfter);
  }
  const kind = BY_STATUS[statusCode] ?? (statusCode >= 500 ? ServerError : ApiError);
  return new kind(statusCode, body, retryAfter);
}

/** An answer's error body, or one made from its status when it is not the spec's shape. */
export function errorBodyOf(statusCode: number, text: string, statusText: string): ErrorBody {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === "object" && body !== null && "error_code" in body && "message" in body) {
      const parsed = body as ErrorBody;
      return { ...parsed, details: parsed.details ?? {} };
    }
  } catch {
    // not JSON: described below
  }
  return { status: "error", error_code: `HTTP_${statusCode}`,
           message: text.slice(0, 500) || statusText, details: {} };
}

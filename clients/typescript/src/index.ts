export { Client, type ClientOptions, type RunOptions, type SubmitOptions } from "./client.js";
export {
  ApiError, BadRequest, ComfyServerlessError, Conflict, ExecutionFailed, Forbidden, NotFound,
  RateLimited, ServerError, TransportError, Unauthorized, errorFor,
} from "./errors.js";
export { SseParser } from "./sse.js";
export { STREAM_IDLE_MS, type EventOptions } from "./stream.js";
export { DEFAULT_RETRY, type RetryPolicy } from "./transport.js";
export type * from "./types.js";
export type { components, paths } from "./openapi.js";

/**
 * `new Client({ baseUrl, apiKey })`: submit, status, cancel, results, the event stream,
 * `run()` (submit, follow the events, return the results) and downloads. It mirrors the
 * Python SDK (clients/python) and reads COMFY_SERVERLESS_URL and COMFY_SERVERLESS_API_KEY
 * when not given a URL and a key.
 */
import { randomUUID } from "node:crypto";

import { TransportError } from "./errors.js";
import { followEvents, type EventOptions } from "./stream.js";
import { DEFAULT_RETRY, Transport, decode, fail, type RetryPolicy } from "./transport.js";
import type {
  Accepted, Cancelled, ExecuteRequest, ExecutionStatus, Output, Progress, Results, StreamEvent,
  Workflow,
} from "./types.js";

export interface ClientOptions {
  baseUrl?: string;
  apiKey?: string;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Replaces the global fetch (a proxy agent, a test double). */
  fetch?: typeof fetch;
}

/** The request's other fields (execution_config, output_config …), its overrides, and the
 * Idempotency-Key (a new UUID when not given: a retried submit never runs twice). */
export type SubmitOptions = Partial<Omit<ExecuteRequest, "workflow">> & {
  overrides?: Record<string, unknown>;
  idempotencyKey?: string;
};

export type RunOptions = SubmitOptions & {
  onProgress?: (progress: Progress) => void;
  onEvent?: (event: StreamEvent) => void;
  signal?: AbortSignal;
};

const WORKFLOWS = "/v1/workflows";

export class Client {
  readonly transport: Transport;

  constructor(options: ClientOptions = {}) {
    const env = typeof process === "undefined" ? {} : process.env;
    this.transport = new Transport(
      options.baseUrl ?? env.COMFY_SERVERLESS_URL ?? "http://127.0.0.1:8000",
      options.apiKey ?? env.COMFY_SERVERLESS_API_KEY, options.timeoutMs ?? 30_000,
      { ...DEFAULT_RETRY, ...options.retry }, options.fetch ?? globalThis.fetch.bind(globalThis));
  }

  /** Queue a workflow: a graph, or a whole request body (as in examples/*.json). */
  async submit(workflow: Workflow | ExecuteRequest, options: SubmitOptions = {}
  ): Promise<Accepted> {
    const { overrides, idempotencyKey, ...fields } = options;
    const body: ExecuteRequest = isRequest(workflow) ? { ...workflow } : { workflow };
    if (overrides) body.input_overrides = { ...body.input_overrides, ...overrides };
    Object.assign(body, fields);
    return decode<Accepted>(await this.transport.send({
      method: "POST", path: `${WORKFLOWS}/execute`, body,
      headers: { "Idempotency-Key": idempotencyKey ?? `sdk-${randomUUID()}` },
    }));
  }

  async status(executionId: string): Promise<ExecutionStatus> {
    return decode<ExecutionStatus>(await this.transport.send(
      { method: "GET", path: `${WORKFLOWS}/${encodeURIComponent(executionId)}/status` }));
  }

  async cancel(executionId: string): Promise<Cancelled> {
    return decode<Cancelled>(await this.transport.send(
      { method: "DELETE", path: `${WORKFLOWS}/${encodeURIComponent(executionId)}/cancel` }));
  }

  /** The results, or null while it runs (`wait` holds the request up to 60 s). A failed or
   * cancelled execution throws ExecutionFailed. */
  async results(executionId: string, options: { wait?: number } = {}): Promise<Results | null> {
    const wait = options.wait ?? 0;
    const response = await this.transport.send({
      method: "GET", path: `${WORKFLOWS}/${encodeURIComponent(executionId)}/results`,
      query: { wait: String(wait) }, timeoutMs: this.transport.timeoutMs + wait * 1000,
    });
    if (response.status === 202) {
      await response.body?.cancel();
      return null;
    }
    return decode<Results>(response);
  }

  /** The execution's events until its `end`, reconnecting with Last-Event-ID. */
  events(executionId: string, options: EventOptions = {}): AsyncGenerator<StreamEvent> {
    return followEvents(this.transport, executionId, options);
  }

  /** Submit, follow the events (calling `onProgress` with each progress), and return the
   * results; a failed or cancelled execution throws ExecutionFailed. */
  async run(workflow: Workflow | ExecuteRequest, options: RunOptions = {}): Promise<Results> {
    const { onProgress, onEvent, signal, ...submit } = options;
    const accepted = await this.submit(workflow, submit);
    for await (const event of this.events(accepted.execution_id, signal ? { signal } : {})) {
      onEvent?.(event);
      if (event.event === "progress") onProgress?.(event.data as unknown as Progress);
    }
    const results = await this.results(accepted.execution_id);
    if (results === null) {
      throw new TransportError(`the event stream of ${accepted.execution_id} ended before it`);
    }
    return results;
  }

  /** An output's bytes. Its URL is signed: it is fetched without the API key. */
  async download(output: Output): Promise<Uint8Array> {
    const response = await this.transport.fetch(output.storage.url, {
      signal: AbortSignal.timeout(this.transport.timeoutMs),
    });
    if (response.status !== 200) await fail(response);
    return new Uint8Array(await response.arrayBuffer());
  }
}

function isRequest(workflow: Workflow | ExecuteRequest): workflow is ExecuteRequest {
  return "workflow" in workflow && typeof workflow.workflow === "object";
}

/**
 * GET /v1/workflows/{id}/events, followed to its `end`: when the connection drops (or
 * stays silent past the heartbeats), it reconnects with Last-Event-ID, so every event comes
 * once, in order (docs/how-to/stream.md).
 */
import { TransportError } from "./errors.js";
import { SseParser } from "./sse.js";
import { fail, sleep, type Transport } from "./transport.js";
import type { StreamEvent } from "./types.js";

/** Heartbeats come every 15 s: this long a silence means a dead connection. */
export const STREAM_IDLE_MS = 60_000;

export interface EventOptions {
  /** Resume after this event id (0: from the first event). */
  lastEventId?: number;
  /** Stops the stream (and its reconnects) when aborted. */
  signal?: AbortSignal;
  idleMs?: number;
}

/** The connection broke before the `end` event: a reconnect resumes it. */
class StreamBroken extends Error {}

export async function* followEvents(transport: Transport, executionId: string,
                                    options: EventOptions = {}): AsyncGenerator<StreamEvent> {
  let lastEventId = options.lastEventId ?? 0;
  let failures = 0;  // in a row: an event received starts the count again
  for (;;) {
    try {
      for await (const event of connect(transport, executionId, lastEventId, options)) {
        yield event;
        lastEventId = event.id;
        failures = 0;
        if (event.event === "end") return;
      }
      return;  // 204: the stream had already ended
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (!(error instanceof StreamBroken)) throw error;
      failures += 1;
      const wait = transport.delay(failures, true, null);
      if (wait === null) {
        throw new TransportError(`event stream of ${executionId}: ${error.message}`);
      }
      await sleep(wait);
    }
  }
}

async function* connect(transport: Transport, executionId: string, lastEventId: number,
                        options: EventOptions): AsyncGenerator<StreamEvent> {
  const idle = new IdleTimer(options.idleMs ?? STREAM_IDLE_MS, options.signal);
  try {
    const response = await open(transport, executionId, lastEventId, idle.signal);
    if (response.status === 204) return;
    if (response.status !== 200) await fail(response);
    if (response.body === null) throw new StreamBroken("the stream has no body");
    yield* read(response.body, idle);
  } finally {
    idle.stop();
  }
  throw new StreamBroken("the stream closed before its end event");
}

async function open(transport: Transport, executionId: string, lastEventId: number,
                    signal: AbortSignal): Promise<Response> {
  const extra: Record<string, string> = { Accept: "text/event-stream" };
  if (lastEventId > 0) extra["Last-Event-ID"] = String(lastEventId);
  try {
    return await transport.fetch(transport.url(`/v1/workflows/${encodeURIComponent(executionId)}/events`),
                       { headers: transport.headers(extra), signal });
  } catch (error) {
    throw new StreamBroken(String(error));
  }
}

async function* read(body: ReadableStream<Uint8Array>, idle: IdleTimer
): AsyncGenerator<StreamEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw new StreamBroken(String(error));
      }
      if (chunk.done) return;
      idle.reset();
      yield* parser.feed(decoder.decode(chunk.value, { stream: true }));
    }
  } finally {
    await reader.cancel().catch(() => undefined);  // a consumer that stopped early hangs up
  }
}

/** Aborts its signal after `ms` without a reset, or when `outer` aborts (as
 * AbortSignal.any would, which Node.js 18 lacks). */
class IdleTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;
  private readonly onOuterAbort: () => void;

  constructor(private readonly ms: number, private readonly outer?: AbortSignal) {
    this.timer = this.start();
    this.onOuterAbort = () => this.controller.abort(outer?.reason);
    if (outer?.aborted) this.onOuterAbort();
    outer?.addEventListener("abort", this.onOuterAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  reset(): void {
    clearTimeout(this.timer);
    this.timer = this.start();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.outer?.removeEventListener("abort", this.onOuterAbort);
  }

  private start(): NodeJS.Timeout {
    return setTimeout(() => this.controller.abort(new Error(`no data for ${this.ms} ms`)), this.ms);
  }
}

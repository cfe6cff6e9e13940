// The client against a running service (COMFY_SERVERLESS_URL, COMFY_SERVERLESS_API_KEY):
// tests/clients/test_typescript_client.py starts one on the real tiny ComfyUI and runs this.
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { before, test } from "node:test";

import {
  BadRequest, Client, ExecutionFailed, NotFound, type Progress, type StreamEvent, type Workflow,
} from "../src/index.js";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47];
let client: Client;

before(() => {
  for (const name of ["COMFY_SERVERLESS_URL", "COMFY_SERVERLESS_API_KEY"]) {
    if (!process.env[name]) throw new Error(`${name} must name the running service and a key`);
  }
  client = new Client();
});

/** Weight-free and fast: EmptyImage → ImageInvert → SaveImage (a new colour dodges
 * ComfyUI's cache). */
function invertedImage(): Workflow {
  return {
    "1": { class_type: "EmptyImage",
           inputs: { width: 32, height: 32, batch_size: 1, color: randomInt(2 ** 24) } },
    "2": { class_type: "ImageInvert", inputs: { image: ["1", 0] } },
    "3": { class_type: "SaveImage", inputs: { filename_prefix: "ts", images: ["2", 0] } },
  };
}

/** A sampler job long enough to cancel while it is queued or running. */
function longSampler(): Workflow {
  const checkpoint = ["4", 0];
  return {
    "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "tiny-sd15.safetensors" } },
    "6": { class_type: "CLIPTextEncode", inputs: { text: "a cat", clip: ["4", 1] } },
    "5": { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } },
    "3": { class_type: "KSampler", inputs: {
      seed: randomInt(2 ** 31), steps: 1000, cfg: 7.0, sampler_name: "euler",
      scheduler: "normal", denoise: 1.0, model: checkpoint, positive: ["6", 0],
      negative: ["6", 0], latent_image: ["5", 0] } },
    "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
    "9": { class_type: "SaveImage", inputs: { filename_prefix: "ts", images: ["8", 0] } },
  };
}

test("run() streams the events to the end and returns results whose output downloads",
     async () => {
  const events: StreamEvent[] = [];
  const progress: Progress[] = [];
  const results = await client.run(invertedImage(), {
    onEvent: (event) => events.push(event), onProgress: (update) => progress.push(update),
  });
  assert.deepEqual(events.map((event) => event.id), events.map((_, index) => index + 1));
  assert.equal(events.at(-1)?.event, "end");
  assert.ok(events.some((event) => event.event === "output"));
  // A job this short may end before a progress event: each that came was passed on.
  assert.equal(progress.length, events.filter((event) => event.event === "progress").length);
  assert.ok(progress.every((update) => update.progress >= 0 && update.progress <= 1));
  assert.equal(results.status, "completed");
  const [output] = results.results.outputs;
  assert.ok(output, "the SaveImage node stored an output");
  const bytes = await client.download(output);
  assert.deepEqual([...bytes.subarray(0, 4)], PNG_SIGNATURE);
  assert.equal(bytes.length, output.file_info.size_bytes);
});

test("a stream resumed with Last-Event-ID gives the rest, once, in order", async () => {
  const accepted = await client.submit(invertedImage());
  const all = await collect(client.events(accepted.execution_id));
  const middle = Math.floor(all.length / 2);
  const rest = await collect(client.events(accepted.execution_id,
                                           { lastEventId: all[middle - 1]?.id ?? 0 }));
  // Ids and kinds: an output event's signed URL is signed anew at each read.
  const idAndKind = (event: StreamEvent) => `${event.id} ${event.event}`;
  assert.deepEqual(rest.map(idAndKind), all.slice(middle).map(idAndKind));
  assert.deepEqual(await collect(client.events(accepted.execution_id,
                                               { lastEventId: all.at(-1)?.id ?? 0 })), []);
  const results = await client.results(accepted.execution_id, { wait: 30 });
  assert.equal(results?.status, "completed");
});

test("a stream cut mid-run reconnects with Last-Event-ID: nothing lost or repeated",
     async () => {
  const resumedFrom: (string | null)[] = [];
  const cutting = new Client({ fetch: async (input, init) => {
    const response = await fetch(input, init);
    if (!String(input).endsWith("/events")) return response;
    resumedFrom.push(new Headers(init?.headers).get("Last-Event-ID"));
    return resumedFrom.length === 1 ? cutAfterEvents(response, 2) : response;
  } });
  const events: StreamEvent[] = [];
  const results = await cutting.run(invertedImage(), { onEvent: (event) => events.push(event) });
  assert.deepEqual(resumedFrom, [null, "2"]);
  assert.deepEqual(events.map((event) => event.id), events.map((_, index) => index + 1));
  assert.equal(events.at(-1)?.event, "end");
  assert.equal(results.status, "completed");
});

/** The response, its body broken (as by a dropped connection) after `count` events: the
 * frames pass one by one, on demand, so the reader has the events before the break. */
function cutAfterEvents(response: Response, count: number): Response {
  const upstream = response.body?.getReader();
  assert.ok(upstream);
  const decoder = new TextDecoder();
  const frames: string[] = [];
  let partial = "";
  let seen = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (frames.length === 0) {
        const { done, value } = await upstream.read();
        if (done) return controller.close();
        const pieces = (partial + decoder.decode(value, { stream: true })).split(/(?<=\n\n)/);
        partial = pieces.at(-1)?.endsWith("\n\n") ? "" : pieces.pop() ?? "";
        frames.push(...pieces);
      }
      const frame = frames.shift() ?? "";
      if (frame.startsWith("id:") && seen++ === count) {
        await upstream.cancel();
        return controller.error(new Error("connection dropped"));
      }
      controller.enqueue(new TextEncoder().encode(frame));
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status: response.status, headers: response.headers });
}

test("a submit retried with its Idempotency-Key runs once", async () => {
  const workflow = invertedImage();
  const idempotencyKey = `ts-${randomInt(2 ** 31)}`;
  const first = await client.submit(workflow, { idempotencyKey });
  const again = await client.submit(workflow, { idempotencyKey });
  assert.equal(again.execution_id, first.execution_id);
  assert.notEqual((await client.results(first.execution_id, { wait: 30 })), null);
});

test("a cancelled execution's results throw ExecutionFailed", async () => {
  const accepted = await client.submit(longSampler());
  const cancelled = await client.cancel(accepted.execution_id);
  assert.equal(cancelled.status, "cancelled");
  assert.equal((await client.status(accepted.execution_id)).status, "cancelled");
  const failure = await client.results(accepted.execution_id).catch((error: unknown) => error);
  assert.ok(failure instanceof ExecutionFailed, String(failure));
  assert.equal(failure.statusCode, 409);
  assert.equal(failure.errorCode, "EXECUTION_NOT_SUCCESSFUL");
  assert.equal(failure.details.status, "cancelled");
});

test("a bad request and an unknown execution throw typed errors with the spec's fields",
     async () => {
  const unknownNode = { "1": { class_type: "NoSuchNode", inputs: {} } };
  const invalid = await client.submit(unknownNode).catch((error: unknown) => error);
  assert.ok(invalid instanceof BadRequest, String(invalid));
  assert.ok([400, 422].includes(invalid.statusCode));
  assert.equal(invalid.body.status, "error");
  assert.ok(invalid.errorCode && invalid.message);
  assert.equal(typeof invalid.details, "object");
  const missing = await client.status("exec_doesnotexist").catch((error: unknown) => error);
  assert.ok(missing instanceof NotFound, String(missing));
  assert.equal(missing.errorCode, "EXECUTION_NOT_FOUND");
  assert.equal(missing.details.execution_id, "exec_doesnotexist");
});

async function collect(events: AsyncGenerator<StreamEvent>): Promise<StreamEvent[]> {
  const all: StreamEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

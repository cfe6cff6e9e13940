// Retries and typed errors, without a service: a fetch double answers in turn.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BadRequest, Client, RateLimited, TransportError } from "../src/index.js";

interface Sent { method: string; idempotencyKey: string | null }

function answering(...answers: (() => Response)[]): { client: Client; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetchDouble = async (_input: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    sent.push({ method: init?.method ?? "GET", idempotencyKey: headers.get("Idempotency-Key") });
    const next = answers[sent.length - 1];
    if (next === undefined) throw new TypeError("fetch failed");
    return next();
  };
  const client = new Client({ baseUrl: "http://127.0.0.1:1", apiKey: "k", fetch: fetchDouble,
                              retry: { backoffSeconds: 0.001 } });
  return { client, sent };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json",
                                                          ...headers } });
const ACCEPTED = { status: "accepted", execution_id: "exec_1", status_url: "/s", cancel_url: "/c" };
const RATE_LIMITED = { status: "error", error_code: "RATE_LIMIT_EXCEEDED", message: "slow down",
                       details: { limit: 1 }, retry_info: { retry_after: 0 } };

test("a 429 is retried after its Retry-After, with the same Idempotency-Key", async () => {
  const { client, sent } = answering(json(429, RATE_LIMITED, { "Retry-After": "0" }),
                                     json(202, ACCEPTED));
  const accepted = await client.submit({ "1": { class_type: "X", inputs: {} } });
  assert.equal(accepted.execution_id, "exec_1");
  assert.equal(sent.length, 2);
  assert.ok(sent[0]?.idempotencyKey);
  assert.equal(sent[1]?.idempotencyKey, sent[0]?.idempotencyKey);
});

test("a 429 still there after the retries is a RateLimited with the spec's fields", async () => {
  const refused = json(429, RATE_LIMITED, { "Retry-After": "0" });
  const { client, sent } = answering(refused, refused, refused, refused);
  const error = await client.status("exec_1").catch((thrown: unknown) => thrown);
  assert.ok(error instanceof RateLimited);
  assert.equal(sent.length, 4);
  assert.deepEqual([error.statusCode, error.errorCode, error.message, error.retryAfter],
                   [429, "RATE_LIMIT_EXCEEDED", "slow down", 0]);
  assert.deepEqual(error.details, { limit: 1 });
  assert.deepEqual(error.retryInfo, { retry_after: 0 });
});

test("a 400 is not retried, and a body that is not JSON still gives a typed error", async () => {
  const { client, sent } = answering(() => new Response("bad gateway page", { status: 400 }));
  const error = await client.cancel("exec_1").catch((thrown: unknown) => thrown);
  assert.ok(error instanceof BadRequest);
  assert.equal(sent.length, 1);
  assert.equal(error.errorCode, "HTTP_400");
  assert.equal(error.message, "bad gateway page");
  assert.equal(String(error), "BadRequest: 400 HTTP_400: bad gateway page");
});

test("a service that cannot be reached is a TransportError after the retries", async () => {
  const { client, sent } = answering();
  const error = await client.status("exec_1").catch((thrown: unknown) => thrown);
  assert.ok(error instanceof TransportError);
  assert.equal(sent.length, 4);
});

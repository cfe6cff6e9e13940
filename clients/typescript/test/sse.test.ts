// The SSE parser, without a service: events split anywhere across chunks, any line ending.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser } from "../src/sse.js";

const STREAM = "retry: 1000\n: stream of exec_1\n\n" +
  'id: 1\nevent: status\ndata: {"status":"queued"}\n\n' +
  ": heartbeat\n\n" +
  'id: 2\nevent: end\ndata: {"status":"completed"}\n\n';

test("every event of a stream, however it is cut into chunks", () => {
  for (let size = 1; size <= STREAM.length; size++) {
    const parser = new SseParser();
    const events = [];
    for (let start = 0; start < STREAM.length; start += size) {
      events.push(...parser.feed(STREAM.slice(start, start + size)));
    }
    assert.deepEqual(events, [
      { id: 1, event: "status", data: { status: "queued" } },
      { id: 2, event: "end", data: { status: "completed" } },
    ], `chunks of ${size}`);
  }
});

test("CRLF line ends split between chunks, and data on several lines", () => {
  const parser = new SseParser();
  const events = [
    ...parser.feed('id: 7\r\nevent: log\r\ndata: {"a":\r'),
    ...parser.feed('\ndata: 1}\r\n\r'),
    ...parser.feed("\n"),
  ];
  assert.deepEqual(events, [{ id: 7, event: "log", data: { a: 1 } }]);
});

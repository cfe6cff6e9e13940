/** Server-Sent Events, parsed from the text of a stream as it arrives in chunks of any size
 * (an event, or a line, may be split across chunks). Comments (heartbeats) are skipped. */
import type { StreamEvent } from "./types.js";

export class SseParser {
  private pending = "";
  private fields = new Map<string, string>();

  /** The events that `chunk` completes. */
  feed(chunk: string): StreamEvent[] {
    let text = this.pending + chunk;
    // A final "\r" may be the first half of a "\r\n": it waits for the next chunk.
    const held = text.endsWith("\r") ? "\r" : "";
    text = text.slice(0, text.length - held.length);
    const lines = text.split(/\r\n|\r|\n/);
    this.pending = (lines.pop() ?? "") + held;  // the piece with no line end yet
    const events: StreamEvent[] = [];
    for (const line of lines) {
      const event = this.line(line);
      if (event !== null) events.push(event);
    }
    return events;
  }

  private line(line: string): StreamEvent | null {
    if (line !== "") {
      if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        const earlier = name === "data" ? this.fields.get("data") : undefined;
        this.fields.set(name, earlier === undefined ? value : `${earlier}\n${value}`);
      }
      return null;
    }
    const fields = this.fields;
    this.fields = new Map();
    const id = fields.get("id");
    const data = fields.get("data");
    if (id === undefined || data === undefined) return null;
    return { id: Number(id), event: fields.get("event") ?? "message",
             data: JSON.parse(data) as Record<string, unknown> };
  }
}

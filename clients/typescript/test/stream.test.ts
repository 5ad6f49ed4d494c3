// Resuming a stream cut anywhere, even in the middle of an event, against a scripted server.
import { test } from "node:test";
import assert from "node:assert/strict";

import { NgxClient, type StreamEvent } from "../src/index.js";

const EVENTS = [
  'retry: 10\nid: s:1\nevent: meta\ndata: {"conversation_id":"c","message_id":"m","model":"g","request_id":"q"}\n\n',
  'id: s:2\nevent: delta\ndata: {"text":"Hel"}\n\n',
  'id: s:3\nevent: delta\ndata: {"text":"lo"}\n\n',
  'id: s:4\nevent: done\ndata: {"finish_reason":"stop"}\n\n',
];
const WHOLE = EVENTS.join("");

/** A server that cuts its first response after `cutAt` characters, then serves from Last-Event-ID. */
function server(cutAt: number) {
  const asked: (string | null)[] = [];
  const fake: typeof fetch = async (_input, init) => {
    const last = new Headers(init?.headers).get("Last-Event-ID");
    asked.push(last);
    const encoder = new TextEncoder();
    const body =
      asked.length === 1
        ? new ReadableStream<Uint8Array>({
            pulls: 0,
            pull(controller) {
              // The bytes first; the failure on the next read (an error discards queued chunks).
              if (this.pulls++ === 0) controller.enqueue(encoder.encode(WHOLE.slice(0, cutAt)));
              else controller.error(new TypeError("network connection lost"));
            },
          } as UnderlyingDefaultSource<Uint8Array> & { pulls: number })
        : new ReadableStream<Uint8Array>({
            start(controller) {
              const after = EVENTS.findIndex((e) => e.includes(`id: ${last}\n`)) + 1;
              controller.enqueue(encoder.encode(EVENTS.slice(after).join("")));
              controller.close();
            },
          });
    return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
  };
  return { fake, asked };
}

test("a stream cut at any character resumes after the last whole event: each event once", async () => {
  const firstEventEnds = EVENTS[0].length;
  for (let cutAt = firstEventEnds; cutAt < WHOLE.length; cutAt++) {
    const { fake, asked } = server(cutAt);
    const client = new NgxClient({ baseUrl: "http://127.0.0.1:1", fetch: fake, retry: { initialDelayMs: 1 } });
    const seen: StreamEvent[] = [];
    for await (const event of client.stream({ message: "hi" })) seen.push(event);
    assert.deepEqual(seen.map((e) => e.id), ["s:1", "s:2", "s:3", "s:4"], `cut at ${cutAt}`);
    assert.equal(asked.length, 2, `cut at ${cutAt}`);
    // Cut inside an event (its id line included): resume before it, not after.
    const whole = EVENTS.filter((_, i) => EVENTS.slice(0, i + 1).join("").length <= cutAt).length;
    assert.equal(asked[1], `s:${whole}`, `cut at ${cutAt}`);
  }
});

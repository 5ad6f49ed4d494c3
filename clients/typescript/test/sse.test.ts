// The Server-Sent Events parser against the WHATWG HTML standard's event stream rules and examples.
import { test } from "node:test";
import assert from "node:assert/strict";

import { EventStreamParser, readEventStream, type ServerSentEvent } from "../src/sse.js";

const parse = (...chunks: string[]): { events: ServerSentEvent[]; parser: EventStreamParser } => {
  const parser = new EventStreamParser();
  const events = chunks.flatMap((chunk) => parser.feed(chunk));
  parser.end();
  return { events, parser };
};

/** Every way of cutting `text` in two, fed as two chunks, gives the same events as one chunk. */
const everySplit = (text: string): void => {
  const whole = parse(text).events;
  for (let i = 0; i <= text.length; i++) {
    assert.deepEqual(parse(text.slice(0, i), text.slice(i)).events, whole, `split at ${i}`);
  }
};

test("the standard's stock example: multi-line data joins with LF, comments are skipped", () => {
  const text = ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
  const { events } = parse(text);
  assert.deepEqual(events, [
    { type: "message", data: "first event", lastEventId: "1" },
    { type: "message", data: "second event", lastEventId: "" },
    { type: "message", data: " third event", lastEventId: "" },
  ]);
  everySplit(text);
});

test("the standard's two-events example: the last block without a blank line is dropped", () => {
  const { events } = parse("data\n\ndata\ndata\n\ndata:");
  assert.deepEqual(events, [
    { type: "message", data: "", lastEventId: "" },
    { type: "message", data: "\n", lastEventId: "" },
  ]);
});

test("the standard's space example: one leading space is removed, no more", () => {
  const { events } = parse("data:test\n\ndata: test\n\n");
  assert.deepEqual(events.map((e) => e.data), ["test", "test"]);
  assert.deepEqual(parse("data:  two\n\n").events[0].data, " two");
});

test("multi-line data: YHOO example", () => {
  const { events } = parse("data: YHOO\ndata: +2\ndata: 10\n\n");
  assert.equal(events[0].data, "YHOO\n+2\n10");
});

test("CRLF, CR and LF line ends all work, mixed in one stream, at every split", () => {
  for (const eol of ["\r\n", "\r", "\n"]) {
    const text = `event: delta${eol}id: s:1${eol}data: {"text":"a"}${eol}${eol}data: b${eol}${eol}`;
    const { events } = parse(text);
    assert.deepEqual(events, [
      { type: "delta", data: '{"text":"a"}', lastEventId: "s:1" },
      { type: "message", data: "b", lastEventId: "s:1" },
    ]);
    everySplit(text);
  }
  const mixed = "data: one\r\ndata: two\rdata: three\n\r\n";
  assert.deepEqual(parse(mixed).events, [{ type: "message", data: "one\ntwo\nthree", lastEventId: "" }]);
  everySplit(mixed);
});

test("a CR at the end of a chunk and the LF starting the next are one line end", () => {
  const { events } = parse("data: x\r", "\n\r", "\n");
  assert.deepEqual(events, [{ type: "message", data: "x", lastEventId: "" }]);
  // Two CRs in a row are two line ends: the event is dispatched.
  assert.equal(parse("data: y\r\r").events.length, 1);
});

test("every byte boundary of a real stream, fed byte by byte, gives the same events", () => {
  const text =
    'retry: 3000\nid: s1:1\nevent: meta\ndata: {"conversation_id":"c"}\n\n: heartbeat\r\n' +
    'id: s1:2\r\nevent: delta\r\ndata: {"text":"héllo ✓"}\r\n\r\nid: s1:3\revent: done\rdata: {}\r\r';
  const whole = parse(text);
  const parser = new EventStreamParser();
  const bytes = [...text].map((c) => c);
  const events = bytes.flatMap((c) => parser.feed(c));
  assert.deepEqual(events, whole.events);
  assert.deepEqual(whole.events.map((e) => e.type), ["meta", "delta", "done"]);
  assert.equal(whole.parser.retryMs, 3000);
  assert.equal(whole.parser.comments, 1);
  everySplit(text);
});

test("UTF-8 split inside a character decodes across chunks", async () => {
  const encoded = new TextEncoder().encode('data: {"text":"naïve 日本 🙂"}\n\n');
  for (let i = 0; i <= encoded.length; i++) {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoded.slice(0, i));
        controller.enqueue(encoded.slice(i));
        controller.close();
      },
    });
    const seen: ServerSentEvent[] = [];
    for await (const event of readEventStream(body)) seen.push(event);
    assert.equal(seen.length, 1);
    assert.equal(JSON.parse(seen[0].data).text, "naïve 日本 🙂");
  }
});

test("comments are ignored, also between fields of one event", () => {
  const { events, parser } = parse(": hi\ndata: a\n: keep-alive\ndata: b\n\n:\n\n");
  assert.deepEqual(events, [{ type: "message", data: "a\nb", lastEventId: "" }]);
  assert.equal(parser.comments, 3);
});

test("retry takes ASCII digits only", () => {
  assert.equal(parse("retry: 1500\n\n").parser.retryMs, 1500);
  for (const bad of ["retry: 1.5\n\n", "retry: -1\n\n", "retry: 10a\n\n", "retry: \n\n", "retry: ١٢\n\n"]) {
    assert.equal(parse(bad).parser.retryMs, null, bad);
  }
  const { parser } = parse("retry: 100\n\nretry: x\n\n");
  assert.equal(parser.retryMs, 100);
});

test("id persists across events, is reset by an empty id, and NUL makes it ignored", () => {
  const { events } = parse("id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 8\u0000\ndata: d\n\n");
  assert.deepEqual(events.map((e) => e.lastEventId), ["7", "7", "", ""]);
  // An id line alone changes the buffer without dispatching.
  const { events: later, parser } = parse("id: 9\n\ndata: e\n\n");
  assert.deepEqual(later, [{ type: "message", data: "e", lastEventId: "9" }]);
  assert.equal(parser.lastEventId, "9");
});

test("a field with no colon is a field with an empty value; unknown fields are ignored", () => {
  const { events } = parse("data\nfoo: bar\nevent\n\n");
  assert.deepEqual(events, [{ type: "message", data: "", lastEventId: "" }]);
});

test("an event type without data dispatches nothing and does not leak into the next event", () => {
  const { events } = parse("event: delta\n\ndata: x\n\n");
  assert.deepEqual(events, [{ type: "message", data: "x", lastEventId: "" }]);
});

test("one leading BOM is dropped; a second is data", () => {
  assert.deepEqual(parse("\uFEFFdata: a\n\n").events[0].data, "a");
  assert.deepEqual(parse("\uFEFF", "data: a\n\n").events[0].data, "a");
  assert.equal(parse("\uFEFF\uFEFFdata: a\n\n").events.length, 0); // the field name is "\uFEFFdata"
});

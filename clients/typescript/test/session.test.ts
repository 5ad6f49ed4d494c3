// Session behaviour against a scripted server (a fake WebSocket): resume after a reconnect,
// cancels routed to the right answer, messages held while reconnecting, clean endings.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApiError, NgxClient, SessionClosedError, type StreamEvent } from "../src/index.js";

class FakeSocket {
  static made: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeSocket.made.push(this);
  }

  send(text: string): void {
    assert.equal(this.readyState, 1, "sent on a socket that is not open");
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The server's side. */
  accept(): void {
    this.readyState = 1;
    this.emit({ type: "ready", data: { session_id: "s", protocol: "ngx.v1", expires_in_s: 3000, idle_timeout_s: 300, max_frame_bytes: 65536, max_streams: 4 } });
  }

  emit(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code: number): void {
    this.close(code, "server");
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await tick();
  assert.ok(check(), `timed out waiting for ${what}`);
}

function client(): NgxClient {
  return new NgxClient({
    baseUrl: "http://127.0.0.1:1",
    token: "tok",
    retry: { initialDelayMs: 2, attempts: 3 },
    WebSocket: FakeSocket as unknown as typeof WebSocket,
  });
}

async function opened() {
  FakeSocket.made = [];
  const pending = client().openSession();
  await until(() => FakeSocket.made.length === 1, "the socket");
  const socket = FakeSocket.made[0];
  socket.accept();
  return { session: await pending, socket };
}

const event = (type: string, ref: string, seq: number, data: Record<string, unknown> = {}) => ({
  type,
  ref,
  stream_id: "sa",
  id: `sa:${seq}`,
  data,
});

async function collect(events: AsyncGenerator<StreamEvent>, into: StreamEvent[]): Promise<void> {
  for await (const e of events) into.push(e);
}

test("the credential rides in a subprotocol, never in the URL", async () => {
  const { session, socket } = await opened();
  assert.deepEqual(socket.protocols, ["ngx.v1", "ngx.bearer.tok"]);
  assert.equal(socket.url, "ws://127.0.0.1:1/v1/sessions");
  session.close();
});

test("a 4000 close reconnects and resumes after the last event: each event once", async () => {
  const { session, socket } = await opened();
  const seen: StreamEvent[] = [];
  const done = collect(session.chat({ message: "hi" }), seen);
  await until(() => socket.sent.length === 1, "the chat message");
  const chat = socket.sent[0] as { type: string; ref: string; request: { request_id: string } };
  assert.equal(chat.type, "chat");
  assert.ok(chat.request.request_id, "a request_id makes a resend idempotent");
  socket.emit(event("meta", chat.ref, 1, { conversation_id: "c", message_id: "m", model: "g", request_id: "q" }));
  socket.emit(event("delta", chat.ref, 2, { text: "Hel" }));
  socket.emit({ type: "reconnect", data: { reason: "time", drain_s: 0, last_event_ids: ["sa:2"] } });
  socket.drop(4000);
  await until(() => FakeSocket.made.length === 2, "a new connection");
  const second = FakeSocket.made[1];
  second.accept();
  await until(() => second.sent.length === 1, "the resume");
  assert.deepEqual(second.sent[0], { type: "resume", ref: chat.ref, last_event_id: "sa:2" });
  second.emit(event("delta", chat.ref, 3, { text: "lo" }));
  second.emit(event("done", chat.ref, 4, { finish_reason: "stop" }));
  await done;
  assert.deepEqual(seen.map((e) => e.id), ["sa:1", "sa:2", "sa:3", "sa:4"]);
  session.close();
});

test("an answer stopped before its stream id is cancelled by id when it comes; others go on", async () => {
  const { session, socket } = await opened();
  const stopped = new AbortController();
  const first = collect(session.chat({ message: "one" }, { signal: stopped.signal }), []);
  const seen: StreamEvent[] = [];
  const second = collect(session.chat({ message: "two" }), seen);
  await until(() => socket.sent.length === 2, "both chats");
  const [r1, r2] = socket.sent.map((m) => m.ref as string);
  stopped.abort();
  await assert.rejects(first, (e: unknown) => e instanceof Error && e.name === "AbortError");
  socket.emit({ ...event("meta", r1, 1), stream_id: "sx", id: "sx:1" });
  await until(() => socket.sent.length === 3, "the cancel");
  assert.deepEqual(socket.sent[2], { type: "cancel", stream_id: "sx" });
  socket.emit(event("delta", r2, 1, { text: "still here" }));
  socket.emit(event("done", r2, 2, { finish_reason: "stop" }));
  await second;
  assert.equal(seen.length, 2);
  session.close();
});

test("leaving the loop early cancels that answer's stream", async () => {
  const { session, socket } = await opened();
  const reading = (async () => {
    for await (const e of session.chat({ message: "long" })) if (e.event === "delta") break;
  })();
  await until(() => socket.sent.length === 1, "the chat");
  const ref = socket.sent[0].ref as string;
  socket.emit(event("meta", ref, 1));
  socket.emit(event("delta", ref, 2, { text: "x" }));
  await reading;
  assert.deepEqual(socket.sent[1], { type: "cancel", stream_id: "sa" });
  session.close();
});

test("a server-side cancel of every answer ends each of them", async () => {
  const { session, socket } = await opened();
  const a = collect(session.chat({ message: "a" }), []);
  const b = collect(session.chat({ message: "b" }), []);
  await until(() => socket.sent.length === 2, "both chats");
  const [ra, rb] = socket.sent.map((m) => m.ref as string);
  socket.emit({ ...event("meta", ra, 1), stream_id: "s1" });
  socket.emit({ ...event("meta", rb, 1), stream_id: "s2" });
  session.cancel();
  await assert.rejects(a, (e: unknown) => e instanceof Error && e.name === "AbortError");
  await assert.rejects(b, (e: unknown) => e instanceof Error && e.name === "AbortError");
  assert.deepEqual(socket.sent.at(-1), { type: "cancel" });
  session.close();
});

test("an error event is an ApiError with the status of its code", async () => {
  const { session, socket } = await opened();
  const answer = collect(session.chat({ message: "x" }), []);
  await until(() => socket.sent.length === 1, "the chat");
  const error = { code: "conflict", message: "4 answers are running", details: [], request_id: "q" };
  socket.emit({ type: "error", ref: socket.sent[0].ref, data: { error } });
  await assert.rejects(answer, (e: unknown) => e instanceof ApiError && e.status === 409 && e.code === "conflict");
  session.close();
});

test("a ping sent while reconnecting waits for the new connection", async () => {
  const { session, socket } = await opened();
  const early = session.ping();
  socket.drop(1006);
  await assert.rejects(early, SessionClosedError); // its connection is gone
  const late = session.ping(); // sent while no connection is open
  await until(() => FakeSocket.made.length === 2, "a new connection");
  FakeSocket.made[1].accept();
  await until(() => FakeSocket.made[1].sent.length === 1, "the held ping");
  FakeSocket.made[1].emit({ type: "pong", data: {} });
  await late;
  session.close();
});

test("closing during the reconnect backoff opens nothing more", async () => {
  const { session, socket } = await opened();
  socket.drop(1012);
  session.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(FakeSocket.made.length, 1);
  assert.equal((await session.whenClosed()).code, 1000);
});

test("a refusal (4401) ends the session for every waiter; running answers fail", async () => {
  const { session, socket } = await opened();
  const answer = collect(session.chat({ message: "x" }), []);
  await until(() => socket.sent.length === 1, "the chat");
  const waiters = [session.whenClosed(), session.whenClosed()];
  socket.drop(4401);
  await assert.rejects(answer, (e: unknown) => e instanceof SessionClosedError && e.code === 4401);
  for (const closed of await Promise.all(waiters)) assert.equal(closed.code, 4401);
  assert.equal(FakeSocket.made.length, 1);
});

// Runs against the local stack: NGX_CHAT_URL, NGX_STREAM_URL, NGX_TOKEN and NGX_VERTEX_ADMIN
// come from tests/e2e/test_typescript_client.py, which starts it.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApiError, NgxClient, backoffMs, type StreamEvent } from "../src/index.js";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const chatUrl = env("NGX_CHAT_URL");
const streamUrl = env("NGX_STREAM_URL");
const admin = env("NGX_VERTEX_ADMIN");
const token = env("NGX_TOKEN");

const client = (extra: Partial<ConstructorParameters<typeof NgxClient>[0]> = {}) =>
  new NgxClient({ baseUrl: chatUrl, streamUrl, token, retry: { initialDelayMs: 20 }, ...extra });

async function calls(): Promise<{ total: number; cancelled: Record<string, unknown> }> {
  return (await (await fetch(`${admin}/calls`)).json()) as { total: number; cancelled: Record<string, unknown> };
}

const textOf = (events: StreamEvent[]) =>
  events.map((e) => (e.event === "delta" ? e.data.text : "")).join("");

test("backoff is full jitter under an exponential ceiling", () => {
  const policy = { attempts: 5, initialDelayMs: 100, maxDelayMs: 1000 };
  assert.equal(backoffMs(3, policy, () => 0.999), 799);
  assert.equal(backoffMs(10, policy, () => 0.5), 500);
  assert.equal(backoffMs(0, policy, () => 0), 0);
});

test("chat answers, and a replayed idempotency key returns the same answer", async () => {
  const api = client();
  const first = await api.chat({ message: "hello from typescript" }, { idempotencyKey: "ts-1" });
  const again = await api.chat({ message: "hello from typescript" }, { idempotencyKey: "ts-1" });
  assert.ok(first.text.length > 0);
  assert.equal(first.usage.model, "gemini-2.5-flash");
  assert.deepEqual(again, first);
});

test("chat retries a network failure without a second answer", async () => {
  let failed = false;
  const flaky: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!failed) {
      failed = true; // the answer was produced, but the client never sees it
      throw new TypeError("fetch failed");
    }
    return response;
  };
  const before = (await calls()).total;
  const answer = await client({ fetch: flaky }).chat({ message: "survive a dropped reply", tier: "fast" });
  assert.ok(answer.text.length > 0);
  assert.equal((await calls()).total - before, 1);
});

test("chat waits out a 409 for its idempotency key and gets the one answer", async () => {
  let seen = 0;
  const busyFirst: typeof fetch = async (input, init) => {
    if (seen++ === 0) {
      // What the chat function answers while the first request with this key still runs.
      const error = { code: "conflict", message: "still running", details: [], request_id: "r" };
      return new Response(JSON.stringify({ error }), {
        status: 409,
        headers: { "Content-Type": "application/json", "Retry-After": "0" },
      });
    }
    return fetch(input, init);
  };
  const before = (await calls()).total;
  const answer = await client({ fetch: busyFirst }).chat({ message: "wait for the first", tier: "fast" });
  assert.ok(answer.text.length > 0);
  assert.equal(seen, 2);
  assert.equal((await calls()).total - before, 1);
});

test("errors arrive as ApiError with the envelope", async () => {
  const api = new NgxClient({ baseUrl: chatUrl, token: "not-a-token" });
  await assert.rejects(api.chat({ message: "hi" }), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 401);
    assert.equal(error.body.code, "unauthenticated");
    assert.ok(error.body.request_id.length > 0);
    return true;
  });
});

test("stream yields meta, deltas, usage and done", async () => {
  const events: StreamEvent[] = [];
  for await (const event of client().stream({ message: "stream to typescript" })) events.push(event);
  assert.deepEqual(events.map((e) => e.event).slice(-2), ["usage", "done"]);
  assert.equal(events[0].event, "meta");
  assert.ok(textOf(events).length > 0);
});

test("a dropped stream resumes with Last-Event-ID: every event once, one model call", async () => {
  let cut = false;
  const cutting: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (cut || !response.body) return response;
    cut = true;
    const reader = response.body.getReader();
    let seen = 0;
    const truncated = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        controller.enqueue(value);
        seen += (new TextDecoder().decode(value).match(/\nevent: /g) ?? []).length;
        if (seen >= 3) {
          await reader.cancel();
          controller.error(new TypeError("network connection lost"));
        }
      },
    });
    return new Response(truncated, { status: response.status, headers: response.headers });
  };
  const before = (await calls()).total;
  const events: StreamEvent[] = [];
  for await (const event of client({ fetch: cutting }).stream({ message: "resume in typescript" })) {
    events.push(event);
  }
  assert.ok(cut);
  const sid = events[0].event === "meta" ? events[0].data.message_id : "";
  assert.deepEqual(events.map((e) => e.id), events.map((_, i) => `${sid}:${i + 1}`));
  assert.equal(events.at(-1)?.event, "done");
  assert.equal((await calls()).total - before, 1);
  const cached = await client().chat({ message: "resume in typescript" });
  assert.equal(textOf(events), cached.text);
});

test("aborting a stream stops it and cancels the model call", async () => {
  const controller = new AbortController();
  const seen: StreamEvent[] = [];
  await assert.rejects(
    (async () => {
      for await (const event of client().stream({ message: "abort me" }, { signal: controller.signal })) {
        seen.push(event);
        if (event.event === "delta") controller.abort();
      }
    })(),
    (error: unknown) => error instanceof Error && error.name === "AbortError",
  );
  assert.equal(seen.at(-1)?.event, "delta");
  const deadline = Date.now() + 1500;
  while (Object.keys((await calls()).cancelled).length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.ok(Object.keys((await calls()).cancelled).length > 0, "the model call was not cancelled");
});

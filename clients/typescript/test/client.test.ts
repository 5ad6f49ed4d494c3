// Runs against the local stack: URLs and tokens come from tests/e2e/test_typescript_client.py,
// which starts it. Every route of the chat and stream functions is called at least once.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApiError, NgxClient, SessionClosedError, type StreamEvent } from "../src/index.js";

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
const as = (name: string) => client({ token: env(name) });

interface Calls {
  total: number;
  cancelled: Record<string, Record<string, number>>;
}

async function calls(): Promise<Calls> {
  return (await (await fetch(`${admin}/calls`)).json()) as Calls;
}

/** Model calls the emulator saw cancelled, all models and methods together. */
async function cancelled(): Promise<number> {
  const found = Object.values((await calls()).cancelled).flatMap((methods) => Object.values(methods));
  return found.reduce((sum, count) => sum + count, 0);
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const textOf = (events: StreamEvent[]) =>
  events.map((e) => (e.event === "delta" ? e.data.text : "")).join("");

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
  const before = await cancelled();
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
  await until(async () => (await cancelled()) > before, "the cancelled model call", 1500);
});

test("resume() replays a finished stream after an event id, without a model call", async () => {
  const events: StreamEvent[] = [];
  for await (const event of client().stream({ message: "replay me later" })) events.push(event);
  const before = (await calls()).total;
  const rest: StreamEvent[] = [];
  for await (const event of client().resume(events[1].id)) rest.push(event);
  assert.deepEqual(rest.map((e) => e.id), events.slice(2).map((e) => e.id));
  assert.equal((await calls()).total, before);
});

test("conversations: list every page, read one, rate an answer, delete it", async () => {
  const api = as("NGX_TOKEN_CONVERSATIONS");
  const first = await api.chat({ message: "first conversation" });
  for (let i = 0; i < 3; i++) await api.chat({ message: `another conversation ${i}` });
  const ids: string[] = [];
  for await (const summary of api.conversations({ pageSize: 2 })) ids.push(summary.conversation_id);
  assert.equal(ids.length, 4);
  assert.equal(new Set(ids).size, 4);
  const detail = await api.getConversation(first.conversation_id);
  assert.equal(detail.messages.length, 2);
  const rating = await api.rateAnswer(first.conversation_id, first.message_id, { thumbs: "up", reasons: ["helpful"] });
  assert.equal(rating.thumbs, "up");
  const deleted = await api.deleteConversation(first.conversation_id);
  assert.equal(deleted.conversation_id, first.conversation_id);
  await assert.rejects(api.getConversation(first.conversation_id), (e: unknown) => e instanceof ApiError && e.status === 404);
});

test("confirmations: a proposed action is approved and runs", async () => {
  const api = as("NGX_TOKEN_ORDERS");
  const proposed = await api.chat({ message: "Please cancel order A-1234 now" });
  assert.equal(proposed.finish_reason, "confirmation_required");
  assert.ok(proposed.confirmation);
  const answer = await api.decideConfirmation(proposed.confirmation.confirmation_id, { decision: "approve" });
  assert.equal(answer.tool_calls.at(-1)?.name, "cancel_order");
});

test("export: a job is queued, runs on the worker and ends with a download link", async () => {
  const api = as("NGX_TOKEN_CONVERSATIONS");
  const job = await api.exportMe();
  assert.equal(job.kind, "export");
  const done = await api.waitForJob(job.job_id, { intervalMs: 100 });
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.ok(done.download_url);
});

test("sessions: an answer over WebSocket, ping, and cancel stops the model call", async () => {
  const session = await client().openSession();
  try {
    assert.equal(session.ready.protocol, "ngx.v1");
    await session.ping();
    const events: StreamEvent[] = [];
    for await (const event of session.chat({ message: "over a websocket" })) events.push(event);
    assert.equal(events[0].event, "meta");
    assert.equal(events.at(-1)?.event, "done");
    assert.ok(textOf(events).length > 0);

    const before = await cancelled();
    const controller = new AbortController();
    await assert.rejects(
      (async () => {
        for await (const event of session.chat({ message: "cancel me on the socket" }, { signal: controller.signal })) {
          if (event.event === "delta") controller.abort();
        }
      })(),
      (error: unknown) => error instanceof Error && error.name === "AbortError",
    );
    await until(async () => (await cancelled()) > before, "the cancelled model call");
  } finally {
    session.close();
  }
  assert.equal((await session.whenClosed()).code, 1000);
});

test("sessions: a bad credential is refused with 4401", async () => {
  await assert.rejects(client({ token: "not-a-token" }).openSession(), (error: unknown) => {
    return error instanceof SessionClosedError && error.code === 4401;
  });
});

test("hand-off: a person replies on the user's session, then gives the conversation back", async () => {
  const user = as("NGX_TOKEN_HANDOFF");
  const operator = as("NGX_TOKEN_OPERATOR");
  const held = await user.chat({ message: "I want to talk to a human please" });
  assert.equal(held.finish_reason, "handoff");
  const open = await operator.listHandoffs("pending");
  assert.ok(open.handoffs.some((h) => h.conversation_id === held.conversation_id));
  const session = await user.openSession();
  try {
    const replies: string[] = [];
    session.on("operator_message", (message) => replies.push(message.text));
    const reply = await operator.replyHandoff(held.conversation_id, { text: "Hi, Sam here." });
    assert.equal(reply.text, "Hi, Sam here.");
    await until(async () => replies.length > 0, "the operator's message on the session");
    assert.deepEqual(replies, ["Hi, Sam here."]);
    const closed = await operator.closeHandoff(held.conversation_id);
    assert.equal(closed.status, "closed");
  } finally {
    session.close();
  }
  await assert.rejects(user.listHandoffs(), (e: unknown) => e instanceof ApiError && e.status === 403);
});

test("health and readiness of both functions", async () => {
  const api = client();
  assert.ok(await api.healthz());
  assert.ok(await api.healthz({ stream: true }));
  assert.equal((await api.readyz()).status, "ready");
  assert.equal((await api.readyz({ stream: true })).status, "ready");
});

test("eraseMe removes the caller's data; their conversations are gone", async () => {
  const api = as("NGX_TOKEN_ERASE");
  const answer = await api.chat({ message: "soon forgotten" });
  const erased = await api.eraseMe();
  assert.ok(erased);
  await assert.rejects(api.getConversation(answer.conversation_id), (e: unknown) => e instanceof ApiError && e.status === 404);
});

// Retry timing: full-jitter backoff, Retry-After in both forms, and the limits on waiting.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ApiError, DEFAULT_RETRY, NgxClient, backoffMs, parseRetryAfter, retryDelayMs } from "../src/index.js";

const policy = { ...DEFAULT_RETRY, attempts: 5, initialDelayMs: 100, maxDelayMs: 1000 };
const envelope = (status: number, code: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ error: { code, message: code, details: [], request_id: "r" } }), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });

test("backoff is full jitter under an exponential ceiling", () => {
  assert.equal(backoffMs(3, policy, () => 0.999), 799);
  assert.equal(backoffMs(10, policy, () => 0.5), 500);
  assert.equal(backoffMs(0, policy, () => 0), 0);
});

test("Retry-After: delay-seconds and HTTP dates; anything else is ignored", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(" 0 "), 0);
  const now = Date.parse("Wed, 21 Oct 2026 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2026 07:28:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2026 07:27:00 GMT", now), 0);
  for (const bad of [null, "", "-1", "1.5", "soon", "99999999999", "1e3", "٣"]) {
    assert.equal(parseRetryAfter(bad), null, String(bad));
  }
});

test("a Retry-After is waited out, with jitter of at most the initial delay", () => {
  assert.equal(retryDelayMs(0, 2000, policy, () => 0), 2000);
  assert.equal(retryDelayMs(4, 2000, policy, () => 0.999), 2099);
  assert.equal(retryDelayMs(2, null, policy, () => 0.5), 200);
});

test("429 with Retry-After is retried after it; the same Idempotency-Key is sent again", async () => {
  const seen: { at: number; key: string | null }[] = [];
  const fake: typeof fetch = async (_input, init) => {
    seen.push({ at: Date.now(), key: new Headers(init?.headers).get("Idempotency-Key") });
    if (seen.length === 1) return envelope(429, "rate_limited", { "Retry-After": "1" });
    return new Response(JSON.stringify({ text: "ok" }), { headers: { "Content-Type": "application/json" } });
  };
  const client = new NgxClient({ baseUrl: "http://127.0.0.1:9", token: "t", fetch: fake, retry: { initialDelayMs: 10 } });
  const answer = await client.chat({ message: "hi" });
  assert.equal((answer as unknown as { text: string }).text, "ok");
  assert.equal(seen.length, 2);
  assert.ok(seen[1].at - seen[0].at >= 1000, `waited ${seen[1].at - seen[0].at} ms`);
  assert.ok(seen[0].key && seen[0].key === seen[1].key);
});

test("a Retry-After beyond maxRetryAfterMs (a daily budget) throws at once", async () => {
  let calls = 0;
  const fake: typeof fetch = async () => {
    calls++;
    return envelope(429, "budget_exhausted", { "Retry-After": "3600" });
  };
  const client = new NgxClient({ baseUrl: "http://127.0.0.1:9", fetch: fake });
  await assert.rejects(client.chat({ message: "hi" }), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, "budget_exhausted");
    assert.equal(error.retryAfterMs, 3_600_000);
    return true;
  });
  assert.equal(calls, 1);
});

test("4xx other than 409 and 429 is not retried", async () => {
  let calls = 0;
  const fake: typeof fetch = async () => {
    calls++;
    return envelope(422, "invalid_request");
  };
  const client = new NgxClient({ baseUrl: "http://127.0.0.1:9", fetch: fake });
  await assert.rejects(client.chat({ message: "hi" }), ApiError);
  assert.equal(calls, 1);
});

test("an abort during a backoff rejects at once with the abort reason", async () => {
  const fake: typeof fetch = async () => envelope(503, "unavailable", { "Retry-After": "20" });
  const client = new NgxClient({ baseUrl: "http://127.0.0.1:9", fetch: fake });
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(client.chat({ message: "hi" }, { signal: controller.signal }), (e: unknown) => {
    return e instanceof Error && e.name === "AbortError";
  });
  assert.ok(Date.now() - started < 2000);
});

test("an operator's reply is not retried after a network error (it may have been taken)", async () => {
  let calls = 0;
  const fake: typeof fetch = async () => {
    calls++;
    throw new TypeError("fetch failed");
  };
  const client = new NgxClient({ baseUrl: "http://127.0.0.1:9", fetch: fake, retry: { initialDelayMs: 1 } });
  await assert.rejects(client.replyHandoff("c1", { text: "hello" }), TypeError);
  assert.equal(calls, 1);
  await assert.rejects(client.getJob("job_x"), TypeError);
  assert.equal(calls, 1 + DEFAULT_RETRY.attempts);
});

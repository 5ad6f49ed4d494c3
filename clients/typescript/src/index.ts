/**
 * Typed client for the NGX Agent Functions API.
 *
 * - `chat()` posts a message and returns the answer; it sends an Idempotency-Key so that its own
 *   retries (network errors, 429, 502/503/504, with exponential backoff and full jitter) never
 *   produce a second answer.
 * - `stream()` yields Server-Sent Events; when the connection drops it reconnects with
 *   Last-Event-ID and continues where it stopped, so every event arrives exactly once.
 * - Both take an AbortSignal; aborting a stream closes the connection, which stops the model.
 */

export type Tier = "fast" | "quality";

export interface ChatRequest {
  message: string;
  conversation_id?: string;
  request_id?: string;
  tier?: Tier;
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  model: string;
  cached: boolean;
}

export interface ChatResponse {
  conversation_id: string;
  message_id: string;
  text: string;
  finish_reason: string;
  tool_calls: { name: string; arguments: Record<string, unknown> }[];
  sources: { title?: string | null; uri: string }[];
  usage: Usage;
  request_id: string;
}

export interface ErrorBody {
  code: string;
  message: string;
  details: Record<string, unknown>[];
  request_id: string;
}

export type StreamEvent =
  | { event: "meta"; id: string; data: { conversation_id: string; message_id: string; model: string; request_id: string } }
  | { event: "delta"; id: string; data: { text: string } }
  | { event: "usage"; id: string; data: Usage }
  | { event: "done"; id: string; data: { finish_reason: string } }
  | { event: "error"; id: string; data: { error: ErrorBody } };

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface ClientOptions {
  /** Base URL of the chat function. */
  baseUrl: string;
  /** Base URL of the stream function (defaults to baseUrl). */
  streamUrl?: string;
  /** An ID token, or a function returning a fresh one for each request. */
  token?: string | (() => string | Promise<string>);
  apiKey?: string;
  retry?: Partial<RetryPolicy>;
  /** Injected for tests and custom transports. */
  fetch?: typeof fetch;
}

export interface CallOptions {
  signal?: AbortSignal;
  idempotencyKey?: string;
}

/** An error answered by the API, in its standard envelope. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly retryAfterMs: number | null,
  ) {
    super(`${status} ${body.code}: ${body.message}`);
    this.name = "ApiError";
  }
}

// 409: the first request with this Idempotency-Key is still running, failed or was interrupted;
// the same key is safe to send again after Retry-After.
const RETRYABLE_STATUS = new Set([409, 429, 502, 503, 504]);
const DEFAULT_RETRY: RetryPolicy = { attempts: 5, initialDelayMs: 200, maxDelayMs: 5000 };

/** Exponential backoff with full jitter: a random delay up to min(max, initial * 2^n). */
export function backoffMs(attempt: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

export class NgxClient {
  private readonly fetchImpl: typeof fetch;
  private readonly retry: RetryPolicy;

  constructor(private readonly options: ClientOptions) {
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  private async headers(extra: Record<string, string>): Promise<Record<string, string>> {
    const headers: Record<string, string> = { "Content-Type": "application/json", ...extra };
    const { token, apiKey } = this.options;
    if (token) headers.Authorization = `Bearer ${typeof token === "function" ? await token() : token}`;
    if (apiKey) headers["X-API-Key"] = apiKey;
    return headers;
  }

  /** Run `send` until it gives a non-retryable answer, backing off between attempts. */
  private async withRetries(send: () => Promise<Response>, signal?: AbortSignal): Promise<Response> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.retry.attempts; attempt++) {
      if (attempt > 0) await sleep(backoffMs(attempt - 1, this.retry), signal);
      try {
        const response = await send();
        if (!RETRYABLE_STATUS.has(response.status) || attempt === this.retry.attempts - 1) {
          return response;
        }
        const error = await toApiError(response);
        lastError = error;
        if (error.retryAfterMs !== null) await sleep(error.retryAfterMs, signal);
      } catch (error) {
        if (isAbort(error) || signal?.aborted) throw error;
        lastError = error; // a network error: try again
      }
    }
    throw lastError;
  }

  /** Answer one message. Retries are safe: they carry the same Idempotency-Key. */
  async chat(request: ChatRequest, options: CallOptions = {}): Promise<ChatResponse> {
    const key = options.idempotencyKey ?? request.request_id ?? crypto.randomUUID();
    const response = await this.withRetries(async () =>
      this.fetchImpl(`${this.options.baseUrl}/v1/chat`, {
        method: "POST",
        headers: await this.headers({ "Idempotency-Key": key }),
        body: JSON.stringify(request),
        signal: options.signal,
      }),
    options.signal);
    if (!response.ok) throw await toApiError(response);
    return (await response.json()) as ChatResponse;
  }

  /**
   * The answer as events. A dropped connection is resumed with Last-Event-ID (with backoff);
   * events already delivered are never repeated. Ends after `done`; throws on `error` events.
   */
  async *stream(request: ChatRequest, options: CallOptions = {}): AsyncGenerator<StreamEvent> {
    const url = `${this.options.streamUrl ?? this.options.baseUrl}/v1/chat:stream`;
    let lastEventId: string | null = null;
    let failures = 0;
    while (true) {
      const extra: Record<string, string> = lastEventId ? { "Last-Event-ID": lastEventId } : {};
      const response = await this.withRetries(async () =>
        this.fetchImpl(url, {
          method: "POST",
          headers: await this.headers({ Accept: "text/event-stream", ...extra }),
          body: JSON.stringify(request),
          signal: options.signal,
        }),
      options.signal);
      if (!response.ok || !response.body) throw await toApiError(response);
      try {
        for await (const event of parseEvents(response.body)) {
          lastEventId = event.id;
          failures = 0;
          if (event.event === "error") throw new ApiError(502, event.data.error, null);
          yield event;
          if (event.event === "done") return;
        }
        throw new Error("stream ended before its done event");
      } catch (error) {
        if (error instanceof ApiError || isAbort(error) || options.signal?.aborted) throw error;
        if (lastEventId === null || ++failures >= this.retry.attempts) throw error;
        await sleep(backoffMs(failures - 1, this.retry), options.signal);
      }
    }
  }
}

async function toApiError(response: Response): Promise<ApiError> {
  const retryAfter = response.headers.get("Retry-After");
  const retryAfterMs = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : null;
  let body: ErrorBody;
  try {
    body = ((await response.json()) as { error: ErrorBody }).error;
  } catch {
    body = { code: "http_error", message: response.statusText, details: [], request_id: "" };
  }
  return new ApiError(response.status, body, retryAfterMs);
}

/** Parse a text/event-stream body into events (comments and heartbeats are skipped). */
export async function* parseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<StreamEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  const reader = body.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let boundary: number;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const fields: Record<string, string> = {};
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          fields[name] = name in fields ? `${fields[name]}\n${value}` : value;
        }
        if (fields.event && fields.data !== undefined) {
          yield { event: fields.event, id: fields.id ?? "", data: JSON.parse(fields.data) } as StreamEvent;
        }
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}

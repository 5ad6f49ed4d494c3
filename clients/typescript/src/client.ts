/**
 * The HTTP client: every route of the chat and stream functions, typed from the OpenAPI document.
 *
 * Retries are safe by construction: `chat` sends an Idempotency-Key (so a retried request never
 * makes a second answer), reads and deletes are idempotent, and an operator's reply (not
 * idempotent) is retried only on answers that say it was not taken (429, 503).
 */
import { ApiError, statusOf, toApiError } from "./errors.js";
import { newId } from "./ids.js";
import { DEFAULT_RETRY, isAbort, retryDelayMs, sleep, type RetryPolicy } from "./retry.js";
import { Session, type SessionOptions } from "./session.js";
import { EventStreamParser, readEventStream } from "./sse.js";
import {
  STREAM_EVENT_NAMES,
  type ChatRequest,
  type ChatResponse,
  type ConfirmationDecision,
  type ConversationDetail,
  type ConversationPage,
  type ConversationSummary,
  type Deleted,
  type Erased,
  type Feedback,
  type FeedbackRequest,
  type HandoffClosed,
  type HandoffList,
  type JobView,
  type Liveness,
  type OperatorMessage,
  type OperatorReply,
  type Readiness,
  type StreamEvent,
  type StreamEventName,
} from "./types.js";

/** A credential source: a fixed ID token or a function returning a fresh one per request. */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** Base URL of the chat function (`https://chat-….run.app`, or `http://127.0.0.1:8081`). */
  baseUrl: string;
  /** Base URL of the stream function (streams and sessions); defaults to `baseUrl`. */
  streamUrl?: string;
  /** A Firebase Auth / Identity Platform ID token, or a function returning a fresh one. */
  token?: TokenSource;
  /** An API key (server-to-server; never ship one in an app). */
  apiKey?: string;
  retry?: Partial<RetryPolicy>;
  /** Injected for tests and custom transports. */
  fetch?: typeof fetch;
  /** The WebSocket constructor for sessions (browsers, React Native and node ≥ 22 have one). */
  WebSocket?: typeof WebSocket;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Sent as `X-Request-Id`: correlates the call with the server's logs. */
  requestId?: string;
}

export interface ChatOptions extends CallOptions {
  /** Defaults to the request's `request_id`, else a new UUID: retries reuse it. */
  idempotencyKey?: string;
}

export interface StreamOptions extends ChatOptions {
  /** Resume a stream after this event id (from an earlier call, this app's last run…). */
  lastEventId?: string;
}

export interface PageOptions extends CallOptions {
  pageSize?: number;
  pageToken?: string;
}

type Retry = "always" | "not-taken" | "never";

// 429, 502, 503, 504: try later. 409 only with Retry-After: the first request with this
// Idempotency-Key is still running, and the same key is safe to send again after it; other 409s
// (a confirmation already decided, a full session) will not change by waiting.
const RETRYABLE = new Set([409, 429, 502, 503, 504]);
const NOT_TAKEN = new Set([429, 503]);
const EVENT_NAMES = new Set<string>(STREAM_EVENT_NAMES);

export class NgxClient {
  private readonly fetchImpl: typeof fetch;
  readonly retry: RetryPolicy;

  constructor(readonly options: ClientOptions) {
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  /** The credential headers of a request (a token source is asked each time). */
  async credentials(): Promise<Record<string, string>> {
    const headers: Record<string, string> = {};
    const { token, apiKey } = this.options;
    if (token) headers.Authorization = `Bearer ${typeof token === "function" ? await token() : token}`;
    if (apiKey) headers["X-API-Key"] = apiKey;
    return headers;
  }

  /** One HTTP call with retries, returning the parsed JSON of a 2xx answer. */
  private async call<T>(
    method: string,
    path: string,
    options: CallOptions & { body?: unknown; headers?: Record<string, string>; retry?: Retry; base?: string } = {},
  ): Promise<T> {
    const response = await this.send(method, path, options);
    if (!response.ok) throw await toApiError(response);
    return (await response.json()) as T;
  }

  private async send(
    method: string,
    path: string,
    options: CallOptions & { body?: unknown; headers?: Record<string, string>; retry?: Retry; base?: string },
  ): Promise<Response> {
    const url = `${options.base ?? this.options.baseUrl}${path}`;
    const retryOn = options.retry === "not-taken" ? NOT_TAKEN : RETRYABLE;
    const attempts = options.retry === "never" ? 1 : this.retry.attempts;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const last = attempt === attempts - 1;
      let response: Response;
      try {
        const headers: Record<string, string> = { ...(await this.credentials()), ...options.headers };
        if (options.body !== undefined) headers["Content-Type"] = "application/json";
        if (options.requestId) headers["X-Request-Id"] = options.requestId;
        response = await this.fetchImpl(url, {
          method,
          headers,
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
          signal: options.signal,
        });
      } catch (error) {
        if (isAbort(error) || options.signal?.aborted || options.retry === "not-taken" || last) throw error;
        lastError = error; // a network error: the same request again
        await sleep(retryDelayMs(attempt, null, this.retry), options.signal);
        continue;
      }
      if (!retryOn.has(response.status) || last) return response;
      if (response.status === 409 && !response.headers.has("Retry-After")) return response;
      const error = await toApiError(response);
      if (error.retryAfterMs !== null && error.retryAfterMs > this.retry.maxRetryAfterMs) throw error;
      lastError = error;
      await sleep(retryDelayMs(attempt, error.retryAfterMs, this.retry), options.signal);
    }
    throw lastError;
  }

  /** Answer one message as JSON. Retries carry the same Idempotency-Key: one answer, ever. */
  chat(request: ChatRequest, options: ChatOptions = {}): Promise<ChatResponse> {
    const key = options.idempotencyKey ?? request.request_id ?? newId();
    return this.call("POST", "/v1/chat", { ...options, body: request, headers: { "Idempotency-Key": key } });
  }

  /**
   * The answer as events. A dropped connection is resumed with Last-Event-ID after the stream's
   * `retry:` time (else backoff): events already delivered are never repeated and the model is
   * called once. Ends after `done`; an `error` event throws an ApiError.
   */
  async *stream(request: ChatRequest, options: StreamOptions = {}): AsyncGenerator<StreamEvent> {
    const key = options.idempotencyKey ?? request.request_id ?? newId();
    const parser = new EventStreamParser();
    parser.lastEventId = options.lastEventId ?? "";
    const base = this.options.streamUrl ?? this.options.baseUrl;
    let failures = 0;
    for (;;) {
      const headers: Record<string, string> = { Accept: "text/event-stream", "Idempotency-Key": key };
      if (parser.lastEventId) headers["Last-Event-ID"] = parser.lastEventId;
      const response = await this.send("POST", "/v1/chat:stream", { ...options, base, body: request, headers });
      if (!response.ok || !response.body) throw await toApiError(response);
      try {
        for await (const raw of readEventStream(response.body, parser)) {
          if (!EVENT_NAMES.has(raw.type)) continue; // an event this version does not know
          const event = { event: raw.type as StreamEventName, id: raw.lastEventId, data: JSON.parse(raw.data) } as StreamEvent;
          failures = 0;
          if (event.event === "error") {
            throw new ApiError(statusOf(event.data.error.code), event.data.error, parser.retryMs);
          }
          yield event;
          if (event.event === "done") return;
        }
        throw new TypeError("the stream ended before its done event");
      } catch (error) {
        if (error instanceof ApiError || isAbort(error) || options.signal?.aborted) throw error;
        if (!parser.lastEventId || ++failures >= this.retry.attempts) throw error;
        parser.reset(); // the cut connection's unfinished event is sent again after the id
        await sleep(parser.retryMs ?? retryDelayMs(failures - 1, null, this.retry), options.signal);
      }
    }
  }

  /** The events of an earlier stream after `lastEventId`, without a second model call. */
  resume(lastEventId: string, options: StreamOptions = {}): AsyncGenerator<StreamEvent> {
    return this.stream({ message: "resume" }, { ...options, lastEventId });
  }

  /** Approve or deny an action the agent proposed (`confirmation_required`). */
  decideConfirmation(id: string, decision: ConfirmationDecision, options: CallOptions = {}): Promise<ChatResponse> {
    return this.call("POST", `/v1/confirmations/${encodeURIComponent(id)}`, { ...options, body: decision });
  }

  /** One page of the caller's conversations, most recently updated first. */
  listConversations(options: PageOptions = {}): Promise<ConversationPage> {
    return this.call("GET", `/v1/conversations${pageQuery(options)}`, options);
  }

  /** Every conversation of the caller, page after page. */
  async *conversations(options: PageOptions = {}): AsyncGenerator<ConversationSummary> {
    let pageToken = options.pageToken;
    do {
      const page = await this.listConversations({ ...options, pageToken });
      yield* page.conversations;
      pageToken = page.next_page_token ?? undefined;
    } while (pageToken);
  }

  /** A conversation and one page of its messages, newest first. */
  getConversation(conversationId: string, options: PageOptions = {}): Promise<ConversationDetail> {
    return this.call("GET", `/v1/conversations/${encodeURIComponent(conversationId)}${pageQuery(options)}`, options);
  }

  /** Delete a conversation and its messages. */
  deleteConversation(conversationId: string, options: CallOptions = {}): Promise<Deleted> {
    return this.call("DELETE", `/v1/conversations/${encodeURIComponent(conversationId)}`, options);
  }

  /** Rate an answer (thumbs or stars); the last rating wins, so a retry is harmless. */
  rateAnswer(conversationId: string, messageId: string, feedback: FeedbackRequest, options: CallOptions = {}): Promise<Feedback> {
    const path = `/v1/conversations/${encodeURIComponent(conversationId)}/messages/${encodeURIComponent(messageId)}/feedback`;
    return this.call("POST", path, { ...options, body: feedback });
  }

  /** Erase everything stored about the caller. */
  eraseMe(options: CallOptions = {}): Promise<Erased> {
    return this.call("DELETE", "/v1/me", options);
  }

  /** Queue an export of everything stored about the caller (the same job while one runs). */
  exportMe(options: CallOptions = {}): Promise<JobView> {
    return this.call("POST", "/v1/me/export", options);
  }

  /** One of the caller's jobs. */
  getJob(jobId: string, options: CallOptions = {}): Promise<JobView> {
    return this.call("GET", `/v1/jobs/${encodeURIComponent(jobId)}`, options);
  }

  /** Poll a job until it succeeds or fails (a WebSocket session's `job` event is the push way). */
  async waitForJob(jobId: string, options: CallOptions & { intervalMs?: number } = {}): Promise<JobView> {
    for (;;) {
      const job = await this.getJob(jobId, options);
      if (job.status === "succeeded" || job.status === "failed") return job;
      await sleep(options.intervalMs ?? 1000, options.signal);
    }
  }

  /** Open hand-offs, or those of one status (support staff: the `handoffs` scope). */
  listHandoffs(status?: "pending" | "active" | "closed", options: CallOptions = {}): Promise<HandoffList> {
    return this.call("GET", `/v1/handoffs${status ? `?status=${status}` : ""}`, options);
  }

  /** Reply to a user as a person. Not idempotent: retried only when the server did not take it. */
  replyHandoff(conversationId: string, reply: OperatorReply, options: CallOptions = {}): Promise<OperatorMessage> {
    const path = `/v1/handoffs/${encodeURIComponent(conversationId)}/messages`;
    return this.call("POST", path, { ...options, body: reply, retry: "not-taken" });
  }

  /** Give a conversation back to the agent. */
  closeHandoff(conversationId: string, options: CallOptions = {}): Promise<HandoffClosed> {
    return this.call("POST", `/v1/handoffs/${encodeURIComponent(conversationId)}/close`, options);
  }

  /** Liveness of a function (`stream: true` for the stream function). */
  healthz(options: CallOptions & { stream?: boolean } = {}): Promise<Liveness> {
    return this.call("GET", "/healthz", { ...options, base: this.baseFor(options.stream) });
  }

  /** Readiness: whether a function's dependencies answer now (503 when not). */
  readyz(options: CallOptions & { stream?: boolean } = {}): Promise<Readiness> {
    return this.call("GET", "/readyz", { ...options, base: this.baseFor(options.stream), retry: "never" });
  }

  /** Open a WebSocket session on the stream function; resolves once the server says `ready`. */
  openSession(options: SessionOptions = {}): Promise<Session> {
    return Session.open(this, options);
  }

  private baseFor(stream?: boolean): string {
    return stream ? (this.options.streamUrl ?? this.options.baseUrl) : this.options.baseUrl;
  }
}

function pageQuery(options: PageOptions): string {
  const query = new URLSearchParams();
  if (options.pageSize !== undefined) query.set("page_size", String(options.pageSize));
  if (options.pageToken) query.set("page_token", options.pageToken);
  const text = query.toString();
  return text ? `?${text}` : "";
}

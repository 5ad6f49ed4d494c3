/**
 * Client for the NGX Agent Functions API.
 *
 * Types come from the OpenAPI document (`openapi-typescript`, at build); this runtime adds what
 * generators do badly: Server-Sent Events per the WHATWG rules with resume, retries with jitter
 * honouring Retry-After, AbortController, idempotency keys, and WebSocket sessions.
 */
export { NgxClient } from "./client.js";
export type { CallOptions, ChatOptions, ClientOptions, PageOptions, StreamOptions, TokenSource } from "./client.js";
export { ApiError, toApiError } from "./errors.js";
export { backoffMs, parseRetryAfter, retryDelayMs, DEFAULT_RETRY } from "./retry.js";
export type { RetryPolicy } from "./retry.js";
export { EventStreamParser, readEventStream } from "./sse.js";
export type { ServerSentEvent } from "./sse.js";
export { PROTOCOL, Session, SessionClosedError } from "./session.js";
export type { NoticeData, ServerFrame, SessionOptions } from "./session.js";
export * from "./types.js";

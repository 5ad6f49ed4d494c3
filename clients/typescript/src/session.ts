/**
 * WebSocket sessions (`/v1/sessions`, subprotocol `ngx.v1`; protocol in docs/asyncapi.json).
 *
 * One connection carries many answers. The session authenticates with a subprotocol (never the
 * query string), routes each answer's events to the `chat()` call that asked for it, cancels on
 * abort, and, when the server asks it to reconnect (4000), the instance goes away (1001, 1012),
 * the network drops (1006) or it read too slowly (4001), opens a new connection and resumes every
 * running answer after its last event id — no event twice, no second model call.
 */
import { Channel } from "./channel.js";
import { ApiError } from "./errors.js";
import { retryDelayMs, sleep } from "./retry.js";
import type { NgxClient } from "./client.js";
import type { ChatRequest, HandoffClosed, JobView, OperatorMessage, Ready, StreamEvent, StreamEventName } from "./types.js";
import { STREAM_EVENT_NAMES } from "./types.js";

export const PROTOCOL = "ngx.v1";

/** The notices a session delivers besides answers, by event name. */
export interface NoticeData {
  job: JobView;
  operator_message: OperatorMessage;
  handoff_closed: HandoffClosed;
}

/** A frame from the server: `type`, and for answers `id`, `stream_id` and the client's `ref`. */
export interface ServerFrame {
  type: string;
  id?: string;
  stream_id?: string;
  ref?: string;
  data: unknown;
}

export interface SessionOptions {
  signal?: AbortSignal;
  /** Reopen and resume after a drop or a server-requested reconnect (default true). */
  reconnect?: boolean;
}

/** The session closed and will not reopen: the WebSocket close code and reason. */
export class SessionClosedError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`session closed ${code}${reason ? `: ${reason}` : ""}`);
    this.name = "SessionClosedError";
  }
}

// Close codes after which a new connection may resume the running answers.
const RESUMABLE = new Set([1001, 1006, 1012, 1013, 4000, 4001]);
const ANSWER_EVENTS = new Set<string>(STREAM_EVENT_NAMES);

interface Answer {
  ref: string;
  request: ChatRequest;
  streamId: string | null;
  lastEventId: string | null;
  events: Channel<StreamEvent>;
}

export class Session {
  /** The limits of the current connection (the server's `ready` event). */
  ready!: Ready;
  private socket!: WebSocket;
  private closedByUser = false;
  private refs = 0;
  private readonly answers = new Map<string, Answer>();
  private readonly listeners = new Map<string, Set<(data: unknown) => void>>();
  private readonly pongs: (() => void)[] = [];
  private readonly closed = new Channel<SessionClosedError>();

  private constructor(
    private readonly client: NgxClient,
    private readonly options: SessionOptions,
  ) {}

  /** Open a session; resolves on `ready`, rejects with SessionClosedError if refused. */
  static async open(client: NgxClient, options: SessionOptions = {}): Promise<Session> {
    const session = new Session(client, options);
    await session.connect();
    options.signal?.addEventListener("abort", () => session.close(), { once: true });
    return session;
  }

  private async connect(): Promise<void> {
    const Impl = this.client.options.WebSocket ?? globalThis.WebSocket;
    if (!Impl) throw new TypeError("no WebSocket implementation: pass ClientOptions.WebSocket");
    const base = this.client.options.streamUrl ?? this.client.options.baseUrl;
    const url = `${base.replace(/^http/, "ws")}/v1/sessions`;
    const protocols = [PROTOCOL];
    const { token, apiKey } = this.client.options;
    if (token) protocols.push(`ngx.bearer.${typeof token === "function" ? await token() : token}`);
    else if (apiKey) protocols.push(`ngx.key.${apiKey}`);
    const socket = new Impl(url, protocols);
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      let opened = false;
      socket.onmessage = (message: MessageEvent) => {
        const frame = parseFrame(message.data);
        if (frame === null) return;
        if (!opened && frame.type === "ready") {
          opened = true;
          this.ready = frame.data as Ready;
          resolve();
          return;
        }
        this.route(frame);
      };
      socket.onclose = (event: CloseEvent) => {
        if (!opened) reject(new SessionClosedError(event.code, event.reason));
        else if (this.socket === socket) void this.dropped(event.code, event.reason);
      };
      socket.onerror = () => undefined; // a close event follows, with its code
    });
  }

  /** Send one client message (`chat`, `cancel`, `resume`, `ping`, `auth`). */
  send(message: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  /**
   * Ask a question; yields the answer's events (the same as `NgxClient.stream`) until `done`.
   * Aborting the signal cancels the answer and its model call. `request_id` is set when absent,
   * so a resend after a reconnect is idempotent.
   */
  async *chat(request: ChatRequest, options: { signal?: AbortSignal } = {}): AsyncGenerator<StreamEvent> {
    const ref = `r${++this.refs}`;
    const answer: Answer = {
      ref,
      request: { ...request, request_id: request.request_id ?? crypto.randomUUID() },
      streamId: null,
      lastEventId: null,
      events: new Channel<StreamEvent>(),
    };
    this.answers.set(ref, answer);
    const onAbort = () => this.send({ type: "cancel", ...(answer.streamId ? { stream_id: answer.streamId } : {}), ref });
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      this.send({ type: "chat", ref, request: answer.request });
      for await (const event of answer.events) {
        if (options.signal?.aborted) throw options.signal.reason;
        yield event;
        if (event.event === "done") return;
      }
      if (options.signal?.aborted) throw options.signal.reason;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      this.answers.delete(ref);
    }
  }

  /** The events of any stream after `lastEventId` (from an SSE stream or an earlier session). */
  async *resume(lastEventId: string): AsyncGenerator<StreamEvent> {
    const ref = `r${++this.refs}`;
    const answer: Answer = {
      ref,
      request: { message: "resume" },
      streamId: lastEventId.split(":")[0] ?? null,
      lastEventId,
      events: new Channel<StreamEvent>(),
    };
    this.answers.set(ref, answer);
    try {
      this.send({ type: "resume", ref, last_event_id: lastEventId });
      for await (const event of answer.events) {
        yield event;
        if (event.event === "done") return;
      }
    } finally {
      this.answers.delete(ref);
    }
  }

  /** Stop one answer (or every running one): its model call stops too. */
  cancel(streamId?: string): void {
    this.send({ type: "cancel", ...(streamId ? { stream_id: streamId } : {}) });
  }

  /** Round trip to the server. */
  ping(): Promise<void> {
    return new Promise((resolve) => {
      this.pongs.push(resolve);
      this.send({ type: "ping" });
    });
  }

  /** Listen to a notice: a finished job, an operator's reply, a closed hand-off. */
  on<K extends keyof NoticeData>(type: K, listener: (data: NoticeData[K]) => void): () => void {
    const set = this.listeners.get(type) ?? new Set();
    set.add(listener as (data: unknown) => void);
    this.listeners.set(type, set);
    return () => set.delete(listener as (data: unknown) => void);
  }

  /** Close for good: running answers end with SessionClosedError. */
  close(code = 1000, reason = "closed"): void {
    this.closedByUser = true;
    this.socket.close(code, reason);
    this.finish(new SessionClosedError(code, reason));
  }

  /** Resolves when the session ends for good (closed by either side, no reconnect). */
  async whenClosed(): Promise<SessionClosedError> {
    for await (const error of this.closed) return error;
    return new SessionClosedError(1000, "closed");
  }

  private route(frame: ServerFrame): void {
    if (frame.type === "pong") {
      this.pongs.shift()?.();
      return;
    }
    if (frame.type === "reconnect") return; // the close (4000) that follows resumes
    const answer = frame.ref !== undefined ? this.answers.get(frame.ref) : undefined;
    if (answer) {
      if (frame.stream_id) answer.streamId = frame.stream_id;
      if (frame.type === "cancelled") {
        answer.events.fail(new DOMException("the answer was cancelled", "AbortError"));
        return;
      }
      if (frame.type === "error") {
        const error = (frame.data as { error: ApiError["body"] }).error;
        answer.events.fail(new ApiError(error.code === "rate_limited" ? 429 : 502, error, null));
        return;
      }
      if (ANSWER_EVENTS.has(frame.type) && frame.id) {
        answer.lastEventId = frame.id;
        answer.events.push({ event: frame.type as StreamEventName, id: frame.id, data: frame.data } as StreamEvent);
      }
      return;
    }
    for (const listener of this.listeners.get(frame.type) ?? []) listener(frame.data);
  }

  private async dropped(code: number, reason: string): Promise<void> {
    if (this.closedByUser) return;
    if (this.options.reconnect === false || !RESUMABLE.has(code)) {
      this.finish(new SessionClosedError(code, reason));
      return;
    }
    for (let attempt = 0; attempt < this.client.retry.attempts; attempt++) {
      try {
        await sleep(retryDelayMs(attempt, null, this.client.retry), this.options.signal);
        await this.connect();
        for (const answer of this.answers.values()) {
          if (answer.lastEventId) this.send({ type: "resume", ref: answer.ref, last_event_id: answer.lastEventId });
          else this.send({ type: "chat", ref: answer.ref, request: answer.request }); // idempotent by request_id
        }
        return;
      } catch (error) {
        if (this.options.signal?.aborted) break;
        if (error instanceof SessionClosedError && !RESUMABLE.has(error.code)) {
          this.finish(error);
          return;
        }
      }
    }
    this.finish(new SessionClosedError(code, reason));
  }

  private finish(error: SessionClosedError): void {
    for (const answer of this.answers.values()) answer.events.fail(error);
    this.answers.clear();
    this.closed.push(error);
    this.closed.end();
  }
}

function parseFrame(data: unknown): ServerFrame | null {
  if (typeof data !== "string") return null;
  try {
    const frame = JSON.parse(data) as ServerFrame;
    return typeof frame?.type === "string" ? frame : null;
  } catch {
    return null;
  }
}

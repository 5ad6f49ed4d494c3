/**
 * WebSocket sessions (`/v1/sessions`, subprotocol `ngx.v1`; protocol in docs/asyncapi.json).
 *
 * One connection carries many answers. The session authenticates with a subprotocol (never the
 * query string), routes each answer's events to the `chat()` call that asked for it, cancels on
 * abort (or when the caller stops reading), and, when the server asks it to reconnect (4000), the
 * instance goes away (1001, 1012), the network drops (1006) or it read too slowly (4001), opens a
 * new connection and resumes every running answer after its last event id — no event twice, no
 * second model call. Messages sent while it reconnects wait for the new connection.
 */
import { Channel } from "./channel.js";
import { ApiError, statusOf } from "./errors.js";
import { newId } from "./ids.js";
import { abortError, abortReason, retryDelayMs, sleep } from "./retry.js";
import type { NgxClient } from "./client.js";
import type {
  ChatRequest,
  ErrorBody,
  HandoffClosed,
  JobView,
  OperatorMessage,
  Ready,
  StreamEvent,
  StreamEventName,
} from "./types.js";
import { STREAM_EVENT_NAMES } from "./types.js";

export const PROTOCOL = "ngx.v1";
const OPEN = 1; // WebSocket.OPEN, read from no global (React Native and node have it; tests may not)

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

/** One answer being received: what to send to (re)subscribe, and where its events go. */
interface Answer {
  ref: string;
  request: ChatRequest | null; // null: a resume of an earlier stream
  streamId: string | null;
  lastEventId: string | null;
  events: Channel<StreamEvent>;
  connection: number; // the connection it was last sent on (0: not yet)
  finished: boolean;
}

export class Session {
  /** The limits of the current connection (the server's `ready` event). */
  ready!: Ready;
  private socket: WebSocket | null = null;
  private live: WebSocket | null = null; // the socket once its `ready` arrived
  private connection = 0; // counts connections that reached `ready`
  private closedByUser = false;
  private ended: SessionClosedError | null = null;
  private refs = 0;
  private outbox: string[] = []; // cancels and pings waiting for a connection
  private readonly answers = new Map<string, Answer>();
  private readonly cancelOnStart = new Set<string>(); // refs stopped before their stream id came
  private readonly listeners = new Map<string, Set<(data: unknown) => void>>();
  private pongs: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private readonly closed: Promise<SessionClosedError>;
  private markClosed!: (error: SessionClosedError) => void;

  private constructor(
    private readonly client: NgxClient,
    private readonly options: SessionOptions,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  /** Open a session; resolves on `ready`, rejects with SessionClosedError if refused. */
  static async open(client: NgxClient, options: SessionOptions = {}): Promise<Session> {
    if (options.signal?.aborted) throw abortReason(options.signal);
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
          this.live = socket;
          this.connection++;
          resolve();
          this.flush();
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

  private isOpen(): boolean {
    return this.live !== null && this.live === this.socket && this.live.readyState === OPEN;
  }

  /** Send a client message now, or when the connection (re)opens. */
  send(message: Record<string, unknown>): void {
    if (this.ended) throw this.ended;
    const text = JSON.stringify(message);
    if (this.isOpen()) this.socket!.send(text);
    else this.outbox.push(text);
  }

  /** After `ready`: every running answer not yet sent on this connection, then what waited. */
  private flush(): void {
    for (const answer of this.answers.values()) {
      if (answer.connection !== this.connection) this.subscribe(answer);
    }
    const waiting = this.outbox;
    this.outbox = [];
    for (const text of waiting) this.socket!.send(text);
  }

  /** Ask for an answer's events on the current connection: the chat, or a resume once any came. */
  private subscribe(answer: Answer): void {
    if (!this.isOpen()) return; // `flush` sends it when the connection is ready
    answer.connection = this.connection;
    const message = answer.lastEventId
      ? { type: "resume", ref: answer.ref, last_event_id: answer.lastEventId }
      : { type: "chat", ref: answer.ref, request: answer.request };
    this.socket!.send(JSON.stringify(message));
  }

  /**
   * Ask a question; yields the answer's events (the same as `NgxClient.stream`) until `done`.
   * Aborting the signal, or leaving the loop early, cancels the answer and its model call.
   * `request_id` is set when absent, so a resend after a reconnect is idempotent.
   */
  chat(request: ChatRequest, options: { signal?: AbortSignal } = {}): AsyncGenerator<StreamEvent> {
    return this.receive({ ...request, request_id: request.request_id ?? newId() }, null, options.signal);
  }

  /** The events of any stream after `lastEventId` (from an SSE stream or an earlier session). */
  resume(lastEventId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<StreamEvent> {
    return this.receive(null, lastEventId, options.signal);
  }

  private async *receive(
    request: ChatRequest | null,
    lastEventId: string | null,
    signal?: AbortSignal,
  ): AsyncGenerator<StreamEvent> {
    if (this.ended) throw this.ended;
    if (signal?.aborted) throw abortReason(signal);
    const answer: Answer = {
      ref: `r${++this.refs}`,
      request,
      streamId: lastEventId ? lastEventId.split(":")[0] : null,
      lastEventId,
      events: new Channel<StreamEvent>(),
      connection: 0,
      finished: false,
    };
    this.answers.set(answer.ref, answer);
    const onAbort = () => this.stop(answer, signal ? abortReason(signal) : abortError());
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      this.subscribe(answer);
      for await (const event of answer.events) {
        yield event;
        if (event.event === "done") {
          answer.finished = true;
          return;
        }
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!answer.finished) this.stop(answer, abortError("the caller stopped reading"));
      this.answers.delete(answer.ref);
    }
  }

  /** Stop one answer here at once, and on the server: its stream, or as soon as its id is known. */
  private stop(answer: Answer, reason: unknown): void {
    if (answer.finished) return;
    answer.finished = true;
    answer.events.fail(reason);
    this.answers.delete(answer.ref);
    if (answer.streamId) this.sendIfOpen({ type: "cancel", stream_id: answer.streamId });
    else if (answer.connection > 0) this.cancelOnStart.add(answer.ref); // sent, no id yet
  }

  private sendIfOpen(message: Record<string, unknown>): void {
    if (!this.ended) this.send(message);
  }

  /** Stop one answer by its stream id, or every running answer: their model calls stop too. */
  cancel(streamId?: string): void {
    for (const answer of [...this.answers.values()]) {
      if (!streamId || answer.streamId === streamId) this.stop(answer, abortError("cancelled"));
    }
    if (!streamId) this.sendIfOpen({ type: "cancel" });
  }

  /** Round trip to the server. */
  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pongs.push({ resolve, reject });
      try {
        this.send({ type: "ping" });
      } catch (error) {
        this.pongs.pop();
        reject(error);
      }
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
    this.socket?.close(code, reason);
    this.finish(new SessionClosedError(code, reason));
  }

  /** Resolves when the session ends for good (closed by either side, no reconnect). */
  whenClosed(): Promise<SessionClosedError> {
    return this.closed;
  }

  private route(frame: ServerFrame): void {
    if (frame.type === "pong") {
      this.pongs.shift()?.resolve();
      return;
    }
    if (frame.type === "reconnect") return; // the close (4000) that follows resumes
    if (frame.type === "error" && frame.ref !== undefined) this.cancelOnStart.delete(frame.ref);
    if (frame.ref !== undefined && frame.stream_id && this.cancelOnStart.delete(frame.ref)) {
      this.sendIfOpen({ type: "cancel", stream_id: frame.stream_id }); // stopped before its id came
      return;
    }
    if (frame.type === "cancelled") {
      for (const answer of [...this.answers.values()]) {
        if (answer.ref === frame.ref || (frame.stream_id && answer.streamId === frame.stream_id)) {
          this.stop(answer, abortError("the answer was cancelled"));
        }
      }
      return;
    }
    const answer = frame.ref !== undefined ? this.answers.get(frame.ref) : undefined;
    if (answer) {
      if (frame.stream_id) answer.streamId = frame.stream_id;
      if (frame.type === "error") {
        const error = (frame.data as { error: ErrorBody }).error;
        answer.finished = true;
        answer.events.fail(new ApiError(statusOf(error.code), error, null));
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
    this.live = null;
    if (this.closedByUser) return;
    for (const pong of this.pongs) pong.reject(new SessionClosedError(code, reason));
    this.pongs = [];
    this.cancelOnStart.clear(); // the server stops a dropped session's answers after its grace
    if (this.options.reconnect === false || !RESUMABLE.has(code)) {
      this.finish(new SessionClosedError(code, reason));
      return;
    }
    for (let attempt = 0; attempt < this.client.retry.attempts; attempt++) {
      try {
        await sleep(retryDelayMs(attempt, null, this.client.retry), this.options.signal);
        if (this.closedByUser) return;
        await this.connect(); // `flush` resumes every running answer
        if (this.closedByUser) this.socket?.close(1000, "closed");
        return;
      } catch (error) {
        if (this.closedByUser || this.options.signal?.aborted) return;
        if (error instanceof SessionClosedError && !RESUMABLE.has(error.code)) {
          this.finish(error);
          return;
        }
      }
    }
    this.finish(new SessionClosedError(code, reason));
  }

  private finish(error: SessionClosedError): void {
    if (this.ended) return;
    this.ended = error;
    for (const answer of this.answers.values()) {
      answer.finished = true;
      answer.events.fail(error);
    }
    this.answers.clear();
    for (const pong of this.pongs) pong.reject(error);
    this.pongs = [];
    this.outbox = [];
    this.markClosed(error);
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

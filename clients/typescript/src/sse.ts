/**
 * Server-Sent Events parsing per the WHATWG HTML "event stream interpretation" rules.
 *
 * Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next
 * are one line end); a leading BOM is dropped; `data` lines join with LF; lines starting with `:`
 * are comments; an `id` holding NUL is ignored and otherwise persists to later events; `retry`
 * of ASCII digits sets the reconnection time; an event without a closing blank line is dropped.
 * The id a reconnect sends (`lastEventId`) changes only when an event is dispatched, so a
 * connection cut in the middle of an event resumes before that event, not after it.
 */

/** One dispatched event: `type` is "message" when the stream named none. */
export interface ServerSentEvent {
  type: string;
  data: string;
  lastEventId: string;
}

export class EventStreamParser {
  /** The last event ID string, set at each dispatch: what a reconnect sends as Last-Event-ID. */
  lastEventId = "";
  /** The reconnection time the stream asked for with `retry:`, in milliseconds. */
  retryMs: number | null = null;
  /** Comment lines seen (heartbeats), for callers that watch liveness. */
  comments = 0;

  private idBuffer: string | null = null; // an `id:` of the event being read (null: none yet)
  private pending = "";
  private skipLeadingLF = false;
  private started = false;
  private data = "";
  private hasData = false;
  private eventType = "";

  /**
   * Forget a connection's unfinished line and event before reading the next connection; the
   * last event id and the reconnection time are kept.
   */
  reset(): void {
    this.end();
    this.started = false;
    this.skipLeadingLF = false;
  }

  /** Feed decoded text; returns the events it completed. */
  feed(text: string): ServerSentEvent[] {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.skipLeadingLF && text.length > 0) {
      this.skipLeadingLF = false;
      if (text[0] === "\n") text = text.slice(1);
    }
    const out: ServerSentEvent[] = [];
    let buffer = this.pending + text;
    let start = 0;
    for (;;) {
      const cr = buffer.indexOf("\r", start);
      const lf = buffer.indexOf("\n", start);
      if (cr < 0 && lf < 0) break;
      let end: number;
      let next: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        end = cr;
        if (cr + 1 < buffer.length) {
          next = buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
        } else {
          next = cr + 1; // the LF of a CRLF may arrive with the next chunk
          this.skipLeadingLF = true;
        }
      } else {
        end = lf;
        next = lf + 1;
      }
      const event = this.line(buffer.slice(start, end));
      if (event) out.push(event);
      start = next;
    }
    buffer = buffer.slice(start);
    this.pending = buffer;
    return out;
  }

  /** The stream ended: an event without its blank line is discarded, as the standard says. */
  end(): void {
    this.pending = "";
    this.data = "";
    this.hasData = false;
    this.eventType = "";
    this.idBuffer = null;
  }

  private line(line: string): ServerSentEvent | null {
    if (line === "") return this.dispatch();
    if (line[0] === ":") {
      this.comments++;
      return null;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data += `${value}\n`;
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\u0000")) this.idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): ServerSentEvent | null {
    if (this.idBuffer !== null) {
      this.lastEventId = this.idBuffer;
      this.idBuffer = null;
    }
    if (!this.hasData) {
      this.eventType = "";
      return null;
    }
    const event = {
      type: this.eventType || "message",
      data: this.data.slice(0, -1),
      lastEventId: this.lastEventId,
    };
    this.data = "";
    this.hasData = false;
    this.eventType = "";
    return event;
  }
}

/** The events of a `text/event-stream` body, decoded as UTF-8 across chunk boundaries. */
export async function* readEventStream(
  body: ReadableStream<Uint8Array>,
  parser: EventStreamParser = new EventStreamParser(),
): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // the parser drops one BOM
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        yield* parser.feed(decoder.decode());
        parser.end();
        return;
      }
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}

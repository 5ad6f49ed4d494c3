/** The chat view: the composer, streamed answers with their tools, sources and usage, the
 * conversation list, feedback, and an optional WebSocket session. */
import {
  ApiError,
  type ChatRequest,
  type MessageItem,
  type NgxClient,
  type Session,
  type Source,
  type StreamEvent,
  type ToolCall,
  type Usage,
} from "@ngx/agent-client";

import { byId, describe, el } from "./dom.js";

/** The parts of one rendered answer that later events fill in. */
interface AnswerView {
  item: HTMLLIElement;
  text: HTMLDivElement;
  tools: HTMLUListElement;
  sources: HTMLOListElement;
  meta: HTMLDivElement;
  deltas: number;
}

export class Chat {
  private client: NgxClient | null = null;
  private session: Session | null = null;
  private conversationId: string | null = null;
  private running: AbortController | null = null;

  constructor() {
    byId("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    const message = byId<HTMLTextAreaElement>("message");
    message.addEventListener("keydown", (event) => {
      // Enter sends (through the form, so its checks run), unless an input method is composing.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        byId<HTMLFormElement>("composer").requestSubmit();
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.stop();
    });
    byId("stop").addEventListener("click", () => this.stop());
    byId("new-conversation").addEventListener("click", () => this.open(null));
  }

  /** Act as another user: a new client, a fresh list, no open conversation or session. */
  async use(client: NgxClient): Promise<void> {
    this.stop();
    this.session?.close();
    this.session = null;
    this.client = client;
    this.open(null);
    await this.refreshList();
  }

  status(text: string, isError = false): void {
    const status = byId("status");
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  private stop(): void {
    this.running?.abort(new DOMException("stopped by the user", "AbortError"));
  }

  private request(message: string): ChatRequest {
    const request: ChatRequest = { message, tier: byId<HTMLSelectElement>("tier").value as ChatRequest["tier"] };
    if (this.conversationId) request.conversation_id = this.conversationId;
    const temperature = byId<HTMLInputElement>("temperature").value;
    if (temperature) request.temperature = Number(temperature);
    const language = byId<HTMLInputElement>("language").value.trim();
    if (language) request.language = language;
    const retrieval = byId<HTMLSelectElement>("retrieval").value;
    if (retrieval) request.retrieval = retrieval as ChatRequest["retrieval"];
    const schema = byId<HTMLTextAreaElement>("schema").value.trim();
    if (schema) request.response_schema = JSON.parse(schema) as ChatRequest["response_schema"];
    return request;
  }

  private async send(): Promise<void> {
    const input = byId<HTMLTextAreaElement>("message");
    const message = input.value.trim();
    if (!message || this.running || !this.client) return;
    let request: ChatRequest;
    try {
      request = this.request(message);
    } catch (error) {
      this.status(`The response schema is not JSON: ${describe(error)}`, true);
      return;
    }
    input.value = "";
    this.append(this.userItem(message));
    const answer = this.answerItem();
    this.append(answer.item);
    const running = (this.running = new AbortController());
    this.busy(true);
    const started = performance.now();
    let firstDelta: number | null = null;
    try {
      const events = byId<HTMLInputElement>("use-session").checked
        ? (await this.openSession()).chat(request, { signal: running.signal })
        : this.client.stream(request, { signal: running.signal });
      for await (const event of events) {
        if (event.event === "delta" && firstDelta === null) firstDelta = performance.now() - started;
        this.render(answer, event, started, firstDelta);
      }
      answer.item.dataset.state = "done";
      this.status("");
    } catch (error) {
      const stopped = running.signal.aborted;
      answer.item.dataset.state = stopped ? "stopped" : "error";
      answer.meta.append(el("span", { class: stopped ? "" : "error" }, stopped ? " · stopped" : ` · ${describe(error)}`));
      if (!stopped) this.status(describe(error), true);
    } finally {
      this.running = null;
      this.busy(false);
      await this.refreshList();
    }
  }

  private async openSession(): Promise<Session> {
    if (!this.session || !this.client) {
      this.session = await this.client!.openSession();
      this.session.on("operator_message", (m) => this.append(this.plainItem("operator", m.text)));
      void this.session.whenClosed().then(() => (this.session = null));
    }
    return this.session;
  }

  private render(answer: AnswerView, event: StreamEvent, started: number, firstDelta: number | null): void {
    switch (event.event) {
      case "meta":
        this.conversationId = event.data.conversation_id;
        answer.item.dataset.messageId = event.data.message_id;
        break;
      case "delta":
        answer.text.append(event.data.text);
        answer.item.dataset.deltas = String(++answer.deltas);
        break;
      case "tool_call":
        answer.tools.append(el("li", { "data-tool": event.data.name, id: `tool-${event.data.id}` }, `${event.data.name}(${JSON.stringify(event.data.arguments ?? {})})`));
        break;
      case "tool_result": {
        const line = answer.tools.querySelector(`#tool-${CSS.escape(event.data.id)}`);
        line?.append(` → ${event.data.status}, ${Math.round(event.data.latency_ms)} ms: ${event.data.summary}`);
        break;
      }
      case "sources":
        this.renderSources(answer, event.data.sources);
        break;
      case "data":
        answer.text.textContent = JSON.stringify(event.data.data, null, 2);
        break;
      case "confirmation_required":
        this.renderConfirmation(answer, event.data.confirmation_id, event.data.tool, event.data.arguments ?? {});
        break;
      case "handoff":
        answer.text.append(`[handed to a person: ${event.data.status}]`);
        break;
      case "usage":
        this.renderUsage(answer, event.data, performance.now() - started, firstDelta);
        break;
      case "done":
        answer.item.dataset.finish = event.data.finish_reason ?? "";
        this.addFeedback(answer);
        break;
      case "error":
        break; // thrown by the client as an ApiError
    }
  }

  private renderSources(answer: AnswerView, sources: Source[]): void {
    answer.sources.replaceChildren(
      ...sources.map((s) => el("li", {}, el("a", { href: s.uri, target: "_blank", rel: "noopener noreferrer" }, s.title || s.uri), s.section ? ` — ${s.section}` : "")),
    );
  }

  private renderUsage(answer: AnswerView, usage: Usage, totalMs: number, firstDeltaMs: number | null): void {
    const parts = [
      usage.model,
      `${usage.input_tokens ?? 0} in / ${usage.output_tokens ?? 0} out tokens`,
      `≈ $${(usage.cost_usd ?? 0).toFixed(6)}`,
      `${Math.round(totalMs)} ms${firstDeltaMs === null ? "" : ` (first text ${Math.round(firstDeltaMs)} ms)`}`,
    ];
    if (usage.cached) parts.push("from the cache");
    answer.meta.textContent = parts.join(" · ");
    answer.meta.dataset.testid = "usage";
  }

  private renderConfirmation(answer: AnswerView, id: string, tool: string, args: Record<string, unknown>): void {
    const box = el("div", { role: "group", "aria-label": `Confirm ${tool}` }, `Run ${tool}(${JSON.stringify(args)})? `);
    for (const decision of ["approve", "deny"] as const) {
      const button = el("button", { type: "button" }, decision === "approve" ? "Approve" : "Deny");
      button.addEventListener("click", async () => {
        box.querySelectorAll("button").forEach((b) => ((b as HTMLButtonElement).disabled = true));
        try {
          const result = await this.client!.decideConfirmation(id, { decision });
          this.append(this.plainItem("model", result.text));
        } catch (error) {
          this.status(describe(error), true);
        }
      });
      box.append(button);
    }
    answer.item.append(box);
  }

  private addFeedback(answer: AnswerView): void {
    const conversationId = this.conversationId;
    const messageId = answer.item.dataset.messageId;
    if (!conversationId || !messageId || answer.item.querySelector(".feedback")) return;
    answer.item.append(this.feedbackButtons(conversationId, messageId));
  }

  private feedbackButtons(conversationId: string, messageId: string, given?: string): HTMLElement {
    const group = el("div", { class: "feedback", role: "group", "aria-label": "Rate this answer" });
    for (const [thumbs, label] of [["up", "Good"], ["down", "Bad"]] as const) {
      const button = el("button", { type: "button", "aria-label": `${label} (thumbs ${thumbs})`, "aria-pressed": String(given === thumbs) }, label);
      button.addEventListener("click", async () => {
        try {
          await this.client!.rateAnswer(conversationId, messageId, { thumbs });
          group.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
        } catch (error) {
          this.status(describe(error), true);
        }
      });
      group.append(button);
    }
    return group;
  }

  /** Show a conversation (`null`: start a new one). */
  private open(conversationId: string | null): void {
    this.conversationId = conversationId;
    byId("messages").replaceChildren();
    for (const item of byId("conversations").children) {
      item.setAttribute("aria-current", String(item.getAttribute("data-id") === conversationId));
    }
    if (conversationId) void this.load(conversationId);
  }

  private async load(conversationId: string): Promise<void> {
    try {
      const detail = await this.client!.getConversation(conversationId, { pageSize: 50 });
      const items = [...detail.messages].reverse().map((m) => this.storedItem(conversationId, m));
      byId("messages").replaceChildren(...items);
    } catch (error) {
      this.status(describe(error), true);
    }
  }

  private async refreshList(): Promise<void> {
    if (!this.client) return;
    try {
      const page = await this.client.listConversations({ pageSize: 50 });
      byId("conversations").replaceChildren(
        ...page.conversations.map((c) => {
          const open = el("button", { type: "button", class: "open", title: c.title }, c.title || c.conversation_id);
          open.addEventListener("click", () => this.open(c.conversation_id));
          const remove = el("button", { type: "button", "aria-label": `Delete conversation ${c.title}`, "data-testid": "delete" }, "✕");
          remove.addEventListener("click", () => void this.remove(c.conversation_id));
          return el("li", { "data-id": c.conversation_id, "aria-current": String(c.conversation_id === this.conversationId) }, open, remove);
        }),
      );
    } catch (error) {
      this.status(describe(error), true);
    }
  }

  private async remove(conversationId: string): Promise<void> {
    try {
      await this.client!.deleteConversation(conversationId);
      if (conversationId === this.conversationId) this.open(null);
      this.status("Conversation deleted");
    } catch (error) {
      this.status(error instanceof ApiError ? error.message : describe(error), true);
    }
    await this.refreshList();
    // The focused button went with its item: continue from the list's first, or a new one.
    const next = byId("conversations").querySelector<HTMLButtonElement>("button.open");
    (next ?? byId<HTMLButtonElement>("new-conversation")).focus();
  }

  private busy(running: boolean): void {
    byId("log").setAttribute("aria-busy", String(running)); // announce the answer once, whole
    byId<HTMLButtonElement>("send").disabled = running;
    byId<HTMLButtonElement>("stop").disabled = !running;
  }

  private append(item: HTMLElement): void {
    const list = byId("messages");
    list.append(item);
    item.scrollIntoView({ block: "end" });
  }

  private plainItem(role: string, text: string): HTMLLIElement {
    return el("li", { class: role }, el("div", { class: "who" }, role), el("div", { class: "text" }, text));
  }

  private userItem(text: string): HTMLLIElement {
    return this.plainItem("user", text);
  }

  private answerItem(): AnswerView {
    const text = el("div", { class: "text", "data-testid": "answer-text" });
    const tools = el("ul", { class: "tools", "aria-label": "Tool calls", "data-testid": "tools" });
    const sources = el("ol", { class: "sources", "aria-label": "Sources", "data-testid": "sources" });
    const meta = el("div", { class: "meta" });
    const item = el("li", { class: "model", "data-testid": "answer", "data-state": "streaming" }, el("div", { class: "who" }, "agent"), text, tools, sources, meta);
    return { item, text, tools, sources, meta, deltas: 0 };
  }

  private storedItem(conversationId: string, message: MessageItem): HTMLLIElement {
    const item = this.plainItem(message.role, message.text);
    if (message.role !== "model") return item;
    const view: AnswerView = { item, text: item.querySelector(".text") as HTMLDivElement, tools: el("ul", { class: "tools" }), sources: el("ol", { class: "sources" }), meta: el("div", { class: "meta" }), deltas: 0 };
    for (const call of message.tool_calls ?? []) view.tools.append(el("li", {}, describeCall(call)));
    this.renderSources(view, message.sources ?? []);
    view.meta.textContent = `${message.model ?? ""} · ${message.input_tokens ?? 0} in / ${message.output_tokens ?? 0} out tokens`;
    item.append(view.tools, view.sources, view.meta, this.feedbackButtons(conversationId, message.message_id, message.feedback?.thumbs ?? undefined));
    return item;
  }
}

function describeCall(call: ToolCall): string {
  return `${call.name}(${JSON.stringify(call.arguments ?? {})}) → ${call.status ?? "ok"}: ${call.summary ?? ""}`;
}

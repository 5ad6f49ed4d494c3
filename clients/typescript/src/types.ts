/** Names for the schemas of the generated OpenAPI types (`generated/openapi.ts`, from docs/openapi.json). */
import type { components, operations } from "./generated/openapi.js";

type Schemas = components["schemas"];

export type { components, operations };
export type ChatRequest = Schemas["ChatRequest"];
export type ChatResponse = Schemas["ChatResponse"];
export type ConfirmationDecision = Schemas["ConfirmationDecision"];
export type ConversationPage = Schemas["ConversationPage"];
export type ConversationSummary = Schemas["ConversationSummary"];
export type ConversationDetail = Schemas["ConversationDetail"];
export type MessageItem = Schemas["MessageItem"];
export type Deleted = Schemas["Deleted"];
export type Erased = Schemas["Erased"];
export type ErrorBody = Schemas["ErrorBody"];
export type ErrorEnvelope = Schemas["ErrorEnvelope"];
export type FeedbackRequest = Schemas["FeedbackRequest"];
export type Feedback = Schemas["Feedback"];
export type JobView = Schemas["JobView"];
export type HandoffList = Schemas["HandoffList"];
export type HandoffClosed = Schemas["HandoffClosed"];
export type OperatorMessage = Schemas["OperatorMessage"];
export type OperatorReply = Schemas["OperatorReply"];
export type Usage = Schemas["Usage"];
export type Source = Schemas["Source"];
export type ToolCall = Schemas["ToolCall"];
export type Liveness = Schemas["Liveness"];
export type Readiness = Schemas["Readiness"];
/** A WebSocket session's own events (protocol: docs/asyncapi.json). */
export type Ready = Schemas["Ready"];
export type Reconnect = Schemas["Reconnect"];
export type Cancelled = Schemas["Cancelled"];

/** The data of each stream event, by event name (the same on SSE and WebSocket sessions). */
export interface StreamEventData {
  meta: Schemas["MetaEvent"];
  sources: Schemas["SourcesEvent"];
  delta: Schemas["DeltaEvent"];
  tool_call: Schemas["ToolCallEvent"];
  tool_result: Schemas["ToolResultEvent"];
  data: Schemas["DataEvent"];
  confirmation_required: Schemas["ConfirmationRequired"];
  handoff: Schemas["HandoffState"];
  usage: Schemas["Usage"];
  done: Schemas["DoneEvent"];
  error: Schemas["ErrorEnvelope"];
}

export type StreamEventName = keyof StreamEventData;

/** One event of an answer: its name, its id (`{stream_id}:{seq}`) and its data. */
export type StreamEvent = {
  [K in StreamEventName]: { event: K; id: string; data: StreamEventData[K] };
}[StreamEventName];

export const STREAM_EVENT_NAMES: readonly StreamEventName[] = [
  "meta",
  "sources",
  "delta",
  "tool_call",
  "tool_result",
  "data",
  "confirmation_required",
  "handoff",
  "usage",
  "done",
  "error",
];

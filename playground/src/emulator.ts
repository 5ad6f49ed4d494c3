/** The second view: the Vertex AI emulator's received calls and the answer cache's counters. */
import { byId, describe, el } from "./dom.js";

interface EmulatorView {
  calls: { calls?: Record<string, Record<string, number>>; cancelled?: Record<string, Record<string, number>>; total?: number };
  requests: { model?: string; tools?: string[]; called?: string[] }[];
  cache: Record<string, { hits: number; misses: number; stores: number }>;
}

/** Read the view again; `announce` (a manual refresh) also tells screen readers, the timer does not. */
export async function refreshEmulator(announce = false): Promise<void> {
  const status = byId("emulator-status");
  try {
    const response = await fetch("/api/emulator");
    const view = (await response.json()) as EmulatorView & { error?: { message: string } };
    if (!response.ok) throw new Error(view.error?.message ?? response.statusText);
    renderCalls(view);
    renderCache(view);
    byId("requests").replaceChildren(
      ...view.requests
        .slice()
        .reverse()
        .map((r) => el("li", {}, `${r.model ?? "?"} — tools offered: ${(r.tools ?? []).join(", ") || "none"}; called: ${(r.called ?? []).join(", ") || "none"}`)),
    );
    const total = view.calls.total ?? 0;
    const summary = `Updated ${new Date().toLocaleTimeString()}; ${total} model call${total === 1 ? "" : "s"} in all`;
    byId("emulator-updated").textContent = summary;
    status.textContent = announce ? summary : "";
  } catch (error) {
    status.textContent = `Could not read the emulator: ${describe(error)}`;
  }
}

function renderCalls(view: EmulatorView): void {
  const rows: HTMLTableRowElement[] = [];
  const calls = view.calls.calls ?? {};
  const cancelled = view.calls.cancelled ?? {};
  for (const model of Object.keys(calls).sort()) {
    for (const [method, count] of Object.entries(calls[model])) {
      rows.push(el("tr", {}, el("td", {}, model), el("td", {}, method), el("td", {}, String(count)), el("td", {}, String(cancelled[model]?.[method] ?? 0))));
    }
  }
  byId("calls").replaceChildren(...rows);
}

function renderCache(view: EmulatorView): void {
  byId("cache").replaceChildren(
    ...Object.entries(view.cache).map(([name, c]) =>
      el("tr", {}, el("td", {}, name), el("td", {}, String(c.hits)), el("td", {}, String(c.misses)), el("td", {}, String(c.stores))),
    ),
  );
}

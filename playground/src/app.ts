/** The playground page: pick a development user, chat, and watch the emulator (see index.html). */
import { NgxClient } from "@ngx/agent-client";

import { Chat } from "./chat.js";
import { byId, describe, el } from "./dom.js";
import { refreshEmulator } from "./emulator.js";

interface Config {
  chat_url: string;
  stream_url: string;
  users: { name: string; about: string }[];
}

async function tokenFor(user: string): Promise<string> {
  const response = await fetch(`/api/users/${encodeURIComponent(user)}/token`, { method: "POST" });
  if (!response.ok) throw new Error(`no token for ${user}: ${response.status}`);
  return ((await response.json()) as { token: string }).token;
}

function tabs(): void {
  const pairs = [
    [byId<HTMLButtonElement>("tab-chat"), byId("view-chat")],
    [byId<HTMLButtonElement>("tab-emulator"), byId("view-emulator")],
  ] as const;
  let timer: number | undefined;
  const select = (index: number) => {
    pairs.forEach(([tab, view], i) => {
      tab.setAttribute("aria-selected", String(i === index));
      tab.tabIndex = i === index ? 0 : -1;
      view.hidden = i !== index;
    });
    window.clearInterval(timer);
    if (index === 1) {
      void refreshEmulator();
      timer = window.setInterval(() => void refreshEmulator(), 2000);
    }
  };
  pairs.forEach(([tab], i) => {
    tab.addEventListener("click", () => select(i));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      const next = (i + (event.key === "ArrowRight" ? 1 : pairs.length - 1)) % pairs.length;
      select(next);
      pairs[next][0].focus();
    });
  });
  byId("refresh").addEventListener("click", () => void refreshEmulator(true));
}

async function main(): Promise<void> {
  tabs();
  const config = (await (await fetch("/api/config")).json()) as Config;
  const users = byId<HTMLSelectElement>("user");
  users.replaceChildren(...config.users.map((u) => el("option", { value: u.name }, `${u.name} — ${u.about}`)));
  const chat = new Chat();
  const switchUser = async () => {
    const user = users.value;
    let cached: { token: string; at: number } | null = null;
    const token = async () => {
      // A fresh ID token before the old one's hour is up, as an app refreshes its own.
      if (!cached || Date.now() - cached.at > 50 * 60_000) cached = { token: await tokenFor(user), at: Date.now() };
      return cached.token;
    };
    await chat.use(new NgxClient({ baseUrl: config.chat_url, streamUrl: config.stream_url, token }));
    document.body.dataset.user = user;
  };
  users.addEventListener("change", () => void switchUser().catch((e) => chat.status(describe(e), true)));
  await switchUser();
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  byId("status").textContent = `The playground could not start: ${describe(error)}`;
});

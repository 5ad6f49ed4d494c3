"""``python -m emulator.session [MESSAGE]``: a WebSocket session with the local stack.

Authenticates as a dev user (a local ID token in the subprotocol header), sends each message as a
``chat`` and prints the answer as it streams, with the agent's tool calls and sources as one-line
notes. Without a message it reads one per line from standard input (Ctrl-D ends the session).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from emulator import devtokens
from emulator.settings import load_stack_settings
from shared.settings import LOCAL_HOST


def note(event: dict[str, Any]) -> str | None:
    """One line for an event that is not answer text (None: print nothing)."""
    kind, data = event["type"], event.get("data", {})
    if kind == "tool_call":
        return f"[tool_call {data['name']} {json.dumps(data['arguments'])}]"
    if kind == "tool_result":
        return f"[tool_result {data['name']}: {data['status']} in {data['latency_ms']:.0f} ms]"
    if kind == "sources":
        return "[sources " + ", ".join(s["title"] or s["uri"] for s in data["sources"]) + "]"
    if kind == "confirmation_required":
        proposed = f"{data['tool']} {json.dumps(data['arguments'])}"
        return f"[confirmation_required {data['confirmation_id']}: {proposed}]"
    if kind == "usage":
        return f"[usage {data['input_tokens']} in, {data['output_tokens']} out]"
    if kind == "error":
        return f"[error {data['error']['code']}: {data['error']['message']}]"
    return None


async def ask(ws: ClientConnection, message: str) -> bool:
    """Send one message and print its answer; False if it ended in an error."""
    await ws.send(json.dumps({"type": "chat", "request": {"message": message}}))
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == "delta":
            print(event["data"]["text"], end="", flush=True)
        elif (line := note(event)) is not None:
            print(("\n" if event["type"] == "usage" else "") + line, flush=True)
        if event["type"] in ("done", "error"):
            return bool(event["type"] == "done")


async def run(url: str, token: str, messages: list[str]) -> int:
    protocols = [Subprotocol("ngx.v1"), Subprotocol(f"ngx.bearer.{token}")]
    async with connect(url, subprotocols=protocols) as ws:
        ready = json.loads(await ws.recv())
        if ready["type"] != "ready":
            print(note(ready) or ready, file=sys.stderr)
            return 1
        ok = True
        for message in messages or (line.strip() for line in sys.stdin):
            if message:
                ok = await ask(ws, message) and ok
        return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.session", description=__doc__)
    parser.add_argument("message", nargs="*", help="what to ask (default: lines of stdin)")
    parser.add_argument("--user", default="alice", help="the dev user to ask as")
    parser.add_argument("--url", help="the sessions URL (default: the local stack's)")
    parser.add_argument("--token", help="an ID token (default: a local one for --user)")
    args = parser.parse_args()
    settings = load_stack_settings()
    url = args.url or f"ws://{LOCAL_HOST}:{settings.stack_stream_port}/v1/sessions"
    token = args.token or devtokens.local_token(settings, args.user)
    messages = [" ".join(args.message)] if args.message else []
    return asyncio.run(run(url, token, messages))


if __name__ == "__main__":
    raise SystemExit(main())

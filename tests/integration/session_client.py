"""A small WebSocket session client for the tests and benchmarks (the `websockets` library)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PROTOCOL = "ngx.v1"


def sessions_url(stream_url: str) -> str:
    return stream_url.replace("http://", "ws://", 1) + "/v1/sessions"


@asynccontextmanager
async def open_session(
    stream_url: str, token: str | None = None, **options: Any
) -> AsyncIterator[ClientConnection]:
    """A connection to ``/v1/sessions``; with ``token``, authenticated by the subprotocol header."""
    protocols = [Subprotocol(PROTOCOL)] + ([Subprotocol(f"ngx.bearer.{token}")] if token else [])
    async with connect(
        sessions_url(stream_url), subprotocols=protocols, max_size=None, **options
    ) as ws:
        yield ws


async def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next server event, parsed."""
    found: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return found


async def until(ws: ClientConnection, *types: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Events up to and including the first of ``types``."""
    events: list[dict[str, Any]] = []
    while True:
        events.append(await receive(ws, timeout))
        if events[-1]["type"] in types:
            return events


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def close_code(ws: ClientConnection, timeout: float = 10.0) -> int | None:
    """Read until the server closes; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["type"] == "delta")

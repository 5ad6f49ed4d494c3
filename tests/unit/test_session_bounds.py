"""A session's send queue is bounded: a client that stops reading is closed 4001, and the answers
it was sent stop being forwarded. Driven through `Session` with a socket whose sends never
complete (a reader that went away without closing), which a loopback client cannot make
deterministic: kernel buffers absorb megabytes first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.websockets import WebSocketState

from shared.auth.principal import Principal
from shared.contracts import DeltaEvent, DoneEvent
from shared.sessions.protocol import Close
from shared.sessions.session import Session
from shared.settings import load_settings
from shared.sse import frame


class StalledSocket:
    """A socket that accepted the session, delivers the client's messages, and then blocks on
    every send after the first ``sends`` (the client stopped reading)."""

    def __init__(self, messages: list[dict[str, Any]], sends: int) -> None:
        self.scope: dict[str, Any] = {"subprotocols": ["ngx.v1", "ngx.bearer.token"]}
        self.headers: dict[str, str] = {}
        self.application_state = WebSocketState.CONNECTED
        self.finished = asyncio.Event()  # then the client disconnects
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in messages:
            self._incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})
        self._sends = sends

    async def accept(self, subprotocol: str | None = None) -> None:
        assert subprotocol == "ngx.v1"

    async def receive(self) -> dict[str, Any]:
        if self._incoming.empty():
            await self.finished.wait()
            return {"type": "websocket.disconnect", "code": 1000}
        return await self._incoming.get()

    async def send_text(self, text: str) -> None:
        if len(self.sent) >= self._sends:
            await asyncio.Event().wait()  # never read
        self.sent.append(text)
        if '"done"' in text:
            self.finished.set()

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)


class Guard:
    async def bearer(self, token: str) -> Principal:
        return Principal(subject="user:alice", kind="user", scopes=("chat",))

    @staticmethod
    def authorize(principal: Principal, scope: str) -> None:
        assert scope in principal.scopes

    def limits(self, principal: Principal, connection: Any) -> None:
        return None

    def pseudonym(self, principal: Principal) -> str:
        return "p"


class Down(Guard):
    """A guard whose key set cannot be fetched."""

    async def bearer(self, token: str) -> Principal:
        from shared import errors

        raise errors.Unavailable("the identity provider's keys are unreachable", retry_after=5)


class Replay:
    """A finished answer replayed: every recorded frame in one chunk."""

    def __init__(self, events: int) -> None:
        self.events = events

    async def open(self, *_: Any) -> AsyncIterator[bytes]:
        frames = [
            frame("delta", DeltaEvent(text=f"w{n}"), f"s1:{n}") for n in range(1, self.events + 1)
        ]
        frames.append(frame("done", DoneEvent(), f"s1:{self.events + 1}"))

        async def body() -> AsyncIterator[bytes]:
            yield b"".join(frames)

        return body()


class Requests:
    """An answer of ``events`` deltas, produced as fast as it is read; records whether the
    forwarding stopped before the end."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.stopped_early = asyncio.Event()

    async def open(self, *_: Any) -> AsyncIterator[bytes]:
        async def body() -> AsyncIterator[bytes]:
            n = 0
            try:
                for n in range(1, self.events + 1):
                    yield frame("delta", DeltaEvent(text=f"word{n}"), f"s1:{n}")
                    await asyncio.sleep(0)
                yield frame("done", DoneEvent(), f"s1:{self.events + 1}")
            finally:
                if n < self.events:
                    self.stopped_early.set()

        return body()


async def run_session(sends: int, events: int, queue: int) -> tuple[StalledSocket, Requests]:
    settings = load_settings(session_send_queue=queue)
    socket = StalledSocket([{"type": "chat", "request": {"message": "hi"}}], sends)
    requests = Requests(events)
    session = Session(socket, Guard(), requests, None, settings)  # type: ignore[arg-type]
    await asyncio.wait_for(session.run(), 15)
    return socket, requests


async def test_a_client_that_stops_reading_is_closed_4001() -> None:
    socket, requests = await run_session(sends=5, events=10_000, queue=16)
    assert socket.closed is not None and socket.closed[0] == 4001 == int(Close.SLOW_CONSUMER)
    assert json.loads(socket.sent[0])["type"] == "ready"
    assert len(socket.sent) == 5  # nothing more reached it; the backlog was dropped
    assert requests.stopped_early.is_set()  # the answer is no longer forwarded


async def test_a_reading_client_gets_every_event_through_a_small_queue() -> None:
    socket, _ = await run_session(sends=10_000, events=500, queue=8)
    deltas = [json.loads(text) for text in socket.sent if '"delta"' in text]
    assert [d["id"] for d in deltas] == [f"s1:{n}" for n in range(1, 501)]
    assert socket.closed is None  # the client left first


async def test_a_replayed_answer_larger_than_the_queue_reaches_a_reading_client() -> None:
    settings = load_settings(session_send_queue=16)
    socket = StalledSocket([{"type": "chat", "request": {"message": "hi"}}], sends=10_000)
    session = Session(socket, Guard(), Replay(600), None, settings)  # type: ignore[arg-type]
    await asyncio.wait_for(session.run(), 15)
    deltas = [json.loads(text) for text in socket.sent if '"delta"' in text]
    assert len(deltas) == 600 and socket.closed is None


async def test_credentials_that_cannot_be_checked_close_1013_with_an_error_event() -> None:
    socket = StalledSocket([], sends=10)
    session = Session(socket, Down(), Requests(1), None, load_settings())  # type: ignore[arg-type]
    await asyncio.wait_for(session.run(), 15)
    error = json.loads(socket.sent[0])
    assert error["type"] == "error" and error["data"]["error"]["code"] == "unavailable"
    assert socket.closed is not None and socket.closed[0] == 1013

"""One WebSocket session: authenticate, then run the client's messages until either side ends it.

Answers are the stream machinery's (`StreamRequests`, `StreamHub`): each ``chat`` opens the same
stream ``POST /v1/chat:stream`` would — idempotency, shared flights, the resumable Redis buffer —
and its events are forwarded as JSON frames. So a dropped session's answer is resumed by a
``resume`` message on a new session (any instance) or by an SSE ``Last-Event-ID``, with no
second model call. Every event leaves through one bounded queue: a client that stops reading is
closed (4001) rather than let the process hold its backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from shared import errors, telemetry, web
from shared.auth.principal import Principal
from shared.chat import Caller
from shared.guard import Guard
from shared.logs import request_id_var, subject_var
from shared.notices import NoticeHub
from shared.sessions import protocol
from shared.sessions.protocol import Close
from shared.settings import Settings
from shared.sse import error_event
from shared.stream_requests import StreamRequests
from shared.streams import StreamHub

log = logging.getLogger("ngx.sessions")
SCOPE = "chat"
SEND_WAIT_S = 5.0  # how long an answer waits for room in the send queue


class _Closing(Exception):
    """Ends the session with a close code."""

    def __init__(self, code: Close) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Answer:
    """One running answer: its task, and its stream once the first event named it."""

    task: asyncio.Task[None]
    ref: str | None
    stream_id: str | None = None
    last_event_id: str | None = None


@dataclass
class _Stats:
    chats: int = 0
    events: int = 0
    errors: int = 0
    opened: float = field(default_factory=time.monotonic)


class Session:
    """The server side of one connection."""

    def __init__(
        self,
        websocket: WebSocket,
        guard: Guard,
        requests: StreamRequests,
        hub: StreamHub,
        settings: Settings,
        notices: NoticeHub | None = None,
    ) -> None:
        self._ws = websocket
        self._notices = notices
        self._guard = guard
        self._requests = requests
        self._hub = hub
        self._settings = settings
        self.id = secrets.token_hex(8)
        self._principal: Principal | None = None
        self._credential: tuple[str, str] | None = None  # checked again before each answer
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(settings.session_send_queue)
        self._answers: dict[int, _Answer] = {}  # by a number of their own, in order
        self._opened = 0
        self._ended: asyncio.Future[Close] = asyncio.get_running_loop().create_future()
        self._last_seen = time.monotonic()
        self._draining = False
        self._gone = False  # the client closed or dropped the connection
        self._stats = _Stats()
        headers = websocket.headers
        self._trace = (headers.get("traceparent"), headers.get("x-cloud-trace-context"))

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it ends; never raises."""
        offered = list(self._ws.scope.get("subprotocols") or [])
        credential = protocol.offered_credential(offered)
        subprotocol = protocol.PROTOCOL if protocol.PROTOCOL in offered else None
        await self._ws.accept(subprotocol=subprotocol)
        sender = asyncio.create_task(self._send_all())
        tasks = [asyncio.create_task(self._receive(credential)), asyncio.create_task(self._timer())]
        code = Close.GOING_AWAY  # unless the session ends before the instance does
        try:
            code = await self._ended
        finally:
            for task in tasks:
                task.cancel()
            if self._notices is not None and self._principal is not None:
                await self._notices.unlisten(self._principal.subject, self._on_notice)
            await self._stop_answers()
            await self._close(sender, code)
            self._log_end(code)

    def _end(self, code: Close) -> None:
        if not self._ended.done():
            self._ended.set_result(code)

    async def _close(self, sender: asyncio.Task[None], code: Close) -> None:
        """Flush what is queued (briefly; not for a client that stopped reading), then close."""
        if code is Close.SLOW_CONSUMER:
            sender.cancel()
        else:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 2.0)
        sender.cancel()
        if self._gone:
            return
        if self._ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self._ws.close(int(code), protocol.CLOSE_REASONS[code])

    def _log_end(self, code: Close) -> None:
        log.info(
            "session",
            extra={
                "session_id": self.id,
                "close_code": int(code),
                "duration_s": round(time.monotonic() - self._stats.opened, 3),
                "chats": self._stats.chats,
                "events": self._stats.events,
                "errors": self._stats.errors,
            },
        )

    # --- outgoing -----------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        """Queue an event; a full queue means the client stopped reading: close it."""
        try:
            self._outbox.put_nowait(text)
            self._stats.events += 1
        except asyncio.QueueFull:
            self._end(Close.SLOW_CONSUMER)

    async def _send_answer(self, text: str) -> None:
        """Queue an answer's event, waiting while the queue is full (a replay hands over a whole
        answer at once); a client that reads nothing for SEND_WAIT_S is closed."""
        try:
            await asyncio.wait_for(self._outbox.put(text), SEND_WAIT_S)
            self._stats.events += 1
        except TimeoutError:
            self._end(Close.SLOW_CONSUMER)
            raise asyncio.CancelledError from None

    async def _send_all(self) -> None:
        try:
            while (text := await self._outbox.get()) is not None:
                await self._ws.send_text(text)
        except Exception:  # the connection is gone
            self._gone = True
            self._end(Close.NORMAL)

    def _error(
        self, exc: errors.AppError, ref: str | None = None, stream_id: str | None = None
    ) -> None:
        self._stats.errors += 1
        envelope = error_event(exc, request_id_var.get() or self.id)
        self._send(protocol.event("error", envelope, ref, stream_id))

    # --- incoming -----------------------------------------------------------------------------

    async def _receive(self, credential: tuple[str, str] | None) -> None:
        try:
            if credential is not None:
                await self._authenticate(*credential)
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    self._gone = True
                    self._end(Close.NORMAL)
                    return
                self._last_seen = time.monotonic()
                await self._handle(message)
        except _Closing as closing:
            self._end(closing.code)
        except WebSocketDisconnect:
            self._gone = True
            self._end(Close.NORMAL)
        except Exception:
            log.exception("session failed")
            self._end(Close.INTERNAL)

    async def _handle(self, message: Any) -> None:
        text = message.get("text")
        if text is None:
            self._error(errors.UnsupportedMediaType("send JSON text frames, not binary ones"))
            return
        body = text.encode("utf-8")
        if len(body) > self._settings.max_body_bytes:
            limit = self._settings.max_body_bytes
            self._error(errors.PayloadTooLarge(f"message exceeds {limit} bytes"))
            return
        try:
            parsed = web.validate(protocol.ClientFrame, web.parse_json(body))
        except errors.AppError as exc:
            if self._principal is None:
                self._error(exc)
                raise _Closing(Close.UNAUTHENTICATED) from None
            self._error(exc)
            return
        item = parsed.root
        if isinstance(item, protocol.AuthMessage):
            await self._on_auth(item)
        elif self._principal is None:
            self._error(errors.Unauthenticated("authenticate first: send an auth message"))
            raise _Closing(Close.UNAUTHENTICATED)
        elif isinstance(item, protocol.PingMessage):
            self._send(protocol.event("pong", protocol.Pong(), item.ref))
        elif isinstance(item, protocol.ChatMessage):
            self._on_chat(item)
        elif isinstance(item, protocol.CancelMessage):
            await self._on_cancel(item)
        else:
            self._on_resume(item)

    def _on_notice(self, name: str, data: str) -> None:
        self._send(protocol.event(name, data))

    # --- authentication -----------------------------------------------------------------------

    async def _on_auth(self, message: protocol.AuthMessage) -> None:
        if (message.token is None) == (message.api_key is None):
            self._error(errors.ValidationFailed("auth needs exactly one of token or api_key"))
            if self._principal is None:
                raise _Closing(Close.UNAUTHENTICATED)
            return
        if message.token is not None:
            await self._authenticate("bearer", message.token, message.ref)
        else:
            assert message.api_key is not None
            await self._authenticate("key", message.api_key, message.ref)

    async def _authenticate(self, kind: str, value: str, ref: str | None = None) -> None:
        try:
            with telemetry.span("auth"):
                if kind == "bearer":
                    principal = await self._guard.bearer(value.strip())
                else:
                    principal = await self._guard.keys.authenticate(value.strip())
            self._guard.authorize(principal, SCOPE)
        except errors.Unauthenticated as exc:
            self._error(exc, ref)
            raise _Closing(Close.UNAUTHENTICATED) from None
        except errors.PermissionDenied as exc:
            self._error(exc, ref)
            raise _Closing(Close.FORBIDDEN) from None
        except errors.AppError as exc:  # the key set or the key store is unreachable
            self._error(exc, ref)
            raise _Closing(Close.TRY_AGAIN) from None
        self._credential = (kind, value)
        if self._principal is not None:
            if principal.subject != self._principal.subject:
                self._error(errors.PermissionDenied("a session keeps its subject"), ref)
                raise _Closing(Close.FORBIDDEN)
            self._principal = principal  # renewed: a fresh token before the old one expires
            return
        self._principal = principal
        subject_var.set(self._guard.pseudonym(principal))
        if self._notices is not None:  # jobs ending, operators replying: wherever they happen
            await self._notices.listen(principal.subject, self._on_notice)
        settings = self._settings
        ready = protocol.Ready(
            session_id=self.id,
            expires_in_s=settings.session_max_s,
            idle_timeout_s=settings.session_idle_s,
            max_frame_bytes=settings.max_body_bytes,
            max_streams=settings.session_max_streams,
        )
        self._send(protocol.event("ready", ready, ref))

    # --- answers ------------------------------------------------------------------------------

    def _caller(self) -> Caller:
        assert self._principal is not None
        p = self._principal
        return Caller(subject=p.subject, tier=p.tier, scopes=p.scopes)

    def _on_chat(self, message: protocol.ChatMessage) -> None:
        if self._draining:
            self._error(errors.Unavailable("this session is closing: open a new one"), message.ref)
            return
        if len(self._answers) >= self._settings.session_max_streams:
            limit = self._settings.session_max_streams
            self._error(
                errors.Conflict(f"{limit} answers are running on this session: wait or cancel"),
                message.ref,
            )
            return
        self._stats.chats += 1
        self._start(self._chat(message), message.ref)

    def _on_resume(self, message: protocol.ResumeMessage) -> None:
        if len(self._answers) >= self._settings.session_max_streams:
            self._error(errors.Conflict("too many answers running on this session"), message.ref)
            return
        self._start(self._resume(message), message.ref)

    def _start(self, work: Coroutine[Any, Any, AsyncIterator[bytes]], ref: str | None) -> None:
        self._opened += 1
        key = self._opened
        task = asyncio.create_task(self._forward(key, work, ref))
        self._answers[key] = _Answer(task, ref)

        def ended(done: asyncio.Task[None]) -> None:
            self._answers.pop(key, None)
            work.close()  # cancelled before it started: its opening never ran

        task.add_done_callback(ended)

    async def _admit(self) -> None:
        """Before an answer: the credential is still good (an ID token not expired, an API key
        not revoked) and the caller within its rate limits."""
        assert self._principal is not None and self._credential is not None
        kind, value = self._credential
        try:
            if kind == "bearer":
                await self._guard.bearer(value)
            else:
                await self._guard.keys.authenticate(value)
        except errors.Unauthenticated as exc:
            exc.message = f"{exc.message}: authenticate again (an auth message) to go on"
            raise
        admission = self._guard.limits(self._principal, self._ws)
        if admission is not None:
            await self._guard.settle(self._principal, admission)

    async def _chat(self, message: protocol.ChatMessage) -> AsyncIterator[bytes]:
        await self._admit()
        request = message.request
        return await self._requests.open(
            request, self._caller(), request_id_var.get() or "", request.request_id
        )

    async def _resume(self, message: protocol.ResumeMessage) -> AsyncIterator[bytes]:
        await self._admit()
        return await self._hub.resume(message.last_event_id, self._caller().subject)

    async def _forward(
        self, key: int, opening: Coroutine[Any, Any, AsyncIterator[bytes]], ref: str | None
    ) -> None:
        """Open an answer's stream and forward its events; failures become ``error`` events."""
        request_id_var.set(uuid.uuid4().hex)
        trace = telemetry.server_span("WS /v1/sessions", *self._trace)
        body: AsyncIterator[bytes] | None = None
        try:
            with trace:
                body = await opening
                answer = self._answers[key]
                async for chunk in body:  # a replay's chunk holds every recorded frame
                    for frame in chunk.split(b"\n\n"):
                        if not frame or frame.startswith(b":"):  # SSE heartbeats: not needed
                            continue
                        text, _, event_id = protocol.from_sse(frame, ref)
                        answer.last_event_id = event_id
                        answer.stream_id = event_id.rpartition(":")[0]
                        await self._send_answer(text)
        except errors.AppError as exc:
            self._error(exc, ref)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session answer failed")
            self._error(errors.AppError("internal error"), ref)
        finally:
            if body is not None:
                with contextlib.suppress(Exception):
                    await body.aclose()  # type: ignore[attr-defined]
            opening.close()

    async def _on_cancel(self, message: protocol.CancelMessage) -> None:
        wanted = [
            answer
            for answer in self._answers.values()
            if message.stream_id is None or answer.stream_id == message.stream_id
        ]
        if message.stream_id is not None and not wanted:
            self._error(
                errors.NotFound(f"no answer {message.stream_id} runs on this session"),
                message.ref,
            )
            return
        for answer in wanted:
            answer.task.cancel()
            if answer.stream_id is not None:
                self._hub.cancel(answer.stream_id)
        for answer in wanted:
            with contextlib.suppress(BaseException):
                await answer.task
            cancelled = protocol.Cancelled(stream_id=answer.stream_id)
            self._send(protocol.event("cancelled", cancelled, message.ref, answer.stream_id))

    async def _stop_answers(self) -> None:
        """The connection ended: stop forwarding. Streams carry on for the resume grace, as a
        dropped SSE connection's do, so a client can resume them elsewhere."""
        running = [answer.task for answer in self._answers.values()]
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(BaseException):
                await task

    # --- time limits --------------------------------------------------------------------------

    async def _timer(self) -> None:
        """Authentication deadline, idle timeout, and the reconnect hint before the platform's
        request timeout (after which running answers may drain)."""
        settings = self._settings
        opened = self._stats.opened
        hint_at = opened + settings.session_max_s
        close_at: float | None = None
        while True:
            now = time.monotonic()
            if self._principal is None and now - opened >= settings.session_auth_timeout_s:
                self._error(errors.Unauthenticated("no credential in time"))
                self._end(Close.UNAUTHENTICATED)
                return
            if not self._answers and now - self._last_seen >= settings.session_idle_s:
                self._end(Close.IDLE)
                return
            if close_at is None and now >= hint_at:
                close_at = now + settings.session_drain_s
                self._draining = True
                hint = protocol.Reconnect(
                    reason=protocol.CLOSE_REASONS[Close.RECONNECT],
                    drain_s=settings.session_drain_s,
                    last_event_ids=[
                        a.last_event_id for a in self._answers.values() if a.last_event_id
                    ],
                )
                self._send(protocol.event("reconnect", hint))
            if close_at is not None and (not self._answers or now >= close_at):
                self._end(Close.RECONNECT)
                return
            idle_at = now + 1.0 if self._answers else self._last_seen + settings.session_idle_s
            deadlines = [hint_at, idle_at]
            if self._principal is None:
                deadlines.append(opened + settings.session_auth_timeout_s)
            if close_at is not None:
                deadlines.append(close_at)
            await asyncio.sleep(min(1.0, max(0.02, min(deadlines) - now)))

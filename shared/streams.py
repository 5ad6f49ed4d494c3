"""Resumable Server-Sent Event streams.

A stream's events are produced by a task of their own, written to the client's connection first
and then to a Redis stream (``ngx:sse:{sid}``, kept ``stream_buffer_ttl_s``), each with the id
``{sid}:{seq}``. When the client goes away, production carries on for ``stream_resume_grace_s``:
a client that reconnects with ``Last-Event-ID`` — to any instance — within that time receives
every later event exactly once, with no second model call; otherwise the model call is cancelled.
Idle connections get a heartbeat comment every ``stream_heartbeat_s``.

A resumer tells a running stream from a dead one without a write per stream: the stream's live
key names the process producing it (deleted when production ends), and each process renews one
heartbeat key of its own every second — a crashed process's streams read as dead within
`LIVE_TTL_MS`, however long the model takes to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from pydantic import BaseModel

from shared import errors
from shared.batching import BatchedWriter
from shared.llm.cache import own
from shared.memorystore import Memorystore, StoreUnavailable
from shared.settings import Settings
from shared.sse import HEARTBEAT, error_event, frame

log = logging.getLogger("ngx.streams")
TERMINAL = {"done", "error"}
_EVENT_ID = re.compile(r"^([A-Za-z0-9_-]{1,64}):(\d{1,9})\Z")
LISTENER_TTL_MS = 1500
LIVE_TTL_MS = 3000
OUTAGE_S = 3.0  # a follower waits this long for Memorystore (longer than its back-off)
BUFFER_WRITE_S = 2.0  # how long a buffer write may take before it counts as lost
Event = tuple[int, str, bytes]  # seq, event name, SSE frame
OnEnd = Callable[[list[bytes], str], Awaitable[None]]  # a stream's frames and its last event


async def _read(buffer: str, cursor: str, r: Any, block: int | None = 500) -> list[Any]:
    """New entries of a buffer after ``cursor``, waiting up to ``block`` ms for some."""
    found: list[Any] = await r.xread({buffer: cursor}, count=100, block=block)
    return found


def _is_terminal(event: Event) -> bool:
    return event[1] in TERMINAL


def _process_key(process_id: str) -> str:
    return f"ngx:sse:process:{process_id}"


def _keys(sid: str) -> tuple[str, str, str, str]:
    base = f"ngx:sse:{sid}"
    return base, f"{base}:owner", f"{base}:live", f"{base}:listener"


class StreamHub:
    """Runs this process's streams and serves resumptions of any instance's streams."""

    def __init__(self, store: Memorystore, settings: Settings) -> None:
        self.store = store
        self.heartbeat_s = settings.stream_heartbeat_s
        self.grace_s = settings.stream_resume_grace_s
        self.buffer_ttl_s = settings.stream_buffer_ttl_s
        self._tasks: set[asyncio.Task[Any]] = set()
        self.process_id = secrets.token_hex(8)
        self._heartbeat: asyncio.Task[None] | None = None
        self._producing = 0  # streams this process is producing now
        self._producers: dict[str, asyncio.Task[None]] = {}  # by stream id

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- a new stream -----------------------------------------------------------------------

    async def start(
        self,
        sid: str,
        owner: str,
        first: tuple[str, BaseModel],
        rest: AsyncIterator[tuple[str, BaseModel]],
        request_id: str,
        on_end: OnEnd | None = None,
    ) -> AsyncIterator[bytes]:
        """The response body of a new stream whose first event is already known.

        ``on_end`` receives every frame and the last event's name (``cancelled`` when the
        stream was abandoned) once production is over, whether or not the client stayed."""
        _, owner_key, live_key, _ = _keys(sid)

        async def claim(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.set(owner_key, owner, ex=self.buffer_ttl_s)
            pipe.set(live_key, self.process_id, ex=self.buffer_ttl_s)
            own(pipe, owner, list(_keys(sid)), self.buffer_ttl_s)
            await pipe.execute()

        with contextlib.suppress(StoreUnavailable):
            await self.store.run(claim)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        producer = asyncio.create_task(
            self._produce(sid, owner, first, rest, queue, request_id, on_end)
        )
        self._keep(producer)
        self._producing += 1
        self._producers[sid] = producer
        producer.add_done_callback(partial(self._produced, sid))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        return self._deliver(queue, producer, sid)

    async def _deliver(
        self, queue: asyncio.Queue[bytes | None], producer: asyncio.Task[None], sid: str
    ) -> AsyncIterator[bytes]:
        finished = False
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), self.heartbeat_s)
                except TimeoutError:
                    yield HEARTBEAT
                    continue
                if item is None:
                    finished = True
                    return
                yield item
        finally:
            if not finished and not producer.done():
                self._keep(asyncio.create_task(self._watch_detached(sid, producer)))

    async def _watch_detached(self, sid: str, producer: asyncio.Task[None]) -> None:
        """Cancel the model call unless a resumed listener keeps the stream wanted."""
        listener_key = _keys(sid)[3]
        while not producer.done():
            await asyncio.sleep(self.grace_s)
            try:
                wanted = bool(await self.store.run(lambda r: r.exists(listener_key)))
            except StoreUnavailable:
                wanted = False
            if not wanted and not producer.done():
                log.info("stream abandoned; cancelling the model call", extra={"stream_id": sid})
                producer.cancel()
                return

    async def _produce(
        self,
        sid: str,
        owner: str,
        first: tuple[str, BaseModel],
        rest: AsyncIterator[tuple[str, BaseModel]],
        queue: asyncio.Queue[bytes | None],
        request_id: str,
        on_end: OnEnd | None,
    ) -> None:
        buffer, _, live_key, _ = _keys(sid)
        frames: list[bytes] = []
        last = "cancelled"
        publisher: BatchedWriter[Event] = BatchedWriter(
            partial(self._publish, buffer, owner), self._keep, _is_terminal
        )
        seq = 0

        async def emit(name: str, data: BaseModel, retry_s: int | None = None) -> None:
            nonlocal seq, last
            seq += 1
            payload = frame(name, data, f"{sid}:{seq}", retry_s)
            if on_end is not None:
                frames.append(payload)
            last = name
            queue.put_nowait(payload)
            publisher.add((seq, name, payload))

        try:
            await emit(*first)
            try:
                async for name, data in rest:
                    await emit(name, data)
            except errors.AppError as exc:
                await emit("error", error_event(exc, request_id), exc.retry_after)
            except Exception:
                log.exception("stream failed")
                await emit("error", error_event(errors.AppError("internal error"), request_id))
        finally:
            queue.put_nowait(None)
            try:
                # Shielded: a second cancellation must not cut the buffer short or leave it live.
                # One shielded step: a second cancellation must not skip on_end either.
                ended = last if last in TERMINAL else "cancelled"
                await asyncio.shield(
                    self._finish(
                        live_key, publisher, partial(on_end, frames, ended) if on_end else None
                    )
                )
            finally:
                with contextlib.suppress(Exception):
                    await rest.aclose()  # type: ignore[attr-defined]

    async def _finish(
        self,
        live_key: str,
        publisher: BatchedWriter[Event],
        then: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """Write what is left to the buffer, mark the stream no longer produced, then ``then``."""
        try:
            await publisher.close()
        except Exception:
            log.exception("stream buffer write failed")  # resumers will be told it was cut
        with contextlib.suppress(StoreUnavailable):
            await self.store.run(lambda r: r.delete(live_key))
        if then is not None:
            await then()

    def _produced(self, sid: str, _: asyncio.Task[None]) -> None:
        self._producing -= 1
        self._producers.pop(sid, None)

    def cancel(self, sid: str) -> bool:
        """Stop producing stream ``sid`` now, the model call with it, if this process produces
        it (its caller checked the owner); False otherwise. A stream another instance produces
        stops once nobody follows it (`_watch_detached`)."""
        producer = self._producers.get(sid)
        if producer is None or producer.done():
            return False
        log.info("stream cancelled by its client", extra={"stream_id": sid})
        producer.cancel()
        return True

    async def _beat(self) -> None:
        """Renew this process's heartbeat while it produces streams (one write a second in all,
        none when idle)."""
        key = _process_key(self.process_id)
        while self._producing > 0:
            with contextlib.suppress(StoreUnavailable):
                await self.store.run(lambda r: r.set(key, 1, px=LIVE_TTL_MS))
            await asyncio.sleep(LIVE_TTL_MS / 3000)

    async def _publish(self, buffer: str, owner: str, events: list[Event]) -> None:
        async def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            for seq, name, payload in events:
                pipe.xadd(buffer, {"seq": seq, "event": name, "frame": payload}, maxlen=5000)
            pipe.expire(buffer, self.buffer_ttl_s)
            if _is_terminal(events[-1]):  # the owner's key set outlives the buffer's last TTL
                own(pipe, owner, [buffer], self.buffer_ttl_s)
            await pipe.execute()

        # Off the answer's path, so patient: it rides out a slow Memorystore or its back-off for
        # up to OUTAGE_S (followers wait as long). A write lost after that leaves a gap, and a
        # resumer is told the stream was cut rather than handed a gapped answer.
        deadline = time.monotonic() + OUTAGE_S
        while True:
            try:
                await self.store.run(write, timeout=max(self.store.timeout, BUFFER_WRITE_S))
                return
            except StoreUnavailable:
                if time.monotonic() >= deadline:
                    log.warning("stream buffer write lost", extra={"buffer": buffer})
                    return
                await asyncio.sleep(0.1)

    # --- a resumed stream -------------------------------------------------------------------

    async def resume(self, last_event_id: str, owner: str) -> AsyncIterator[bytes]:
        """The events after ``last_event_id`` (checked before the response starts)."""
        found = _EVENT_ID.match(last_event_id.strip())
        if found is None:
            raise errors.ValidationFailed(
                "Last-Event-ID is not an event id of this API",
                details=[{"field": "Last-Event-ID", "issue": "malformed"}],
            )
        sid, after = found.group(1), int(found.group(2))
        _, owner_key, _, listener_key = _keys(sid)
        try:
            stored_owner = await self.store.run(lambda r: r.get(owner_key))
            await self.store.run(lambda r: r.set(listener_key, 1, px=LISTENER_TTL_MS))
        except StoreUnavailable:
            raise errors.Unavailable("streams cannot be resumed right now", retry_after=2) from None
        if stored_owner is None or stored_owner.decode() != owner:
            raise errors.NotFound(f"stream {sid} is not available")
        return self._follow(sid, after)

    async def attach(self, sid: str, owner: str) -> AsyncIterator[bytes] | None:
        """A stream's events from its first, once it has one (None before, or if not the
        owner's): how a replay of an idempotent stream joins the stream it repeats."""
        buffer, owner_key, _, listener_key = _keys(sid)

        async def look(r: Any) -> tuple[Any, int]:
            pipe = r.pipeline(transaction=False)
            pipe.get(owner_key)
            pipe.xlen(buffer)
            pipe.set(listener_key, 1, px=LISTENER_TTL_MS)
            stored, length, _ = await pipe.execute()
            return stored, int(length)

        try:
            stored_owner, length = await self.store.run(look)
        except StoreUnavailable:
            raise errors.Unavailable(
                "streams cannot be replayed right now", retry_after=2
            ) from None
        if stored_owner is None or stored_owner.decode() != owner or length == 0:
            return None
        return self._follow(sid, 0)

    async def _follow(self, sid: str, after: int) -> AsyncIterator[bytes]:
        buffer, _, live_key, listener_key = _keys(sid)
        cursor = "0-0"
        idle = 0.0
        down_since: float | None = None
        while True:
            try:
                entries = await self.store.run(partial(_read, buffer, cursor), timeout=2.0)
                await self.store.run(
                    lambda r: r.set(listener_key, 1, px=LISTENER_TTL_MS), timeout=1.0
                )
                ended = False
                if not entries:
                    idle += 0.5
                    if idle >= self.heartbeat_s:
                        idle = 0.0
                        yield HEARTBEAT
                    if not await self._live(live_key):
                        # Its producer may have written its last entries and ended since the read.
                        entries = await self._last_look(buffer, cursor)
                        ended = not entries
                down_since = None
            except StoreUnavailable:  # ride out a brief outage or back-off; the buffer waits
                # (a Memorystore that does not answer says nothing about the stream's producer)
                now = time.monotonic()
                down_since = down_since or now
                if now - down_since > OUTAGE_S:
                    yield self._interrupted(sid)
                    return
                await asyncio.sleep(0.1)
                continue
            if ended:
                yield self._interrupted(sid)
                return
            if not entries:
                continue
            idle = 0.0
            for entry_id, fields in entries[0][1]:
                cursor = entry_id
                seq = int(fields[b"seq"])
                if seq <= after:
                    continue
                if seq != after + 1:  # a buffer write was lost: never hand out a gapped answer
                    yield self._interrupted(sid)
                    return
                after = seq
                yield fields[b"frame"]
                if fields[b"event"].decode() in TERMINAL:
                    return

    async def _last_look(self, buffer: str, cursor: str) -> list[Any]:
        """The buffer's entries after ``cursor`` without waiting (`StoreUnavailable` if
        unreadable)."""
        return await self.store.run(partial(_read, buffer, cursor, block=None), timeout=2.0)

    @staticmethod
    def _interrupted(sid: str) -> bytes:
        failure = errors.UpstreamError("the stream was interrupted; ask again")
        return frame("error", error_event(failure, sid), f"{sid}:0")

    async def _live(self, live_key: str) -> bool:
        """Whether the stream is still being produced by a process that is still alive
        (`StoreUnavailable` when Memorystore cannot say)."""
        producer = await self.store.run(lambda r: r.get(live_key), timeout=1.0)
        if producer is None:
            return False
        heartbeat = _process_key(producer.decode())
        return bool(await self.store.run(lambda r: r.exists(heartbeat), timeout=1.0))

"""Single-flight for streamed answers: one model stream per cache key, across callers and instances.

The first caller of a key in a process starts a *flight*: it looks the key up in the response
cache and, on a miss, takes the key's fill lock (the lock a chat answer's fill takes too). The
lock's holder streams from the model, handing each chunk to its local callers and copying it to a
Redis stream (``ngx:fill:…``); an instance that finds the lock held follows that Redis stream from
its start into a flight of its own. Every caller reads its flight from the first chunk, so each
receives the whole answer. The finished answer is stored in the response cache before the flight's
last entry is written, so a later caller is served from the cache.

A flight ends early only when nobody wants it: its local callers are gone and no other instance
follows it (followers renew a short ``wanted`` mark), and then the model call is cancelled.
A refusal of the leading caller's own token budget is not shared: the other callers start again.
Chunks are numbered: should a write to the fill stream be lost, followers end with an error
rather than an answer with a piece missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

from shared import errors
from shared.batching import BatchedWriter
from shared.llm.cache import ResponseCache, fill_key, own
from shared.llm.types import CallStats, LlmChunk, LlmRequest, LlmResult, result_from_dict
from shared.memorystore import StoreUnavailable
from shared.settings import Settings

Item = LlmChunk | LlmResult  # a flight's pieces: chunks, then the whole answer
Produce = Callable[[LlmRequest, list[str], CallStats, str | None], AsyncIterator[Item]]
Entry = dict[str, str]  # one entry of a fill stream
WANTED_TTL_MS = 1500
ABANDON_GRACE_S = 0.0  # the stream hub has already waited for a resume
READ_BLOCK_MS = 200
PUBLISH_TIMEOUT_S = 1.0  # a lost write would cut every follower's answer: be patient
RETRY_PAUSE_S = 0.1
OUTAGE_S = 3.0  # longer than Memorystore's back-off after one failed operation


def as_hit(result: LlmResult) -> LlmResult:
    """A served-from-cache (or shared) answer: it costs nothing and says so."""
    return replace(
        result,
        cached=True,
        input_tokens=0,
        output_tokens=0,
        cached_input_tokens=0,
        cost_usd=0.0,
        attempts=0,
    )


def replay(result: LlmResult, words_per_chunk: int = 8) -> list[LlmChunk]:
    """A cached answer as stream chunks, the last one carrying the finish reason."""
    words = result.text.split(" ")
    step = words_per_chunk
    pieces = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
    pieces = [(" " if i else "") + piece for i, piece in enumerate(pieces)] or [""]
    out = [LlmChunk(text=piece) for piece in pieces[:-1]]
    out.append(
        LlmChunk(
            text=pieces[-1], finish_reason=result.finish_reason, input_tokens=0, output_tokens=0
        )
    )
    return out


def _wanted_key(key: str) -> str:
    return fill_key(key, "wanted")


@dataclass
class Flight:
    """One answer being streamed, read from its start by any number of local callers."""

    chunks: list[LlmChunk] = field(default_factory=list)
    result: LlmResult | None = None
    error: BaseException | None = None
    done: bool = False
    readers: int = 0
    task: asyncio.Task[None] | None = None
    shared: bool = False  # it writes a fill stream that other instances may be following
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, chunk: LlmChunk) -> None:
        self.chunks.append(chunk)
        self._wake()

    def finish(self, result: LlmResult | None = None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.result, self.error, self.done = result, error, True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def read(self) -> AsyncIterator[Item]:
        """Every chunk from the first, then the answer (or the flight's error)."""
        seen = 0
        while True:
            while seen < len(self.chunks):
                seen += 1
                yield self.chunks[seen - 1]
            if self.done:
                if self.error is not None:
                    raise copy.copy(self.error)  # each reader raises its own instance
                assert self.result is not None
                yield self.result
                return
            await self._changed.wait()


def _chunk_entry(number: int, chunk: LlmChunk) -> Entry:
    return {"n": str(number), "t": chunk.text, "f": chunk.finish_reason or ""}


def _error_entry(error: BaseException) -> Entry:
    if isinstance(error, errors.AppError):
        return {"e": error.code, "m": error.message, "ra": str(error.retry_after or "")}
    return {"e": "upstream_error", "m": "the shared model stream was cut", "ra": "1"}


async def _xread(stream: str, cursor: str, r: Any) -> list[Any]:
    found: list[Any] = await r.xread({stream: cursor}, count=200, block=READ_BLOCK_MS)
    return found


class StreamFlights:
    """The flights of one process; ``produce`` streams from the model (and caches the answer)."""

    def __init__(self, settings: Settings, cache: ResponseCache, produce: Produce) -> None:
        self._cache = cache
        self._produce = produce
        self._wait_s = settings.singleflight_wait_s
        self._lock_s = settings.singleflight_lock_s
        self._flights: dict[str, Flight] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def join(
        self, key: str, request: LlmRequest, chain: list[str], stats: CallStats
    ) -> AsyncIterator[Item]:
        """The answer to a cacheable request, shared with every identical request in flight."""
        while True:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = Flight()
                flight.task = asyncio.create_task(self._lead(key, flight, request, chain, stats))
                self._keep(flight.task)
            else:
                stats.cache = "shared"
            flight.readers += 1
            try:
                async for item in flight.read():
                    yield item if leading or not isinstance(item, LlmResult) else as_hit(item)
                return
            except errors.TokenBudgetExceeded:
                if leading:  # the leader's own budget; the others are not refused by it
                    raise
            finally:
                flight.readers -= 1
                if flight.readers == 0 and not flight.done:
                    self._keep(asyncio.create_task(self._abandon_later(key, flight)))

    async def _abandon_later(self, key: str, flight: Flight) -> None:
        """Cancel a flight nobody here reads any more once no other instance follows it either
        (looked at again while they do); following another's flight stops at once."""
        await asyncio.sleep(ABANDON_GRACE_S)
        wanted = _wanted_key(key)
        while not flight.readers and not flight.done and flight.task is not None:
            followed = False
            if flight.shared:
                try:
                    followed = bool(await self._cache.store.run(lambda r: r.exists(wanted)))
                except StoreUnavailable:
                    followed = False
            if not followed:
                if not flight.readers:
                    flight.task.cancel()
                return
            await asyncio.sleep(WANTED_TTL_MS / 1000)

    async def _lead(
        self, key: str, flight: Flight, request: LlmRequest, chain: list[str], stats: CallStats
    ) -> None:
        """Fill a flight: from the cache, from another instance's flight, or from the model."""
        try:
            await self._fill(key, flight, request, chain, stats)
        except asyncio.CancelledError:
            flight.finish(error=errors.UpstreamError("the answer was abandoned", retry_after=1))
            raise
        except Exception as exc:
            flight.finish(error=exc)
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _fill(
        self, key: str, flight: Flight, request: LlmRequest, chain: list[str], stats: CallStats
    ) -> None:
        try:
            hit = await self._cache.lookup(key, request.query_class)
        except StoreUnavailable:
            stats.cache = "error"
            return await self._stream_into(flight, request, chain, stats, key, None)
        if hit is not None:
            stats.cache = "hit"
            return self._replay_into(flight, hit)
        stats.cache = "miss"
        give_up = time.monotonic() + self._wait_s
        while True:
            token = uuid.uuid4().hex
            try:
                locked = await self._cache.try_lock(key, token, self._lock_s)
            except StoreUnavailable:
                stats.cache = "error"
                return await self._stream_into(flight, request, chain, stats, key, None)
            if locked:
                return await self._stream_into(flight, request, chain, stats, key, token)
            if await self._follow(key, flight, give_up):
                stats.cache = "shared"
                return None
            if time.monotonic() >= give_up:  # the holder is stuck: answer on our own
                return await self._stream_into(flight, request, chain, stats, key, None)

    @staticmethod
    def _replay_into(flight: Flight, answer: LlmResult) -> None:
        for chunk in replay(answer):
            flight.add(chunk)
        flight.finish(as_hit(answer))

    async def _stream_into(
        self,
        flight: Flight,
        request: LlmRequest,
        chain: list[str],
        stats: CallStats,
        key: str,
        token: str | None,
    ) -> None:
        """Stream from the model into the flight; holding the lock, also into the fill stream."""
        writer: BatchedWriter[Entry] | None = None
        renewal: asyncio.Task[None] | None = None
        if token is not None:
            flight.shared = True
            publish = partial(self._publish, fill_key(key, token), request.subject)
            writer = BatchedWriter(publish, self._keep, lambda e: "t" not in e)
            renewal = asyncio.create_task(self._renew(key, token))
        try:
            async for item in self._produce(request, chain, stats, key):
                if isinstance(item, LlmResult):
                    flight.finish(item)
                    if writer is not None:
                        writer.add({"r": json.dumps(asdict(item), separators=(",", ":"))})
                else:
                    flight.add(item)
                    if writer is not None:
                        writer.add(_chunk_entry(len(flight.chunks), item))
        except BaseException as exc:
            if writer is not None and not isinstance(exc, errors.TokenBudgetExceeded):
                writer.add(_error_entry(exc))
            raise
        finally:
            if renewal is not None:
                renewal.cancel()
            if writer is not None and token is not None:
                await asyncio.shield(self._close(key, token, writer))

    async def _close(self, key: str, token: str, writer: BatchedWriter[Entry]) -> None:
        with contextlib.suppress(StoreUnavailable):
            await writer.close()
        with contextlib.suppress(StoreUnavailable):
            await self._cache.unlock(key, token)

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lock_s / 3)
            with contextlib.suppress(StoreUnavailable):
                await self._cache.renew_lock(key, token, self._lock_s)

    async def _publish(self, stream: str, subject: str | None, entries: list[Entry]) -> None:

        async def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(stream, entry)  # type: ignore[arg-type]
            pipe.pexpire(stream, int(self._lock_s * 2000))
            own(pipe, subject, [stream], int(self._lock_s * 2))
            await pipe.execute()

        # A lost write would cut every follower's answer: ride out a brief outage or back-off.
        give_up = time.monotonic() + self._lock_s
        while True:
            try:
                await self._cache.store.run(write, timeout=PUBLISH_TIMEOUT_S)
                return
            except StoreUnavailable:
                if time.monotonic() >= give_up:
                    raise
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _follow(self, key: str, flight: Flight, give_up: float) -> bool:
        """Copy another instance's flight into ours; False when it ended before its first chunk
        without an answer (its holder failed or let go: try for the lock again)."""
        try:
            holder = await self._cache.lock_holder(key)
        except StoreUnavailable:
            return False
        if holder is None:
            return False  # let go already: look at the cache and the lock again
        # The holder's own stream: an earlier flight's entries are never read as this one's.
        stream, wanted = fill_key(key, holder), _wanted_key(key)
        cursor, received = "0-0", False
        quiet_since = time.monotonic()
        while True:
            try:
                await self._cache.store.run(
                    lambda r: r.set(wanted, 1, px=WANTED_TTL_MS), timeout=PUBLISH_TIMEOUT_S
                )
                found = await self._cache.store.run(partial(_xread, stream, cursor), timeout=2.0)
            except StoreUnavailable:  # a brief outage or back-off: the stream waits in Redis
                waited = time.monotonic() - quiet_since
                if not received and waited > OUTAGE_S:
                    return False  # nothing to lose yet: answer without the others
                if waited > self._wait_s:
                    cut = errors.UpstreamError("the shared stream was cut", retry_after=1)
                    flight.finish(error=cut)
                    return True
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            for entry_id, fields in found[0][1] if found else []:
                cursor, quiet_since = entry_id, time.monotonic()
                if b"t" in fields:
                    number = int(fields[b"n"])
                    if number <= len(flight.chunks):  # written twice (a retried write): skip
                        continue
                    if number != len(flight.chunks) + 1:  # a write was lost
                        cut = errors.UpstreamError("the shared stream was cut", retry_after=1)
                        flight.finish(error=cut)
                        return True
                    received = True
                    finish = fields[b"f"].decode() or None
                    flight.add(LlmChunk(text=fields[b"t"].decode(), finish_reason=finish))
                elif b"r" in fields:
                    flight.finish(as_hit(result_from_dict(json.loads(fields[b"r"]))))
                    return True
                else:
                    retry = fields[b"ra"].decode()
                    error = errors.from_code(
                        fields[b"e"].decode(), fields[b"m"].decode(), int(retry) if retry else None
                    )
                    flight.finish(error=error)
                    return True
            if found:
                continue
            if received:
                if time.monotonic() - quiet_since > self._wait_s:
                    flight.finish(error=errors.UpstreamError("the shared stream stalled"))
                    return True
                continue
            try:
                answer, locked = await self._cache.peek_with_lock(key)
            except StoreUnavailable:
                return False
            if answer is not None:  # filled by a chat answer, which does not stream
                self._replay_into(flight, answer)
                return True
            if not locked or time.monotonic() >= give_up:
                return False

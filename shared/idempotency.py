"""Idempotent POSTs: the first answer to an ``Idempotency-Key`` is stored and replayed as is.

``idempotency/{sha256(subject, key)}`` holds the state (``pending`` → ``done``), a hash of the
request body, the stored response, a lease and ``expire_at`` (Firestore TTL). The first request
creates the document (``create`` fails if it exists, so exactly one caller wins across instances)
and runs; concurrent replays wait for it — on the same instance through a shared future,
elsewhere by polling — and receive the stored bytes. The same key with a different body is
refused with 422. A replay still pending after ``idempotency_wait_s`` gets 409 with
``Retry-After``. A failed first attempt removes its record, so the client's retry runs again.

Streams (`Idempotency.stream`) keep the same promise with events: the first request's record
names its stream; a replay while it runs follows that stream's buffer from its first event (the
whole answer, once, with no second model call); once it is done the record holds every event
and a replay receives them as they were sent.

Exactly once, across crashes: the chat answer is *sealed* — its ``done`` record is written in the
same commit as the exchange, on the condition that the record is still the one this request
claimed (its update time). A request whose instance died before that commit leaves a pending
record; once its lease (``idempotency_lease_s``) runs out a replay takes the claim over and runs
the request. Should the first owner still be alive, its commit now fails whole and it answers as
a replay would — no second exchange is ever stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import admission, errors
from shared.settings import Settings
from shared.stores import writes
from shared.stores.conversations import new_id

log = logging.getLogger("ngx.idempotency")
COLLECTION = "idempotency"
MAX_KEY_CHARS = 255
JSON = "application/json"
EVENT_STREAM = "text/event-stream"
# What a commit carrying a seal answers when the record changed since it was claimed.
LOST_CLAIM = frozenset({"FailedPrecondition", "NotFound"})


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    media_type: str = JSON


def body_hash(payload: Any) -> str:
    """Hash of a request body's canonical JSON form."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Claim:
    """This request's hold on a pending record: the update time of its own write of it."""

    reference: Any
    update_time: Any  # a protobuf Timestamp
    sealed: bytes | None = None

    def seal(self, body: bytes) -> Sequence[Any]:
        """The writes that record ``body`` (a 200 JSON answer) as done, if the claim still holds."""
        self.sealed = body
        done = {"state": "done", "status": 200, "body": body, "media_type": JSON}
        name = self.reference._document_path
        return [writes.merge_write(name, done, last_update_time=self.update_time)]

    def seal_stream(self) -> Sequence[Any]:
        """The writes that mark a stream's answer as stored (its events are recorded after)."""
        name = self.reference._document_path
        answered = {"state": "answered"}
        return [writes.merge_write(name, answered, last_update_time=self.update_time)]


Seal = Callable[[bytes], Sequence[Any]]  # an answer's body → writes committed with its exchange
Produce = Callable[[Seal], Awaitable[StoredResponse]]
Events = AsyncIterator[bytes]  # a stream's response body
StartStream = Callable[[str, Claim], Awaitable[Events]]  # (stream id, claim) → its events
Attach = Callable[[str], Awaitable[Events | None]]  # stream id → its events from the first, if any


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Idempotency:
    def __init__(
        self, db: Any, settings: Settings, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._clock = clock  # leases are judged by it; tests move it instead of waiting
        self._db = db
        self._ttl = timedelta(hours=settings.idempotency_ttl_h)
        self._lease = timedelta(seconds=settings.idempotency_lease_s)
        self._wait_s = settings.idempotency_wait_s
        # Requests running in this process: doc id → (body hash, future of the answer).
        self._local: dict[str, tuple[str, asyncio.Future[StoredResponse]]] = {}

    async def run(
        self, subject: str, key: str, request_hash: str, produce: Produce
    ) -> StoredResponse:
        """The stored answer for ``key``, producing it once if this is the first request.

        ``produce`` receives a seal: a function from the answer's JSON body to the writes to
        commit with the answer's own data. An answer produced without calling it is recorded
        after the fact, as a plain update.
        """
        doc_id = _doc_id(subject, key)
        await admission.settle_pending()  # its record is written before any cache lookup
        running = self._local.get(doc_id)
        if running is not None:
            first_hash, pending = running
            if first_hash != request_hash:
                raise _mismatch()
            return await self._wait_local(pending)
        future: asyncio.Future[StoredResponse] = asyncio.get_running_loop().create_future()
        self._local[doc_id] = (request_hash, future)
        try:
            stored = await self._run_once(doc_id, subject, request_hash, produce)
        except BaseException as exc:
            # Waiters hear an error they can act on; a cancelled first request is not theirs.
            future.set_exception(exc if isinstance(exc, Exception) else _interrupted())
            future.exception()
            raise
        else:
            future.set_result(stored)
            return stored
        finally:
            del self._local[doc_id]

    async def _wait_local(self, pending: asyncio.Future[StoredResponse]) -> StoredResponse:
        try:
            return await asyncio.wait_for(asyncio.shield(pending), self._wait_s)
        except TimeoutError:
            raise _in_flight() from None

    async def _run_once(
        self, doc_id: str, subject: str, request_hash: str, produce: Produce
    ) -> StoredResponse:
        reference = self._db.collection(COLLECTION).document(doc_id)
        claim = await self._claim(reference, self._pending(request_hash, subject, self._clock()))
        while not isinstance(claim, StoredResponse):
            try:
                return await self._produce(claim, produce)
            except Exception as exc:
                if claim.sealed is None or type(exc).__name__ not in LOST_CLAIM:
                    raise
            # Our sealed commit was refused: the record is no longer the one we claimed (taken
            # over, or already sealed by a commit whose reply was lost). Answer as a replay.
            log.warning("idempotency claim lost before its answer was stored")
            claim = await self._replay(reference, request_hash)
        return claim

    async def _produce(self, claim: Claim, produce: Produce) -> StoredResponse:
        reference = claim.reference
        try:
            stored = await produce(claim.seal)
        except BaseException:
            await self._release(claim)
            raise
        if claim.sealed is not None:
            return StoredResponse(200, claim.sealed)
        if 200 <= stored.status < 300:
            await reference.update(
                {
                    "state": "done",
                    "status": stored.status,
                    "body": stored.body,
                    "media_type": stored.media_type,
                },
                option=self._db.write_option(last_update_time=claim.update_time),
            )
        else:
            await self._release(claim)
        return stored

    def _pending(self, request_hash: str, owner: str, now: datetime) -> dict[str, Any]:
        return {
            "state": "pending",
            "owner": owner,  # whose record it is: erasure finds a subject's records by it
            "body_hash": request_hash,
            "created_at": now,
            "lease_until": now + self._lease,
            "expire_at": now + self._ttl,
        }

    async def _claim(self, reference: Any, pending: dict[str, Any]) -> Claim | StoredResponse:
        """Create the pending record, or follow whoever holds it (taking over a lapsed lease)."""
        from google.api_core.exceptions import AlreadyExists

        try:
            result = await reference.create(pending)
        except AlreadyExists:
            return await self._replay(reference, pending["body_hash"])
        return Claim(reference, result.update_time.timestamp_pb())

    async def _release(self, claim: Claim) -> None:
        """Remove our pending record so that a retry runs again, unless another request holds it."""
        from google.api_core.exceptions import FailedPrecondition, NotFound

        option = self._db.write_option(last_update_time=claim.update_time)
        with contextlib.suppress(FailedPrecondition, NotFound):
            await claim.reference.delete(option=option)

    async def _replay(self, reference: Any, request_hash: str) -> Claim | StoredResponse:
        """Wait for the first request to finish and return its answer; take over a lapsed one."""
        from google.api_core.exceptions import FailedPrecondition, NotFound

        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait_s
        delay = 0.05
        while True:
            snapshot, data = await _read_record(reference, request_hash)
            if data["state"] == "done":
                return StoredResponse(data["status"], bytes(data["body"]), data["media_type"])
            now = self._clock()
            if data.get("lease_until", data["created_at"] + self._lease) <= now:
                option = self._db.write_option(last_update_time=snapshot.update_time)
                # Another replay took it first, or its owner just removed it: look again.
                with contextlib.suppress(FailedPrecondition, NotFound):
                    result = await reference.update(
                        {"created_at": now, "lease_until": now + self._lease}, option=option
                    )
                    log.warning("idempotency claim taken over after its lease ran out")
                    return Claim(reference, result.update_time.timestamp_pb())
            if loop.time() >= give_up:
                raise _in_flight()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    # --- streams ----------------------------------------------------------------------------

    async def stream(
        self,
        subject: str,
        key: str,
        request_hash: str,
        stream_id: str,
        start: StartStream,
        attach: Attach,
    ) -> Events:
        """The events for ``key``: a new stream (``start``) the first time; afterwards the first
        stream's events, followed live (``attach``) or as recorded once it is done."""
        from google.api_core.exceptions import AlreadyExists

        reference = self._db.collection(COLLECTION).document(_doc_id(subject, key))
        pending = self._pending(request_hash, subject, self._clock())
        try:
            result = await reference.create({**pending, "stream_id": stream_id})
        except AlreadyExists:
            return await self._attach(reference, request_hash, start, attach)
        claim = Claim(reference, result.update_time.timestamp_pb())
        return await self._start(claim, stream_id, start)

    async def _start(self, claim: Claim, stream_id: str, start: StartStream) -> Events:
        try:
            return await start(stream_id, claim)
        except BaseException:
            await self._release(claim)
            raise

    async def finish_stream(self, claim: Claim, frames: list[bytes], terminal: str) -> None:
        """Record a finished stream's events for replays; after a failure let a retry run again
        (a stream whose answer was already stored keeps its record: it cannot run twice)."""
        from google.api_core.exceptions import NotFound

        if terminal != "done":
            await self._release(claim)
            return
        done = {"state": "done", "status": 200, "body": b"".join(frames)}
        with contextlib.suppress(NotFound):
            await claim.reference.update({**done, "media_type": EVENT_STREAM})

    async def _take_over(
        self, reference: Any, seen: Any, now: datetime
    ) -> tuple[Claim, str] | None:
        """Claim a stream whose first request's lease ran out, under a new stream id (the old
        stream may hold part of an answer); None when another request claimed it first."""
        from google.api_core.exceptions import FailedPrecondition, NotFound

        stream_id = new_id()
        taken = {"created_at": now, "lease_until": now + self._lease, "stream_id": stream_id}
        option = self._db.write_option(last_update_time=seen)
        try:
            result = await reference.update(taken, option=option)
        except (FailedPrecondition, NotFound):
            return None
        log.warning("idempotency claim taken over after its lease ran out")
        return Claim(reference, result.update_time.timestamp_pb()), stream_id

    async def _attach(
        self, reference: Any, request_hash: str, start: StartStream, attach: Attach
    ) -> Events:
        """Follow the first request's stream from its first event, or replay its record."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait_s
        delay = 0.05
        while True:
            snapshot, data = await _read_record(reference, request_hash)
            if "stream_id" not in data:
                raise _mismatch()
            if data["state"] == "done":
                return _once(bytes(data["body"]))
            now = self._clock()
            if data["state"] == "pending" and data["lease_until"] <= now:
                # Its producer is gone (a lease outlives any request): never follow its buffer;
                # an answered record is never taken over (its exchange is stored).
                taken = await self._take_over(reference, snapshot.update_time, now)
                if taken is not None:
                    return await self._start(*taken, start)
                continue  # another replay took it first: look again
            reachable = True
            try:
                events = await attach(data["stream_id"])
            except errors.Unavailable:  # Memorystore slow or in back-off: look again
                if loop.time() >= give_up:
                    raise
                events, reachable = None, False
            if events is not None:
                return events
            if loop.time() >= give_up:
                if data["state"] == "answered" and reachable:  # stored, its events gone
                    raise errors.Conflict(
                        "the answer to this Idempotency-Key was stored but can no longer be "
                        "replayed as a stream; read it from its conversation"
                    )
                raise _in_flight()
            # An answered stream records its events moments later: wait for them.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


async def _read_record(reference: Any, request_hash: str) -> tuple[Any, dict[str, Any]]:
    """The first request's record: 409 if it failed (and went), 422 if its body differs."""
    snapshot = await reference.get()
    data: dict[str, Any] | None = snapshot.to_dict() if snapshot.exists else None
    if data is None:
        raise errors.Conflict(
            "the first request with this Idempotency-Key failed; retry it", retry_after=1
        )
    if data["body_hash"] != request_hash:
        raise _mismatch()
    return snapshot, data


async def _once(body: bytes) -> Events:
    yield body


def _doc_id(subject: str, key: str) -> str:
    if not key or len(key) > MAX_KEY_CHARS:
        raise errors.ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters",
            details=[{"field": "Idempotency-Key", "issue": "bad length"}],
        )
    return hashlib.sha256(f"{subject}\x1f{key}".encode()).hexdigest()


def _mismatch() -> errors.AppError:
    return errors.ValidationFailed(
        "this Idempotency-Key was used with a different request body",
        details=[{"field": "Idempotency-Key", "issue": "reused with another body"}],
    )


def _interrupted() -> errors.AppError:
    return errors.Conflict(
        "the first request with this Idempotency-Key was interrupted; retry it", retry_after=1
    )


def _in_flight() -> errors.AppError:
    return errors.Conflict(
        "the first request with this Idempotency-Key is still running", retry_after=2
    )

"""Idempotent POSTs: the first answer to an ``Idempotency-Key`` is stored and replayed as is.

``idempotency/{sha256(subject, key)}`` holds the state (``pending`` → ``done``), a hash of the
request body, the stored response and ``expire_at`` (Firestore TTL). The first request creates the
document (``create`` fails if it exists, so exactly one caller wins across instances) and runs;
concurrent replays wait for it — on the same instance through a shared future, elsewhere by
polling — and receive the stored bytes. The same key with a different body is refused with 422.
A replay still pending after ``idempotency_wait_s`` gets 409 with ``Retry-After``. A failed first
attempt removes its record, so the client's retry runs again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import errors
from shared.settings import Settings

log = logging.getLogger("ngx.idempotency")
COLLECTION = "idempotency"
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    media_type: str = "application/json"


def body_hash(payload: Any) -> str:
    """Hash of a request body's canonical JSON form."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Idempotency:
    def __init__(self, db: Any, settings: Settings) -> None:
        self._db = db
        self._ttl = timedelta(hours=settings.idempotency_ttl_h)
        self._wait_s = settings.idempotency_wait_s
        # Requests running in this process: doc id → (body hash, future of the answer).
        self._local: dict[str, tuple[str, asyncio.Future[StoredResponse]]] = {}

    async def run(
        self,
        subject: str,
        key: str,
        request_hash: str,
        produce: Callable[[], Awaitable[StoredResponse]],
    ) -> StoredResponse:
        """The stored answer for ``key``, producing it once if this is the first request."""
        if not key or len(key) > MAX_KEY_CHARS:
            raise errors.ValidationFailed(
                f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters",
                details=[{"field": "Idempotency-Key", "issue": "bad length"}],
            )
        doc_id = hashlib.sha256(f"{subject}\x1f{key}".encode()).hexdigest()
        running = self._local.get(doc_id)
        if running is not None:
            first_hash, pending = running
            if first_hash != request_hash:
                raise _mismatch()
            return await self._wait_local(pending)
        future: asyncio.Future[StoredResponse] = asyncio.get_running_loop().create_future()
        self._local[doc_id] = (request_hash, future)
        try:
            stored = await self._run_once(doc_id, request_hash, produce)
        except BaseException as exc:
            future.set_exception(exc)
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
        self, doc_id: str, request_hash: str, produce: Callable[[], Awaitable[StoredResponse]]
    ) -> StoredResponse:
        from google.api_core.exceptions import AlreadyExists

        reference = self._db.collection(COLLECTION).document(doc_id)
        now = datetime.now(UTC)
        try:
            await reference.create(
                {
                    "state": "pending",
                    "body_hash": request_hash,
                    "created_at": now,
                    "expire_at": now + self._ttl,
                }
            )
        except AlreadyExists:
            return await self._replay(reference, request_hash)
        try:
            stored = await produce()
        except BaseException:
            await reference.delete()
            raise
        if 200 <= stored.status < 300:
            await reference.update(
                {
                    "state": "done",
                    "status": stored.status,
                    "body": stored.body,
                    "media_type": stored.media_type,
                }
            )
        else:
            await reference.delete()
        return stored

    async def _replay(self, reference: Any, request_hash: str) -> StoredResponse:
        """Wait for another instance's first request to finish, then return its answer."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait_s
        delay = 0.05
        while True:
            snapshot = await reference.get()
            data = snapshot.to_dict() if snapshot.exists else None
            if data is None:
                raise errors.Conflict(
                    "the first request with this Idempotency-Key failed; retry it", retry_after=1
                )
            if data["body_hash"] != request_hash:
                raise _mismatch()
            if data["state"] == "done":
                return StoredResponse(data["status"], bytes(data["body"]), data["media_type"])
            if loop.time() >= give_up:
                raise _in_flight()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


def _mismatch() -> errors.AppError:
    return errors.ValidationFailed(
        "this Idempotency-Key was used with a different request body",
        details=[{"field": "Idempotency-Key", "issue": "reused with another body"}],
    )


def _in_flight() -> errors.AppError:
    return errors.Conflict(
        "the first request with this Idempotency-Key is still running", retry_after=2
    )

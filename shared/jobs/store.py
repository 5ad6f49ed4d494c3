"""Jobs in Firestore: ``jobs/{job_id}`` holds a job's kind, owner, status and result.

A job is created ``queued`` by the route that asks for it, then claimed by the worker for a lease
(``running``, with a run token) — in a transaction, so a redelivered message finds it running (and
is told to come back later) or done (and is acknowledged without doing the work twice). A worker
that dies holding the lease leaves the job to the next delivery once the lease lapses; a run whose
lease was taken over can no longer finish or release the job (its token no longer matches). Jobs
expire by TTL (``expire_at``) and go with their owner's erasure.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared import errors

COLLECTION = "jobs"
Status = Literal["queued", "running", "succeeded", "failed"]
FINISHED = ("succeeded", "failed")
KEEP_DAYS = 30
JOB_ID = re.compile(r"^job_[a-z0-9]{20}\Z")


def new_job_id() -> str:
    """``job_`` and 20 random letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "job_" + "".join(secrets.choice(alphabet) for _ in range(20))


@dataclass(frozen=True)
class Job:
    """One job as stored."""

    job_id: str
    kind: str
    owner: str
    status: Status
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    run: str | None = None  # the token of the run holding the lease
    lease_until: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    params: dict[str, Any] | None = None  # what the job works on (an ingestion: its event)

    @classmethod
    def of(cls, job_id: str, data: dict[str, Any]) -> Job:
        return cls(
            job_id=job_id,
            kind=data["kind"],
            owner=data["owner"],
            status=data["status"],
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            attempts=int(data.get("attempts", 0)),
            run=data.get("run"),
            lease_until=data.get("lease_until"),
            result=data.get("result"),
            error=data.get("error"),
            params=data.get("params"),
        )


class Claimed(Exception):
    """The job is being run by another delivery whose lease has not lapsed."""


class JobStore:
    """Creates, claims, finishes and reads jobs."""

    def __init__(self, db: Any, lease_s: float = 300.0) -> None:
        self._db = db
        self._lease = timedelta(seconds=lease_s)

    def _ref(self, job_id: str) -> Any:
        return self._db.collection(COLLECTION).document(job_id)

    async def create(self, kind: str, owner: str, params: dict[str, Any] | None = None) -> Job:
        """A new queued job of ``owner``."""
        now = datetime.now(UTC)
        job_id = new_job_id()
        data = {
            "kind": kind,
            "owner": owner,
            "status": "queued",
            "created_at": now,
            "updated_at": now,
            "attempts": 0,
            "expire_at": now + timedelta(days=KEEP_DAYS),
        }
        if params is not None:
            data["params"] = params
        await self._ref(job_id).create(data)
        return Job.of(job_id, data)

    async def delete(self, job_id: str) -> None:
        await self._ref(job_id).delete()

    async def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job (``owner``'s only, when given: anyone else's is reported as missing)."""
        if not JOB_ID.match(job_id):  # never a Firestore path of anyone's choosing
            raise errors.NotFound(f"job {job_id[:80]!r} not found")
        snapshot = await self._ref(job_id).get()
        data = snapshot.to_dict() if snapshot.exists else None
        if data is None or (owner is not None and data.get("owner") != owner):
            raise errors.NotFound(f"job {job_id} not found")
        return Job.of(job_id, data)

    async def in_flight(self, kind: str, owner: str) -> Job | None:
        """``owner``'s queued or running job of ``kind``, if any (the newest)."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._db.collection(COLLECTION)
            .where(filter=FieldFilter("owner", "==", owner))
            .where(filter=FieldFilter("kind", "==", kind))
            .where(filter=FieldFilter("status", "in", ["queued", "running"]))
        )
        now = datetime.now(UTC)
        found = [
            job
            for job in [Job.of(s.id, s.to_dict()) async for s in query.stream()]
            if _live(job, now)
        ]
        return max(found, key=lambda job: job.created_at) if found else None

    async def claim(self, job_id: str) -> Job | None:
        """Take the job for one run: None when it is already finished; `Claimed` while another
        delivery holds an unexpired lease."""
        from google.cloud.firestore_v1 import async_transactional

        if not JOB_ID.match(job_id):
            raise errors.NotFound(f"job {job_id[:80]!r} not found")
        ref = self._ref(job_id)

        @async_transactional  # type: ignore[untyped-decorator]
        async def take(transaction: Any) -> Job | None:
            snapshot = await ref.get(transaction=transaction)
            if not snapshot.exists:
                raise errors.NotFound(f"job {job_id} not found")
            data = snapshot.to_dict()
            now = datetime.now(UTC)
            if data["status"] in FINISHED:
                return None
            lease = data.get("lease_until")
            if data["status"] == "running" and lease is not None and lease > now:
                raise Claimed(job_id)
            update = {
                "status": "running",
                "run": secrets.token_hex(8),
                "lease_until": now + self._lease,
                "attempts": int(data.get("attempts", 0)) + 1,
                "updated_at": now,
            }
            transaction.update(ref, update)
            return Job.of(job_id, {**data, **update})

        result: Job | None = await take(self._db.transaction())
        return result

    async def release(self, job: Job, error: str) -> bool:
        """A run failed and will be retried: the job is queued again, the error kept. False when
        the run no longer holds the job."""
        now = datetime.now(UTC)
        update = {"status": "queued", "lease_until": None, "updated_at": now, "error": error[:500]}
        return await self._held_update(job, update)

    async def finish(
        self, job: Job, status: Status, result: dict[str, Any] | None, error: str | None
    ) -> Job | None:
        """Record how a claimed run ended; None when the run no longer holds the job (its lease
        was taken over, or the job was erased)."""
        now = datetime.now(UTC)
        update: dict[str, Any] = {"status": status, "updated_at": now, "lease_until": None}
        if result is not None:
            update["result"] = result
        if error is not None:
            update["error"] = error[:500]
        if not await self._held_update(job, update):
            return None
        return Job.of(job.job_id, {**_as_data(job), **update})

    async def _held_update(self, job: Job, update: dict[str, Any]) -> bool:
        """Apply ``update`` if ``job``'s run still holds it (in a transaction)."""
        from google.cloud.firestore_v1 import async_transactional

        ref = self._ref(job.job_id)

        @async_transactional  # type: ignore[untyped-decorator]
        async def apply(transaction: Any) -> bool:
            snapshot = await ref.get(transaction=transaction)
            if not snapshot.exists or snapshot.get("run") != job.run:
                return False
            transaction.update(ref, update)
            return True

        held: bool = await apply(self._db.transaction())
        return held


def _live(job: Job, now: datetime) -> bool:
    """Whether a job still stands for its work: queued lately, or running under its lease (one
    dead-lettered or abandoned does not block a new request)."""
    if job.status == "queued":
        return now - job.updated_at < timedelta(days=1)
    return job.status == "running" and job.lease_until is not None and job.lease_until > now


def _as_data(job: Job) -> dict[str, Any]:
    return {
        "kind": job.kind,
        "owner": job.owner,
        "status": job.status,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "attempts": job.attempts,
        "run": job.run,
        "result": job.result,
        "error": job.error,
        "params": job.params,
    }

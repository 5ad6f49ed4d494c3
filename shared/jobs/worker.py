"""Running a pushed job: the worker function's logic.

Pub/Sub pushes each message of the jobs topic to the worker (its push subscription, with an OIDC
token of the push identity), as a push envelope — or, through an Eventarc trigger, as a
``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvent around the same envelope. A 2xx
answer acknowledges the message; anything else has Pub/Sub deliver it again with backoff, and
after ``job_max_attempts`` deliveries the dead-letter topic takes it.

So: a job already finished is acknowledged without running again (a redelivery does nothing); a
job another delivery is running is answered 409 (delivered again later, after that run's lease);
a failed run releases the job and answers 503 (retried), or, on the last attempt, marks it failed
(and the message goes to the dead-letter topic). The owner's open sessions are told when it ends.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared import errors
from shared.contracts import JobView
from shared.jobs.store import JOB_ID, Claimed, Job, JobStore

log = logging.getLogger("ngx.jobs")
CLOUDEVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
Runner = Callable[[Job], Awaitable[dict[str, Any]]]
Notify = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """One pushed message: the job it names and which delivery of it this is."""

    job_id: str
    kind: str
    message_id: str
    attempt: int


def _bad(why: str, field: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(
        f"not a job message: {why}", details=[{"field": field, "issue": why}]
    )


def parse_delivery(headers: Mapping[str, str], body: Any, kinds: set[str]) -> Delivery:
    """The delivery in a push envelope (or a CloudEvent carrying one); 422 naming the field."""
    ce_type = headers.get("ce-type")
    if ce_type is not None and ce_type != CLOUDEVENT_TYPE:
        raise _bad(f"CloudEvent type {ce_type[:100]!r} is not {CLOUDEVENT_TYPE}", "ce-type")
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise _bad("no message object", "message")
    message = body["message"]
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 100:
        raise _bad("no messageId", "message.messageId")
    raw = message.get("data")
    if not isinstance(raw, str) or len(raw) > 4096:
        raise _bad("data must be base64 text of at most 4 KiB", "message.data")
    try:
        data = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise _bad("data is not base64 of JSON", "message.data") from None
    if not isinstance(data, dict):
        raise _bad("data is not a JSON object", "message.data")
    job_id, kind = data.get("job_id"), data.get("kind")
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise _bad("job_id is missing or malformed", "message.data.job_id")
    if not isinstance(kind, str) or kind not in kinds:
        raise _bad(f"kind must be one of {sorted(kinds)}", "message.data.kind")
    attempt = body.get("deliveryAttempt", 1)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 < attempt < 10_000:
        raise _bad("deliveryAttempt must be a positive integer", "deliveryAttempt")
    return Delivery(job_id, kind, message_id, attempt)


def view(job: Job) -> JobView:
    return JobView(
        job_id=job.job_id,
        kind=job.kind,  # type: ignore[arg-type]
        status=job.status,
        created_at=job.created_at,
        updated_at=job.updated_at,
        attempts=job.attempts,
        error=job.error,
        result=job.result,
    )


class JobWorker:
    """Runs each delivered job at most once to success."""

    def __init__(
        self, store: JobStore, runners: Mapping[str, Runner], notify: Notify, max_attempts: int
    ) -> None:
        self._store = store
        self._runners = runners
        self._notify = notify
        self._max_attempts = max_attempts

    @property
    def kinds(self) -> set[str]:
        return set(self._runners)

    async def handle(self, delivery: Delivery) -> dict[str, Any]:
        """Run the delivered job; the outcome to acknowledge with, or an error to retry on."""
        try:
            job = await self._store.claim(delivery.job_id)
        except Claimed:
            raise errors.Conflict(
                f"job {delivery.job_id} is running in another delivery", retry_after=30
            ) from None
        except errors.NotFound:
            log.info("job message for no job", extra={"job_id": delivery.job_id})
            return {"job_id": delivery.job_id, "status": "skipped", "reason": "no such job"}
        if job is None:
            return {"job_id": delivery.job_id, "status": "already_finished"}
        if job.kind != delivery.kind:
            ended = await self._store.finish(job, "failed", None, "the message named another kind")
            await self._ended(ended)
            return {"job_id": job.job_id, "status": "failed"}
        try:
            result = await self._runners[job.kind](job)
        except Exception as exc:
            return await self._failed(job, delivery, exc)
        ended = await self._store.finish(job, "succeeded", result, None)
        log.info("job done", extra={"job_id": job.job_id, "kind": job.kind, "kept": bool(ended)})
        await self._ended(ended)
        return {"job_id": job.job_id, "status": "succeeded" if ended else "superseded"}

    async def _ended(self, job: Job | None) -> None:
        """Tell the owner's sessions (a run that no longer held its job tells nobody)."""
        if job is not None:
            await self._notify(job)

    async def _failed(self, job: Job, delivery: Delivery, exc: Exception) -> dict[str, Any]:
        # What went wrong is logged; the user sees that it failed, not the internals.
        log.warning(
            "job run failed",
            extra={
                "job_id": job.job_id,
                "attempt": delivery.attempt,
                "error": f"{type(exc).__name__}: {exc}"[:300],
            },
        )
        if delivery.attempt >= self._max_attempts:
            why = f"the job failed {delivery.attempt} times and was given up"
            await self._ended(await self._store.finish(job, "failed", None, why))
            raise errors.AppError(f"job {job.job_id} failed after {delivery.attempt} attempts")
        await self._store.release(job, f"attempt {delivery.attempt} failed; it will be retried")
        raise errors.Unavailable(f"job {job.job_id} failed; it will be retried", retry_after=10)

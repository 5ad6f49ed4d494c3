"""What the API offers of jobs: ask for an export, read a job (with its download link)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts import JobView
from shared.jobs.export import KIND as EXPORT
from shared.jobs.export import Exporter
from shared.jobs.queue import JobQueue
from shared.jobs.store import Job, JobStore
from shared.jobs.worker import view

ARCHIVE_KEPT = timedelta(hours=23)  # the exports bucket deletes archives after a day


class JobService:
    def __init__(self, store: JobStore, queue: JobQueue, exporter: Exporter) -> None:
        self._store = store
        self._queue = queue
        self._exporter = exporter

    async def export(self, owner: str) -> tuple[JobView, bool]:
        """The caller's export job: the one already queued or running, or a new one (True).
        A job that cannot be queued is not left behind."""
        running = await self._store.in_flight(EXPORT, owner)
        if running is not None:
            return view(running), False
        return view(await self._queued(EXPORT, owner, None)), True

    async def queue(self, kind: str, owner: str, params: dict[str, Any]) -> str:
        """A new job of ``kind`` on ``params``, queued; its id."""
        return (await self._queued(kind, owner, params)).job_id

    async def _queued(self, kind: str, owner: str, params: dict[str, Any] | None) -> Job:
        """A new job, published; one that cannot be published is not left behind."""
        job = await self._store.create(kind, owner, params)
        try:
            await self._queue.publish(job.job_id, kind)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._store.delete(job.job_id)
            raise
        return job

    async def get(self, job_id: str, owner: str) -> JobView:
        """The caller's job; a finished export carries a fresh download link."""
        job = await self._store.get(job_id, owner)
        found = view(job)
        if job.kind == EXPORT and job.status == "succeeded" and job.result:
            if datetime.now(UTC) - job.updated_at > ARCHIVE_KEPT:
                return found.model_copy(update={"error": "the archive has expired: export again"})
            url, expires = await self._exporter.link(job)
            found = found.model_copy(update={"download_url": url, "download_expires_at": expires})
        return found

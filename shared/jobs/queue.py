"""Publishing jobs to the Pub/Sub topic the worker's push subscription reads.

``google-cloud-pubsub`` is imported when the first job is published, not at start: most requests
never queue one. With ``PUBSUB_EMULATOR_HOST`` set (the local stack) the client talks to the
emulator.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared import errors

KIND_ATTRIBUTE = "kind"
JOB_ATTRIBUTE = "job_id"


class JobQueue:
    """Publishes ``{"job_id", "kind"}`` messages to one topic."""

    def __init__(self, project: str, topic: str) -> None:
        self.topic = f"projects/{project}/topics/{topic}"
        self._client: Any = None

    def _publisher(self) -> Any:
        if self._client is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined]

            self._client = pubsub_v1.PublisherClient()
        return self._client

    async def publish(self, job_id: str, kind: str) -> str:
        """The message id once Pub/Sub holds the message; 503 when it cannot be published."""
        data = json.dumps({"job_id": job_id, "kind": kind}).encode()
        try:
            future = self._publisher().publish(
                self.topic, data, **{JOB_ATTRIBUTE: job_id, KIND_ATTRIBUTE: kind}
            )
            message_id: str = await asyncio.wait_for(asyncio.wrap_future(future), 30)
        except Exception as exc:
            raise errors.Unavailable(
                "the job queue is unreachable right now", retry_after=5
            ) from exc
        return message_id

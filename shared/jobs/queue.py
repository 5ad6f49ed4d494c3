"""The job queue: ``{"job_id", "kind"}`` messages on the topic the worker's push subscription
reads."""

from __future__ import annotations

import json

from shared.topics import Topic


class JobQueue:
    def __init__(self, project: str, topic: str) -> None:
        self._topic = Topic(project, topic)

    async def publish(self, job_id: str, kind: str) -> str:
        """The message id once Pub/Sub holds the message; 503 when it cannot be published."""
        data = json.dumps({"job_id": job_id, "kind": kind}).encode()
        return await self._topic.publish(data, job_id=job_id, kind=kind)

"""Publishing to a Pub/Sub topic (the job queue, hand-off events).

``google-cloud-pubsub`` is imported with the first message, not at start: most requests publish
none. With ``PUBSUB_EMULATOR_HOST`` set (the local stack) the client talks to the emulator.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared import errors


class Topic:
    """One topic of this project."""

    def __init__(self, project: str, topic: str) -> None:
        self.name = f"projects/{project}/topics/{topic}"
        self._client: Any = None

    def _publisher(self) -> Any:
        if self._client is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined]

            self._client = pubsub_v1.PublisherClient()
        return self._client

    async def publish(self, data: bytes, **attributes: str) -> str:
        """The message id once Pub/Sub holds the message; 503 when it cannot be published."""
        try:
            future = self._publisher().publish(self.name, data, **attributes)
            message_id: str = await asyncio.wait_for(asyncio.wrap_future(future), 30)
        except Exception as exc:
            raise errors.Unavailable(
                f"{self.name} is unreachable right now", retry_after=5
            ) from exc
        return message_id

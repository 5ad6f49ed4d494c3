"""What ``POST /v1/chat:stream`` answers: a new stream, a resumed one, or an idempotent replay.

With an ``Idempotency-Key`` (or ``request_id``) the request behaves as on chat: the first one
streams; a replay while it runs receives the same stream from its first event; a replay after it
finished receives the recorded events; the same key with another body is refused with 422.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from shared.chat import Caller, ChatService
from shared.contracts import ChatRequest
from shared.idempotency import Claim, Idempotency, body_hash
from shared.stores.conversations import new_id
from shared.streams import StreamHub

ROUTE = "chat:stream"  # part of a request's hash: a key used on chat is not a stream's key


class StreamRequests:
    """Opens the response body of a stream request."""

    def __init__(self, chat: ChatService, hub: StreamHub, idempotency: Idempotency) -> None:
        self._chat = chat
        self._hub = hub
        self._idempotency = idempotency

    async def open(
        self, request: ChatRequest, caller: Caller, request_id: str, key: str | None
    ) -> AsyncIterator[bytes]:
        """The events answering ``request``; errors before the first event are raised."""
        start = partial(self._start, request, caller, request_id)
        if key is None:
            return await start(new_id(), None)
        payload = {"route": ROUTE, **request.model_dump(mode="json")}
        return await self._idempotency.stream(
            caller.subject,
            key,
            body_hash(payload),
            new_id(),
            start,
            partial(self._hub.attach, owner=caller.subject),
        )

    async def _start(
        self,
        request: ChatRequest,
        caller: Caller,
        request_id: str,
        stream_id: str,
        claim: Claim | None,
    ) -> AsyncIterator[bytes]:
        also = claim.seal_stream() if claim is not None else ()
        events = self._chat.stream(request, caller, request_id, stream_id, also)
        first = await anext(events)  # errors before the first event are plain HTTP errors
        on_end = partial(self._idempotency.finish_stream, claim) if claim is not None else None
        return await self._hub.start(stream_id, caller.subject, first, events, request_id, on_end)

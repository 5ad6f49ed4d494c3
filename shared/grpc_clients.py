"""Google API clients that can be pointed at a local fake instead of Google (tests, local)."""

from __future__ import annotations

from typing import Any


def async_client(client_cls: Any, transport_cls: Any, endpoint: str | None) -> Any:
    """A GAPIC async client: Google's endpoint and credentials, or ``endpoint`` over plain gRPC."""
    if not endpoint:
        return client_cls()
    import grpc

    return client_cls(transport=transport_cls(channel=grpc.aio.insecure_channel(endpoint)))

"""Google API (GAPIC) clients that can be pointed at a local stand-in instead of Google.

The one place that opens insecure gRPC channels: the Vertex AI emulator, the Firestore emulator
and the control-plane fakes are plain-text gRPC servers on loopback, and a GAPIC client reaches
them only through a transport built on such a channel (``api_endpoint`` alone would try TLS).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Options = Sequence[tuple[str, Any]]


def local_channel(endpoint: str, aio: bool = True, options: Options = ()) -> Any:
    """A plain-text gRPC channel to a local endpoint (``host:port``), asyncio or blocking."""
    import grpc

    if aio:
        return grpc.aio.insecure_channel(endpoint, options=list(options))
    return grpc.insecure_channel(endpoint, options=list(options))


def gapic_client(
    client_cls: Any,
    transport_cls: Any,
    endpoint: str | None,
    aio: bool = True,
    options: Options = (),
    **google: Any,
) -> Any:
    """``client_cls`` on Google's endpoint with default credentials (``google`` keyword arguments
    such as ``client_options``), or over a local channel to ``endpoint`` when one is given."""
    if not endpoint:
        return client_cls(**google)
    channel = local_channel(endpoint, aio=aio, options=options)
    return client_cls(transport=transport_cls(channel=channel))

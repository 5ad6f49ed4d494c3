"""The uvicorn worker every function runs in: functions-framework's, with WebSocket limits.

A WebSocket message over `FRAME_LIMIT_BYTES` is refused by the protocol layer (close 1009)
before it is buffered; the server pings idle sockets so dead peers are noticed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from shared.sessions.protocol import FRAME_LIMIT_BYTES


class Worker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "ws_max_size": FRAME_LIMIT_BYTES,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
    }

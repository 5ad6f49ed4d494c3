"""The uvicorn worker every function runs in: functions-framework's, with WebSocket limits.

A WebSocket message over `FRAME_LIMIT_BYTES` is refused by the protocol layer (close 1009)
before it is buffered; the server pings idle sockets so dead peers are noticed. A worker whose
gunicorn master dies — killed outright, as a crash test or an OOM kill does — goes with it
instead of serving on unsupervised (Linux parent-death signal).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from shared.sessions.protocol import FRAME_LIMIT_BYTES

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent exits (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class Worker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "ws_max_size": FRAME_LIMIT_BYTES,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
    }

    def init_process(self) -> None:
        die_with_parent()
        if os.getppid() != self.ppid:  # the master died before the signal was asked for
            sys.exit(0)
        super().init_process()

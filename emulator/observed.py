"""Real requests, as Cloud Run would count them per revision: what the rehearsal router saw.

The Monitoring fake (`emulator.monitoring`) answers from these, instead of its traffic model,
for a service that has observations: request counts by response code class and latency histograms
per revision, over exactly the requests that were served in the window.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    at: float  # wall-clock seconds, when the answer left the revision
    revision: str
    status: int
    latency_ms: float


class Observations:
    """Per service id, the requests each revision served; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_service: dict[str, list[Observation]] = defaultdict(list)

    def add(self, service_id: str, revision: str, status: int, latency_ms: float) -> None:
        with self._lock:
            self._by_service[service_id].append(
                Observation(time.time(), revision, status, latency_ms)
            )

    def has(self, service_id: str) -> bool:
        with self._lock:
            return bool(self._by_service.get(service_id))

    def count(self, service_id: str, revision: str) -> int:
        with self._lock:
            return sum(o.revision == revision for o in self._by_service.get(service_id, []))

    def window(self, service_id: str, start: float, end: float) -> list[Observation]:
        """The observations of [start, end), oldest first."""
        with self._lock:
            found = self._by_service.get(service_id, [])
            times = [o.at for o in found]
            return found[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)]


def code_class(status: int) -> str:
    return f"{status // 100}xx"

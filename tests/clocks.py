"""A clock a test moves by hand, for code that takes its clock as a parameter."""

from __future__ import annotations


class ManualClock:
    """Seconds that pass only when a test says so (``clock.now += 5``)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

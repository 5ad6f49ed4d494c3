"""Retry with a budget, and a circuit breaker per model.

Backoff delays come from ``google.api_core.retry.exponential_sleep_generator`` (exponential with
full jitter). What api_core does not offer is added here: a retry budget shared by all calls of a
process, so that a failing model sees at most ``1 + ratio`` times the offered load, and a breaker
that turns a model that keeps failing into an immediate, typed error with a retry-after.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class RetryBudget:
    """A token bucket: each call deposits ``ratio`` tokens, each retry spends one.

    A floor of ``min_per_s`` retries per second keeps a quiet process able to retry at all.
    """

    ratio: float = 0.5
    min_per_s: float = 10.0
    cap: float = 100.0
    clock: Callable[[], float] = time.monotonic
    _balance: float = field(default=0.0, init=False)
    _stamp: float = field(default=-1.0, init=False)

    def _refill(self) -> None:
        now = self.clock()
        if self._stamp >= 0:
            self._balance = min(self.cap, self._balance + (now - self._stamp) * self.min_per_s)
        else:
            self._balance = min(self.cap, self.min_per_s)
        self._stamp = now

    def deposit(self) -> None:
        """Called once per call (not per attempt)."""
        self._refill()
        self._balance = min(self.cap, self._balance + self.ratio)

    def try_spend(self) -> bool:
        """True when a retry is allowed now (and takes its token)."""
        self._refill()
        if self._balance >= 1.0:
            self._balance -= 1.0
            return True
        return False


@dataclass
class CircuitBreaker:
    """Opens when the failure ratio over a rolling window is too high; probes after a pause.

    The window holds call outcomes (a call fails when its retries could not get an answer) from
    the last ``window_s`` seconds; it opens once it has at least ``min_calls`` outcomes and
    ``failure_ratio`` of them failed. Counting calls rather than attempts keeps transient errors
    that retries absorb from opening it. After ``open_s`` one probe call is let through
    (half-open): success closes the breaker, failure opens it again.
    """

    window_s: float = 10.0
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _outcomes: deque[tuple[float, bool]] = field(default_factory=deque, init=False)
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)
    _probe_started: float = field(default=0.0, init=False)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at >= self.open_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_after(self) -> float:
        """Seconds until the next probe is allowed (0 when closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.open_s - (self.clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether an attempt may go to the model now; half-open lets one probe through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        now = self.clock()
        stale_probe = self._probing and now - self._probe_started > self.open_s
        if state is BreakerState.HALF_OPEN and (not self._probing or stale_probe):
            self._probing, self._probe_started = True, now
            return True
        return False

    def record(self, success: bool) -> None:
        now = self.clock()
        if self._opened_at is not None:
            if not self._probing:
                return  # an attempt that started before the breaker opened
            self._probing = False
            if success:
                self._opened_at = None
                self._outcomes.clear()
                self._failures = 0
            else:
                self._opened_at = now
            return
        self._outcomes.append((now, success))
        self._failures += not success
        while self._outcomes and now - self._outcomes[0][0] > self.window_s:
            _, ok = self._outcomes.popleft()
            self._failures -= not ok
        total = len(self._outcomes)
        if total >= self.min_calls and self._failures / total >= self.failure_ratio:
            self._opened_at = now

"""Retry with a budget, a circuit breaker per model, and the one loop that uses them.

Backoff delays come from ``google.api_core.retry.exponential_sleep_generator`` (exponential with
full jitter). What api_core does not offer is added here: a retry budget shared by all calls of a
process, so that a failing model sees at most ``1 + ratio`` times the offered load, a breaker
that turns a model that keeps failing into an immediate, typed error with a retry-after, and a
fallback along a chain of models. `Resilience.call` is the only retry loop of the Vertex AI
client: unary calls and stream openings both go through it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from google.api_core.retry import exponential_sleep_generator

from shared import errors, telemetry
from shared.llm.transport import error_kind, translate_error
from shared.llm.types import CallStats
from shared.settings import Settings

T = TypeVar("T")
# One attempt against one model: (model, seconds left before the deadline) → its outcome.
Attempt = Callable[[str, float], Awaitable[T]]


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
    ``failure_ratio`` of them failed, or after ``consecutive_failures`` failed calls in a row
    whatever the window holds (a model that is down opens its breaker within a few calls even at
    low traffic, where the window would never fill). Counting calls rather than attempts keeps
    transient errors that retries absorb from opening it. After ``open_s`` one probe call is let
    through (half-open): success closes the breaker, failure opens it again.
    """

    window_s: float = 10.0
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_s: float = 5.0
    consecutive_failures: int = 5
    clock: Callable[[], float] = time.monotonic
    _outcomes: deque[tuple[float, bool]] = field(default_factory=deque, init=False)
    _failures: int = field(default=0, init=False)
    _streak: int = field(default=0, init=False)  # failed calls in a row
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

    def allow_any(self) -> bool:
        """Whether a call could go through now (closed, or due for a probe); takes no probe."""
        return self.state is not BreakerState.OPEN

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
                self._failures = self._streak = 0
            else:
                self._opened_at = now
            return
        self._outcomes.append((now, success))
        self._failures += not success
        self._streak = 0 if success else self._streak + 1
        if self._streak >= self.consecutive_failures:
            self._opened_at = now
            return
        while self._outcomes and now - self._outcomes[0][0] > self.window_s:
            _, ok = self._outcomes.popleft()
            self._failures -= not ok
        total = len(self._outcomes)
        if total >= self.min_calls and self._failures / total >= self.failure_ratio:
            self._opened_at = now


class Resilience:
    """Breakers per model and the retry budget of one process, and the loop that honours them."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock  # breakers and the retry budget read it (deadlines are real time)
        self.retry_budget = RetryBudget(
            ratio=settings.retry_budget_ratio,
            min_per_s=settings.retry_budget_min_per_s,
            clock=clock,
        )
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, model: str) -> CircuitBreaker:
        """The breaker of ``model``, created closed on first use."""
        breaker = self.breakers.get(model)
        if breaker is None:
            s = self.settings
            breaker = CircuitBreaker(
                window_s=s.breaker_window_s,
                min_calls=s.breaker_min_calls,
                failure_ratio=s.breaker_failure_ratio,
                open_s=s.breaker_open_s,
                consecutive_failures=s.breaker_consecutive_failures,
                clock=self.clock,
            )
            self.breakers[model] = breaker
        return breaker

    async def call(
        self, chain: list[str], stats: CallStats, attempt: Attempt[T]
    ) -> tuple[T, str, int]:
        """The one retry and fallback loop, for unary calls and for opening streams alike.

        Each model of ``chain`` whose breaker lets calls through gets up to ``retry_max_attempts``
        attempts, spaced by exponential backoff with full jitter, while the overall deadline and
        the process's retry budget allow; a request the model rejects (``fatal``) is raised at
        once, a missing model passes to the next one. ``attempt(model, remaining_s)`` makes one
        attempt. A stream's attempt ends at its first chunk, so a stream is retried only before
        its first delta: once text has reached the caller, a failure is final (`_stream`).
        Returns what the attempt returned, the model that served and its index in ``chain``.
        """
        s = self.settings
        deadline = time.monotonic() + s.vertex_deadline_s
        self.retry_budget.deposit()
        last: BaseException | None = None
        wait: float | None = None
        for index, model in enumerate(chain):
            breaker = self.breaker(model)
            if not breaker.allow():
                wait = min(wait or breaker.open_s, breaker.retry_after())
                continue
            stats.models_tried.append(model)
            delays = exponential_sleep_generator(
                s.retry_initial_s, s.retry_max_delay_s, s.retry_multiplier
            )
            for number in range(s.retry_max_attempts):
                if number:  # a retry: backoff, budget and breaker permitting
                    delay = next(delays)
                    if time.monotonic() + delay >= deadline or not self.retry_budget.try_spend():
                        break
                    await asyncio.sleep(delay)
                    if breaker.state is BreakerState.OPEN:  # other calls found the model down
                        break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                stats.attempts += 1
                try:
                    with telemetry.span("llm.attempt", model=model, attempt=number + 1):
                        value = await attempt(model, remaining)
                except Exception as exc:
                    kind = error_kind(exc)
                    if kind == "fatal":  # the model answered; the request was at fault
                        breaker.record(True)
                        raise translate_error(exc, model) from exc
                    last = exc
                    if kind == "model_missing":
                        break
                    continue
                breaker.record(True)
                return value, model, index
            breaker.record(False)
        if last is None:
            raise errors.CircuitOpen(
                f"models {', '.join(chain)} are failing; not calling them for now",
                retry_after=max(1, round(wait or 1)),
            )
        raise translate_error(last, chain[-1])

"""Retry budget and circuit breaker, driven by a fake clock."""

from __future__ import annotations

from shared.llm.resilience import BreakerState, CircuitBreaker, RetryBudget
from tests.clocks import ManualClock


def test_retry_budget_allows_ratio_of_calls_plus_floor() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.5, min_per_s=0.0, clock=clock)
    for _ in range(10):
        budget.deposit()
    allowed = sum(budget.try_spend() for _ in range(20))
    assert allowed == 5


def test_retry_budget_floor_refills_with_time() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.0, min_per_s=2.0, clock=clock)
    budget.deposit()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]


def test_breaker_opens_on_failure_ratio_and_probes_after_pause() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(window_s=10, min_calls=10, failure_ratio=0.7, open_s=5, clock=clock)
    for i in range(10):
        breaker.record(success=i < 2)  # 8 of 10 failed
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_after() == 5
    clock.now += 5
    assert breaker.state is BreakerState.HALF_OPEN  # type: ignore[comparison-overlap]
    assert breaker.allow() and not breaker.allow()  # exactly one probe
    breaker.record(success=False)
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    assert breaker.allow()
    breaker.record(success=True)
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_breaker_ignores_a_minority_of_failures_and_old_outcomes() -> None:
    clock = ManualClock()
    # The window alone (the failures-in-a-row rule has its own test).
    breaker = CircuitBreaker(
        window_s=10,
        min_calls=10,
        failure_ratio=0.7,
        open_s=5,
        consecutive_failures=1000,
        clock=clock,
    )
    for i in range(100):
        breaker.record(success=i % 3 != 0)  # a third fail
    assert breaker.state is BreakerState.CLOSED
    for _ in range(6):
        breaker.record(success=False)
    clock.now += 11  # those failures leave the window
    for _ in range(4):
        breaker.record(success=False)
    assert breaker.state is BreakerState.CLOSED  # 4 outcomes in the window: too few to judge


def test_a_probe_that_never_reports_does_not_wedge_the_breaker() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(window_s=10, min_calls=1, failure_ratio=0.5, open_s=5, clock=clock)
    breaker.record(success=False)
    clock.now += 5
    assert breaker.allow()  # probe taken, never recorded (cancelled)
    clock.now += 6
    assert breaker.allow()


def test_failed_calls_in_a_row_open_the_breaker_even_when_the_window_is_thin() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(min_calls=10, consecutive_failures=5, clock=clock)
    for _ in range(4):
        breaker.record(success=False)
        clock.now += 3  # slow calls: the 10 s window never holds 10 outcomes
    assert breaker.state is BreakerState.CLOSED
    breaker.record(success=True)  # a success breaks the streak
    for _ in range(4):
        breaker.record(success=False)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(success=False)  # the fifth in a row
    assert breaker.state is BreakerState.OPEN and not breaker.allow()  # type: ignore[comparison-overlap]

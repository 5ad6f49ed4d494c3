"""The per-instance rate limiter used while Memorystore is down: the same GCRA as the script."""

from __future__ import annotations

from shared.ratelimit import Limit, LocalLimiter
from tests.clocks import ManualClock


def test_a_burst_of_the_limit_then_one_request_per_period() -> None:
    clock = ManualClock(1_000.0)
    limiter = LocalLimiter(clock=clock)
    admitted = [limiter.check([Limit("user:a", 20)])[0] for _ in range(25)]
    assert admitted == [1] * 20 + [0] * 5
    allowed, wait_ms, _, _ = limiter.check([Limit("user:a", 20)])
    assert allowed == 0 and 0 < wait_ms <= 3000  # one request every 3 s
    clock.now += 3
    assert limiter.check([Limit("user:a", 20)])[0] == 1


def test_a_request_refused_by_one_limit_consumes_none_of_them() -> None:
    limiter = LocalLimiter(clock=ManualClock(1_000.0))
    for _ in range(2):
        assert limiter.check([Limit("ip:1", 2)])[0] == 1
    assert limiter.check([Limit("user:b", 10), Limit("ip:1", 2)])[0] == 0
    remaining = limiter.check([Limit("user:b", 10)])[2]
    assert remaining == 9  # this one request taken, none by the refused one


def test_the_memory_it_keeps_is_bounded() -> None:
    limiter = LocalLimiter(max_keys=100, clock=ManualClock(1_000.0))
    for i in range(1_000):
        limiter.check([Limit(f"ip:{i}", 5)])
    assert len(limiter._tats) == 100

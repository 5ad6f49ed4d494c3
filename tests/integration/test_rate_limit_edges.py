"""Rate limits at the edges: very high limits and one-a-minute limits behave."""

from __future__ import annotations

import pytest

from shared.memorystore import Memorystore
from shared.ratelimit import Limit, RateLimiter
from tests.conftest import LocalStack


@pytest.mark.parametrize("per_minute", [1, 7, 10**9])
async def test_limits_admit_exactly_their_burst(stack: LocalStack, per_minute: int) -> None:
    store = Memorystore(stack.client_settings())
    limiter = RateLimiter(store)
    tries = min(per_minute + 3, 50)
    decisions = [await limiter.check([Limit("k", per_minute)]) for _ in range(tries)]
    assert all(d is not None for d in decisions)
    admitted = sum(d.allowed for d in decisions if d is not None)
    assert admitted == min(per_minute, tries)
    assert store.available  # no error reply, nothing degraded
    await store.close()

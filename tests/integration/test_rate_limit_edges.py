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


async def test_concurrent_checks_share_a_round_trip_and_are_decided_one_by_one(
    stack: LocalStack,
) -> None:
    """Checks made together go in one script call; each request is still decided on its own
    (a refused one consumes none of its limits), exactly as separate calls would be."""
    import asyncio

    import redis.asyncio

    store = Memorystore(stack.client_settings())
    limiter = RateLimiter(store)
    probe = redis.asyncio.Redis.from_url(stack.redis_url)
    before = (await probe.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    decisions = await asyncio.gather(
        *(limiter.check([Limit("shared", 7), Limit(f"own-{n % 2}", 1000)]) for n in range(40))
    )
    after = (await probe.info("commandstats"))["cmdstat_evalsha"]["calls"]
    assert sum(d.allowed for d in decisions) == 7
    assert [d.allowed for d in decisions] == [True] * 7 + [False] * 33  # in the order asked
    assert after - before == 1
    # The refused 33 consumed nothing of their other limit: 1000 - 4 left on each "own" key.
    again = await limiter.check([Limit("own-0", 1000)])
    assert again.remaining == 1000 - 4 - 1
    await probe.aclose()
    await store.close()

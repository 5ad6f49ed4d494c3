"""While Memorystore is down, rate limits hold per instance, and /readyz says the function is
degraded rather than gone."""

from __future__ import annotations

import httpx

from emulator.settings import free_ports
from shared.memorystore import Memorystore
from shared.ratelimit import Limit, RateLimiter
from tests.conftest import LocalStack, RedisServer, start_function


async def test_limits_hold_per_instance_during_an_outage_and_return_to_redis(
    stack: LocalStack, private_redis: RedisServer
) -> None:
    store = Memorystore(stack.client_settings(redis_url=private_redis.url, redis_backoff_s=0))
    limiter = RateLimiter(store)
    assert (await limiter.check([Limit("user:eve", 5)])).allowed and not limiter.degraded
    private_redis.stop()
    decisions = [await limiter.check([Limit("user:eve", 5)]) for _ in range(7)]
    assert limiter.degraded
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2  # not unlimited
    assert decisions[-1].retry_after_s >= 1
    private_redis.start()
    assert (await limiter.check([Limit("user:eve", 5)])).allowed and not limiter.degraded
    await store.close()


def test_readiness_is_degraded_not_failed_without_redis(stack: LocalStack) -> None:
    closed_port = free_ports(1)[0]  # nothing listens there
    url, process = start_function(
        stack.settings, "chat", NGX_REDIS_URL=f"redis://127.0.0.1:{closed_port}/0"
    )
    try:
        ready = httpx.get(f"{url}/readyz", timeout=30)
        chat = httpx.post(
            f"{url}/v1/chat", json={"message": "no redis"}, headers=stack.auth(), timeout=60
        )
    finally:
        process.terminate()
        process.wait(10)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded" and body["checks"]["redis"].startswith("degraded (")
    assert body["checks"]["firestore"] == body["checks"]["vertex"] == "ok"
    assert chat.status_code == 200  # answered without the cache, limited per instance

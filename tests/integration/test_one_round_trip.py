"""A cache-hit chat checks its rate limits and reads its answer in one Redis round trip, with the
limits' semantics unchanged: a refused request does no work and gets the same 429."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import redis.asyncio

from shared.auth.apikeys import ApiKeyStore
from shared.llm.cache import stats_key
from shared.memorystore import Memorystore
from tests.conftest import LocalStack


async def client_commands(url: str, during: Any) -> list[str]:
    """The commands clients sent Redis while ``during`` ran (a script's own calls excluded)."""
    monitor_client = redis.asyncio.Redis.from_url(url)
    seen: list[str] = []
    async with monitor_client.monitor() as monitor:

        async def record() -> None:
            async for command in monitor.listen():
                if command["client_type"] != "lua":
                    seen.append(command["command"].split(" ")[0].upper())

        task = asyncio.create_task(record())
        await asyncio.sleep(0.2)  # the monitor is attached
        seen.clear()
        await during()
        await asyncio.sleep(0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await monitor_client.aclose()
    return seen


async def test_a_cache_hit_chat_takes_one_redis_round_trip(stack: LocalStack) -> None:
    url, body = f"{stack.url('chat')}/v1/chat", {"message": "what is one round trip?"}
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(url, json=body, headers=stack.auth())
        assert first.json()["usage"]["cached"] is False
        replies = []

        async def cache_hit() -> None:
            replies.append(await client.post(url, json=body, headers=stack.auth()))

        commands = await client_commands(stack.redis_url, cache_hit)
    assert replies[0].status_code == 200 and replies[0].json()["usage"]["cached"] is True
    assert replies[0].headers["RateLimit-Limit"]  # the limits were applied, and said so
    assert commands == ["EVALSHA"], commands


async def test_refused_cache_hits_do_no_work_and_get_the_same_429(
    stack: LocalStack, firestore_db: Any
) -> None:
    settings = stack.client_settings()
    store = Memorystore(settings)
    plaintext, _ = await ApiKeyStore(firestore_db, store).create("free-app", tier="free")
    limit = settings.rate_limit_tiers["free"]
    headers = {"X-API-Key": plaintext}
    url, body = f"{stack.url('chat')}/v1/chat", {"message": "a popular question"}
    async with httpx.AsyncClient(timeout=30) as client:
        replies = [await client.post(url, json=body, headers=headers) for _ in range(limit + 5)]
        follow_up = {"message": "more", "conversation_id": replies[0].json()["conversation_id"]}
        refused_with_history = await client.post(url, json=follow_up, headers=headers)
        bad_and_refused = await client.post(url, json={"message": ""}, headers=headers)
    statuses = [r.status_code for r in replies]
    assert statuses == [200] * limit + [429] * 5
    refused = replies[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused_with_history.status_code == 429 and bad_and_refused.status_code == 429
    # Refused requests were not counted as cache hits, and stored nothing.
    stats = await store.run(lambda r: r.hgetall(stats_key("chat")))
    assert (int(stats[b"misses"]), int(stats[b"hits"])) == (1, limit - 1)
    conversations = [c async for c in firestore_db.collection("conversations").stream()]
    assert len(conversations) == limit
    await store.close()

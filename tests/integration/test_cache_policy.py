"""The live cache policy, selective invalidation and the KPI log line, against real services."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import redis.asyncio

from shared import errors
from shared.llm.cache import request_key
from shared.llm.client import LlmClient
from shared.llm.types import LlmRequest, Turn
from shared.memorystore import Memorystore
from tests.conftest import LocalStack


def ask(text: str, **fields: Any) -> LlmRequest:
    return LlmRequest(turns=(Turn(role="user", text=text),), **fields)


async def test_ttl_per_class_comes_from_the_live_policy(
    stack: LocalStack, firestore_db: Any
) -> None:
    settings = stack.client_settings(cache_policy_reload_s=30)
    store = Memorystore(settings)
    now = [0.0]
    client = LlmClient(settings, store=store, db=firestore_db, clock=lambda: now[0])
    policy = firestore_db.collection("config").document("cache")
    await policy.set({"policy": {"version": 1, "default_ttl_s": 600, "class_ttl_s": {"faq": 120}}})
    r = redis.asyncio.Redis.from_url(stack.redis_url)
    first = ask("ttl one", query_class="faq")
    await client.generate(first)
    assert 110 < await r.ttl(request_key(first, "gemini-2.5-flash")) <= 120
    await policy.set({"policy": {"version": 2, "default_ttl_s": 600, "class_ttl_s": {"faq": 900}}})
    now[0] += 30  # the reload interval has passed
    await client.generate(ask("warm the reload", query_class="other"))  # starts the refresh
    await client.policy.settled()
    second = ask("ttl two", query_class="faq")
    await client.generate(second)
    assert 890 < await r.ttl(request_key(second, "gemini-2.5-flash")) <= 900
    await r.aclose()
    await client.close()
    await store.close()


async def test_invalidate_by_tag_is_selective(stack: LocalStack) -> None:
    settings = stack.client_settings()
    store = Memorystore(settings)
    client = LlmClient(settings, store=store)
    await client.generate(ask("v1 answer", template_version="v1"))
    await client.generate(ask("v2 answer", template_version="v2"))
    assert client.cache is not None
    assert await client.cache.invalidate_tag("template", "v1") == 1
    assert not (await client.generate(ask("v1 answer", template_version="v1"))).cached
    assert (await client.generate(ask("v2 answer", template_version="v2"))).cached
    await client.close()
    await store.close()


async def test_non_retryable_errors_are_not_retried(stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", error_rate=1.0, status="INVALID_ARGUMENT")
    settings = stack.client_settings()
    client = LlmClient(settings)
    with pytest.raises(errors.BadRequest):
        await client.generate(ask("bad", temperature=1.0))
    assert stack.model_calls()["total"] == 1
    await client.close()


async def test_overall_deadline_bounds_retries(stack: LocalStack) -> None:
    stack.fault("*", latency_ms=150, error_rate=1.0, status="UNAVAILABLE")
    settings = stack.client_settings(vertex_deadline_s=0.5, retry_initial_s=0.01)
    client = LlmClient(settings)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises((errors.ModelUnavailable, errors.UpstreamTimeout)):
        await client.generate(ask("deadline", temperature=1.0, model="gemini-2.5-flash"))
    assert loop.time() - started < 0.9
    assert 2 <= stack.model_calls()["total"] <= 4  # retried, but only within the deadline
    await client.close()


async def test_one_kpi_log_line_per_call(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    settings = stack.client_settings()
    store = Memorystore(settings)
    client = LlmClient(settings, store=store)
    with caplog.at_level(logging.INFO, logger="vertex_ai.client"):
        await client.generate(ask("log me"))
        await client.generate(ask("log me"))
    lines = [r for r in caplog.records if r.name == "vertex_ai.client"]
    assert len(lines) == 2
    miss, hit = (r.__dict__ for r in lines)
    assert (miss["cache"], miss["cache_hit"], miss["tokens_out"]) == ("miss", False, 48)
    assert miss["tokens"] == miss["tokens_in"] + 48 and hit["tokens"] == 0
    assert (hit["cache"], hit["cache_hit"], hit["tokens_out"], hit["cost_usd"]) == (
        "hit",
        True,
        0,
        0,
    )
    for field in ("latency_ms", "model", "tokens_in", "attempts", "error_type", "query_class"):
        assert field in miss
    assert "log me" not in json.dumps(miss, default=str)  # no prompt text in logs
    await client.close()
    await store.close()

"""Cache maintenance against real Redis and Firestore: recommendations from a recorded trace,
versioned apply reaching a running chat function, Memorystore's eviction policy, invalidation."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio

from emulator import devtokens
from emulator.grpc_server import serve
from emulator.memorystore import MemorystoreFake
from emulator.settings import free_ports
from ops.cache import trace
from shared.cache_maintenance.jobs import CacheMaintenance
from shared.llm.cache import ResponseCache, request_key
from shared.llm.policy import CachePolicy
from shared.llm.types import LlmRequest, LlmResult, Turn
from shared.memorystore import Memorystore
from tests.conftest import LocalStack

INSTANCE = "projects/ngx-local/locations/us-central1/instances/cache"


@pytest.fixture
async def store(stack: LocalStack) -> AsyncIterator[Memorystore]:
    memorystore = Memorystore(stack.client_settings())
    yield memorystore
    await memorystore.close()


def synthetic_trace(seed: int = 4) -> list[trace.Lookup]:
    """Twelve seconds, time-compressed: FAQ answers come back every 3–6 s (beyond a 2 s TTL);
    small talk is mostly new, with a few quick repeats."""
    rng = random.Random(seed)
    lookups = []
    for key in range(12):
        t = rng.uniform(0, 1.5)
        while t < 12:
            lookups.append(trace.Lookup(t, "faq", f"faq-{key}", 900))
            t += rng.uniform(3, 6)
    for key in range(40):
        t = rng.uniform(0, 11)
        lookups.append(trace.Lookup(t, "smalltalk", f"talk-{key}", 400))
        if key % 8 == 0:
            lookups.append(trace.Lookup(t + 0.4, "smalltalk", f"talk-{key}", 400))
    return sorted(lookups, key=lambda item: item.t)


async def record(lookups: list[trace.Lookup], store: Memorystore, policy: CachePolicy) -> None:
    """Play a trace in real time through the production cache path (lookup, then store on miss)."""
    cache = ResponseCache(store)
    started = time.monotonic()
    for item in lookups:
        await asyncio.sleep(max(0.0, started + item.t - time.monotonic()))
        request = LlmRequest(
            turns=(Turn(role="user", text=item.key),), query_class=item.query_class
        )
        key = request_key(request, "gemini-2.5-flash")
        if await cache.lookup(key, item.query_class) is None:
            answer = LlmResult(
                text="x" * item.size,
                model="gemini-2.5-flash",
                finish_reason="STOP",
                input_tokens=3,
                output_tokens=item.size // 4,
            )
            await cache.store_answer(key, request, answer, policy)


async def test_analysis_of_a_recorded_trace_raises_the_replayed_hit_rate(
    stack: LocalStack, store: Memorystore, firestore_db: Any
) -> None:
    settings = stack.client_settings(cache_min_ttl_s=1, cache_min_reuses=5)
    old = CachePolicy(default_ttl_s=2)
    await firestore_db.collection("config").document("cache").set({"policy": old.model_dump()})
    lookups = synthetic_trace()
    await record(lookups, store, old)

    jobs = CacheMaintenance(settings, store, firestore_db)
    report, recommended = await jobs.analyze(window_hours=1)
    faq = next(c for c in report["classes"] if c["query_class"] == "faq")
    live = faq["hits"] / (faq["hits"] + faq["misses"])
    simulated = trace.replay(lookups, old)
    assert (
        abs(live - simulated["faq"].hits / (simulated["faq"].hits + simulated["faq"].misses)) < 0.1
    )
    assert faq["repeats_observed"] >= 20
    assert recommended.ttl_for("faq") >= 8 > old.ttl_for("faq")
    assert faq["predicted_hit_rate"] > 3 * faq["predicted_hit_rate_now"]
    before, after = trace.hit_rate(simulated), trace.hit_rate(trace.replay(lookups, recommended))
    ideal = trace.hit_rate(trace.replay(lookups, CachePolicy(default_ttl_s=10**6)))
    assert after > 3 * before and after >= 0.85 * ideal, (before, after, ideal)


async def test_apply_writes_a_new_version_once_with_who_when_why(
    stack: LocalStack, store: Memorystore, firestore_db: Any
) -> None:
    settings = stack.client_settings(cache_min_ttl_s=1, cache_min_reuses=5)
    await record(synthetic_trace(), store, CachePolicy(default_ttl_s=2))
    await (
        firestore_db.collection("config")
        .document("cache")
        .set({"policy": CachePolicy(default_ttl_s=2).model_dump()})
    )
    jobs = CacheMaintenance(settings, store, firestore_db)

    dry = await jobs.apply("ops@example.com", dry_run=True, window_hours=1)
    assert dry["policy_changed"] is True and dry["policy_version"] == 0
    first = await jobs.apply("ops@example.com", window_hours=1)
    second = await jobs.apply("ops@example.com", window_hours=1)
    assert (first["policy_changed"], first["policy_version"]) == (True, 1)
    assert (second["policy_changed"], second["policy_version"]) == (False, 1)
    document = (await firestore_db.collection("config").document("cache").get()).to_dict()
    assert document["policy"]["version"] == 1 and document["updated_by"] == "ops@example.com"
    assert "faq: 2 s →" in document["reason"]
    history = [
        d.to_dict()
        async for d in firestore_db.collection("config")
        .document("cache")
        .collection("history")
        .stream()
    ]
    assert [h["policy"]["version"] for h in history] == [1]
    assert history[0]["previous_version"] == 0 and history[0]["updated_at"]


@pytest.fixture
def memorystore_api() -> Iterator[tuple[str, MemorystoreFake]]:
    fake = MemorystoreFake([INSTANCE], operation_s=0.3)
    port = free_ports(1)[0]
    server = serve(fake, "127.0.0.1", port)
    yield f"127.0.0.1:{port}", fake
    server.stop(0.5)


async def test_apply_changes_the_eviction_policy_through_the_memorystore_api(
    stack: LocalStack,
    store: Memorystore,
    firestore_db: Any,
    memorystore_api: tuple[str, MemorystoreFake],
) -> None:
    endpoint, fake = memorystore_api
    settings = stack.client_settings(memorystore_instance=INSTANCE, memorystore_endpoint=endpoint)
    jobs = CacheMaintenance(settings, store, firestore_db)
    dry = await jobs.apply("ops", dry_run=True)
    assert dry["eviction"]["would_change"] is True and fake.updates == []
    applied = await jobs.apply("ops")
    assert applied["eviction"]["before"] == "volatile-lru"
    assert applied["eviction"]["after"] == "volatile-lfu" and applied["eviction"]["changed"]
    assert fake.updates == [
        {"name": INSTANCE, "engine_configs": {"maxmemory-policy": "volatile-lfu"}}
    ]
    again = await jobs.apply("ops")
    assert again["eviction"]["changed"] is False and len(fake.updates) == 1


async def test_invalidate_by_class_and_by_tag_touches_nothing_else(
    stack: LocalStack, store: Memorystore, firestore_db: Any
) -> None:
    cache = ResponseCache(store)
    policy = CachePolicy()
    keys: dict[str, list[str]] = {}
    for query_class, model in (
        ("faq", "gemini-2.5-flash"),
        ("news", "gemini-2.5-flash"),
        ("news", "gemini-2.5-pro"),
    ):
        for i in range(30):
            request = LlmRequest(
                turns=(Turn(role="user", text=f"{query_class}{model}{i}"),), query_class=query_class
            )
            key = request_key(request, model)
            answer = LlmResult(
                text="a", model=model, finish_reason="STOP", input_tokens=1, output_tokens=1
            )
            await cache.store_answer(key, request, answer, policy)
            keys.setdefault(f"{query_class}/{model}", []).append(key)
    r = redis.asyncio.Redis.from_url(stack.redis_url)

    async def alive(group: str) -> int:
        return int(await r.exists(*keys[group]))

    jobs = CacheMaintenance(stack.client_settings(), store, firestore_db)
    counted = await jobs.invalidate(query_class="faq", dry_run=True)
    assert counted["entries"] == 30 and await alive("faq/gemini-2.5-flash") == 30
    assert (await jobs.invalidate(query_class="faq"))["deleted"] == 30
    assert await alive("faq/gemini-2.5-flash") == 0
    assert (await jobs.invalidate(tag="model:gemini-2.5-pro"))["deleted"] == 30
    assert await alive("news/gemini-2.5-pro") == 0
    assert await alive("news/gemini-2.5-flash") == 30
    await r.aclose()


def maintenance(stack: LocalStack, body: Any, email: str | None = "scheduler") -> httpx.Response:
    url = stack.url("cache-maintenance")
    headers = {}
    if email is not None:
        account = devtokens.scheduler_account(stack.settings) if email == "scheduler" else email
        token = devtokens.invoker_token(stack.settings, account, url)
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url + "/", json=body, headers=headers, timeout=60)


def test_apply_reaches_a_running_chat_function_within_its_reload_interval(
    stack: LocalStack,
) -> None:
    r = redis_client(stack)
    for _ in range(25):  # reuses seconds apart: the analysis asks for the minimum TTL
        httpx.post(
            f"{stack.url('chat')}/v1/chat",
            json={"message": "what is new?"},
            headers=stack.auth(),
            timeout=30,
        ).raise_for_status()
    assert max_ttl(r) > 3000  # stored under the default hour
    applied = maintenance(stack, {"action": "apply", "window_hours": 1})
    assert applied.status_code == 200, applied.text
    report = applied.json()
    chat = next(c for c in report["classes"] if c["query_class"] == "chat")
    assert chat["recommended_ttl_s"] == 60 and report["policy_changed"] is True
    applied_at = time.monotonic()
    seen_at = None
    for i in range(40):
        httpx.post(
            f"{stack.url('chat')}/v1/chat",
            json={"message": f"fresh question {i}"},
            headers=stack.auth(),
            timeout=30,
        ).raise_for_status()
        if min_ttl(r) <= 60:
            seen_at = time.monotonic()
            break
        time.sleep(0.1)
    assert seen_at is not None, "the chat function never stored under the applied policy"
    reload_s = stack.settings.cache_policy_reload_s
    assert seen_at - applied_at <= reload_s + 1.5


def redis_client(stack: LocalStack) -> Any:
    import redis as sync_redis

    return sync_redis.Redis.from_url(stack.redis_url)


def ttls(r: Any) -> list[int]:
    return [r.ttl(k) for k in r.scan_iter(match="ngx:c:chat:*", count=500)]


def max_ttl(r: Any) -> int:
    return max(ttls(r), default=-1)


def min_ttl(r: Any) -> int:
    return min(ttls(r), default=10**9)


@pytest.mark.parametrize(
    ("body", "email", "status", "field"),
    [
        ({"action": "analyze"}, None, 401, None),
        ({"action": "analyze"}, "intruder@example.iam.gserviceaccount.com", 403, None),
        ({"action": "compact"}, "scheduler", 422, "action"),
        ({"action": "invalidate"}, "scheduler", 422, "tag"),
        ({"action": "invalidate", "tag": "model:x", "query_class": "faq"}, "scheduler", 422, "tag"),
        ({"action": "invalidate", "tag": "colour:red"}, "scheduler", 422, "tag"),
        ({"action": "apply", "window_hours": 0}, "scheduler", 422, "apply.window_hours"),
        ({"action": "apply", "yes": True}, "scheduler", 422, "apply.yes"),
    ],
)
def test_bad_maintenance_requests_get_a_clear_error_and_nothing_is_written(
    stack: LocalStack, body: dict[str, Any], email: str | None, status: int, field: str | None
) -> None:
    r = redis_client(stack)
    keys_before = sorted(r.scan_iter(count=500))
    response = maintenance(stack, body, email)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["request_id"] and error["message"]
    if field is not None:
        assert field in [d.get("field") for d in error["details"]], error
    assert sorted(r.scan_iter(count=500)) == keys_before
    project = stack.settings.project_id
    config = httpx.get(
        f"http://{stack.firestore_host}/v1/projects/{project}/databases/(default)/documents/config",
        headers={"Authorization": "Bearer owner"},
        timeout=10,
    ).json()
    assert config.get("documents", []) == []


def agentctl(stack: LocalStack, *args: str) -> Any:
    import os
    import subprocess
    import sys

    from emulator.stack import ROOT, function_env

    env = {**os.environ, **function_env(stack.settings)}
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "cache", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_agentctl_cache_apply_is_a_dry_run_and_a_trace_can_be_judged(
    stack: LocalStack, tmp_path: Path
) -> None:
    dry = agentctl(stack, "apply")
    assert dry.returncode == 0, dry.stderr
    assert "policy version 0: unchanged" in dry.stdout  # no traffic yet: nothing to change
    assert (
        httpx.get(
            f"http://{stack.firestore_host}/v1/projects/{stack.settings.project_id}"
            "/databases/(default)/documents/config/cache",
            headers={"Authorization": "Bearer owner"},
            timeout=10,
        ).status_code
        == 404
    )
    path = tmp_path / "trace.ndjson"
    path.write_text(
        "\n".join(
            json.dumps({"t": i.t * 600, "class": i.query_class, "key": i.key, "bytes": i.size})
            for i in synthetic_trace()
        )
    )
    judged = agentctl(stack, "analyze", "--trace", str(path))
    assert judged.returncode == 0, judged.stderr
    assert "replayed hit rate" in judged.stdout
    broken = tmp_path / "broken.ndjson"
    broken.write_text('{"t": 1, "class": "faq", "key": "a"}\n{"t": "soon"}\n')
    refused = agentctl(stack, "analyze", "--trace", str(broken))
    assert refused.returncode == 1 and "broken.ndjson:2" in refused.stderr

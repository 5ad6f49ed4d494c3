"""The Vertex AI client against a real redis-server and the Vertex emulator: cache, single-flight,
resilience, fallback and budgets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, cast

import pytest
import redis.asyncio

from shared import errors
from shared.llm.client import LlmClient
from shared.llm.types import LlmChunk, LlmRequest, LlmResult, Turn
from shared.memorystore import Memorystore
from tests.conftest import LocalStack, RedisServer

FLASH, FALLBACK = "gemini-2.5-flash", "gemini-2.0-flash-001"

ClientFactory = Callable[..., LlmClient]


def ask(text: str, **fields: Any) -> LlmRequest:
    return LlmRequest(turns=(Turn(role="user", text=text),), **fields)


@pytest.fixture
async def make_client(stack: LocalStack) -> AsyncIterator[ClientFactory]:
    made: list[LlmClient] = []

    def factory(clock: Callable[[], float] = time.monotonic, **overrides: Any) -> LlmClient:
        settings = stack.client_settings(**overrides)
        store = Memorystore(settings, clock=clock)
        client = LlmClient(settings, store=store, clock=clock)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()
        if client.cache is not None:
            await client.cache.store.close()


async def test_concurrent_identical_misses_make_one_model_call(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client()
    results = await asyncio.gather(*(client.generate(ask("same question")) for _ in range(100)))
    assert stack.model_calls()["calls"] == {FLASH: {"GenerateContent": 1}}
    assert len({r.text for r in results}) == 1
    assert [r.cached for r in results].count(False) == 1
    assert all(r.input_tokens == 0 and r.cost_usd == 0 for r in results if r.cached)


async def test_a_filled_entry_leaves_no_fill_lock(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    """The lock is released in the round trip that stores the answer, not left to expire."""
    import redis

    await make_client().generate(ask("lock me once"))
    found: list[Any] = redis.Redis.from_url(stack.redis_url).keys("ngx:*")
    keys = [k.decode() for k in found]
    assert any(k.startswith("ngx:c:") for k in keys)
    assert not [k for k in keys if k.startswith("ngx:lock:")]


async def test_two_instances_sharing_redis_make_one_model_call(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    first, second = make_client(), make_client()
    calls = [c.generate(ask("shared across instances")) for c in (first, second) for _ in range(50)]
    results = await asyncio.gather(*calls)
    assert stack.model_calls()["calls"] == {FLASH: {"GenerateContent": 1}}
    assert len({r.text for r in results}) == 1


async def test_uncacheable_requests_are_not_cached(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client()
    for request in (ask("hot", temperature=1.0), ask("tools", side_effect_tools=True)):
        await client.generate(request)
        second = await client.generate(request)
        assert second.cached is False
    assert stack.model_calls()["total"] == 4


async def test_a_hit_is_counted_per_class_in_redis(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client()
    await client.generate(ask("count me", query_class="faq"))
    hit = await client.generate(ask("count me", query_class="faq"))
    assert hit.cached
    r = redis.asyncio.Redis.from_url(stack.redis_url)
    keys = [k async for k in r.scan_iter("ngx:stats:faq:*")]
    raw: dict[Any, Any] = await r.hgetall(keys[0])
    stats = {k.decode(): int(v) for k, v in raw.items()}
    await r.aclose()
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["stores"] == 1
    assert stats["reuse_le_0"] == 1  # reused within a second


async def test_thirty_percent_unavailable_still_serves(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    stack.fault(FLASH, error_rate=0.3, status="UNAVAILABLE", seed=7)
    client = make_client(retry_initial_s=0.01, retry_max_delay_s=0.1)
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> bool:
        async with gate:
            try:
                await client.generate(ask(f"q{i}", temperature=1.0, max_output_tokens=4))
            except errors.AppError:
                return False
            return True

    outcomes = await asyncio.gather(*(one(i) for i in range(1000)))
    calls = stack.model_calls()["calls"]
    assert sum(outcomes) >= 995, f"{sum(outcomes)} of 1000 succeeded; {calls}"
    # Retries absorb the errors: the primary serves, the breaker stays closed, and only calls
    # whose every attempt failed (0.3^5 ≈ 0.24%) move on to the fallback model.
    assert calls.get(FALLBACK, {}).get("GenerateContent", 0) <= 20, calls
    assert client.resilience.breakers[FLASH].state.value == "closed"


async def test_breaker_fails_fast_then_recovers(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    now = [0.0]
    client = make_client(
        clock=lambda: now[0],
        breaker_min_calls=6,
        breaker_open_s=1.0,
        retry_max_attempts=2,
        retry_initial_s=0.01,
        retry_max_delay_s=0.02,
    )
    request = ask("down", model=FLASH, temperature=1.0)
    stack.fault(FLASH, error_rate=1.0, status="UNAVAILABLE")
    opened = False
    for _ in range(20):
        try:
            await client.generate(request)
        except errors.CircuitOpen:
            opened = True
            break
        except errors.ModelUnavailable:
            continue
    assert opened
    calls_when_open = stack.model_calls()["total"]
    for _ in range(10):
        with pytest.raises(errors.CircuitOpen) as failure:
            await client.generate(request)
        assert failure.value.retry_after is not None and failure.value.retry_after >= 1
    assert stack.model_calls()["total"] == calls_when_open  # fast failures never reach the model
    stack.clear_faults()
    now[0] += 1.0  # the breaker's pause is over: one probe goes through and closes it
    assert (await client.generate(request)).text
    assert (await client.generate(request)).text


async def test_fallback_model_serves_when_the_primary_is_down(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    stack.fault(FLASH, error_rate=1.0, status="UNAVAILABLE")
    client = make_client(retry_initial_s=0.01, retry_max_delay_s=0.02, retry_max_attempts=2)
    result = await client.generate(ask("who answers?"))
    assert result.model == FALLBACK and result.fallback is True
    calls = stack.model_calls()["calls"]
    assert calls[FLASH]["GenerateContent"] == 2 and calls[FALLBACK]["GenerateContent"] == 1
    again = await client.generate(ask("who answers?"))
    assert again.cached is False  # degraded answers are not cached


async def test_a_hanging_model_is_cut_by_the_attempt_timeout(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    stack.fault(FLASH, hang=True)
    client = make_client(vertex_attempt_timeout_s=0.2, retry_max_attempts=1)
    result = await client.generate(ask("hang?"))
    # Cut at 0.2 s: had the hang run into the 30 s deadline, no time would be left to fall back.
    assert result.model == FALLBACK


async def test_redis_outage_degrades_to_no_cache_and_recovers(
    stack: LocalStack, private_redis: RedisServer, make_client: ClientFactory
) -> None:
    now = [0.0]
    client = make_client(clock=lambda: now[0], redis_url=private_redis.url, redis_backoff_s=0.2)
    request = ask("survive redis")
    await client.generate(request)
    assert (await client.generate(request)).cached
    private_redis.stop()
    assert client.cache is not None
    for _ in range(5):
        result = await client.generate(request)
        assert result.text and not result.cached
        assert not client.cache.store.available  # skipped during the back-off, not waited on
    private_redis.start()  # empty again: the entry is gone
    now[0] += 0.25  # the back-off is over
    await client.generate(request)
    assert (await client.generate(request)).cached


async def test_slow_redis_degrades_to_no_cache(
    stack: LocalStack, private_redis: RedisServer, make_client: ClientFactory
) -> None:
    client = make_client(redis_url=private_redis.url, redis_timeout_s=0.1)
    blocker = redis.asyncio.Redis.from_url(private_redis.url)
    sleeping = asyncio.create_task(blocker.execute_command("DEBUG", "SLEEP", "1.5"))  # type: ignore[no-untyped-call]
    await asyncio.sleep(0.1)
    result = await client.generate(ask("slow redis"))
    assert result.text and not result.cached
    assert not sleeping.done()  # answered while Redis was still busy: its timeout cut the wait
    await sleeping
    await blocker.aclose()


async def test_stream_is_cached_when_complete_and_replayed(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client()
    first = [c async for c in client.stream(ask("stream and cache"))]
    second = [c async for c in client.stream(ask("stream and cache"))]
    text = "".join(c.text for c in first)
    assert "".join(c.text for c in second) == text
    assert first[-1].result is not None and first[-1].result.cached is False
    assert second[-1].result is not None and second[-1].result.cached is True
    assert len(second) > 2  # replayed in pieces, not as one blob
    assert stack.model_calls()["calls"] == {FLASH: {"StreamGenerateContent": 1}}
    assert (await client.generate(ask("stream and cache"))).text == text


async def test_closing_a_stream_early_cancels_the_model_call(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client()
    stream = cast(AsyncGenerator[LlmChunk], client.stream(ask("cancel me", temperature=1.0)))
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(50):
        if stack.model_calls()["cancelled"]:
            break
        await asyncio.sleep(0.02)
    assert stack.model_calls()["cancelled"] == {FLASH: {"StreamGenerateContent": 1}}


async def test_a_stream_breaking_midway_raises_a_typed_error(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    stack.fault(FLASH, fail_after_chunks=2, status="INTERNAL")
    client = make_client()
    received: list[str] = []
    with pytest.raises(errors.UpstreamError):
        async for chunk in client.stream(ask("break", temperature=1.0)):
            received.append(chunk.text)
    assert len(received) == 2
    # Text had reached the caller: the failure is final, never retried (one loop, one rule).
    assert stack.model_calls()["calls"] == {FLASH: {"StreamGenerateContent": 1}}


@pytest.mark.parametrize("method", ["GenerateContent", "StreamGenerateContent"])
async def test_failures_before_the_first_token_are_retried_on_the_same_model(
    stack: LocalStack, make_client: ClientFactory, method: str
) -> None:
    stack.fault(FLASH, fail_first=2, status="UNAVAILABLE")
    client = make_client(retry_initial_s=0.01, retry_max_delay_s=0.02)
    request = ask("third time lucky", temperature=1.0)
    result: LlmResult | None
    if method == "GenerateContent":
        result = await client.generate(request)
        text = result.text
    else:
        pieces = [chunk async for chunk in client.stream(request)]
        result, text = pieces[-1].result, "".join(p.text for p in pieces)
    assert result is not None and result.model == FLASH and result.attempts == 3
    assert text and not result.fallback
    assert stack.model_calls()["calls"] == {FLASH: {method: 3}}


async def test_a_stream_that_ends_before_any_chunk_is_retried(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    stack.fault(FLASH, fail_after_chunks=0, status="INTERNAL")
    client = make_client(retry_initial_s=0.01, retry_max_delay_s=0.02, retry_max_attempts=2)
    pieces = [chunk async for chunk in client.stream(ask("nothing yet", temperature=1.0))]
    # INTERNAL before the first chunk: retried on FLASH, then the fallback model answers.
    final = pieces[-1].result
    assert final is not None and final.model == FALLBACK and final.fallback
    calls = stack.model_calls()["calls"]
    assert calls[FLASH]["StreamGenerateContent"] == 2


async def test_token_budget_is_enforced_with_a_typed_error(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client(daily_token_budget=300)
    request = ask("spend", subject="alice", temperature=1.0, max_output_tokens=50)
    with pytest.raises(errors.TokenBudgetExceeded) as exceeded:
        for _ in range(20):
            await client.generate(request)
    assert exceeded.value.status == 429 and exceeded.value.retry_after
    assert client.budget is not None
    assert await client.budget.used("alice") <= 300
    other = await client.generate(
        ask("spend", subject="bob", temperature=1.0, max_output_tokens=50)
    )
    assert other.text  # budgets are per subject


async def test_concurrent_requests_cannot_overspend_a_budget(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    limit = 1000
    # Atomicity is under test, not Redis timeouts: a loaded CI machine must not trip the 100 ms one.
    client = make_client(daily_token_budget=limit, redis_timeout_s=2.0)

    async def one(i: int) -> int:
        try:
            result = await client.generate(
                ask(f"budget {i}", subject="carol", temperature=1.0, max_output_tokens=40)
            )
        except errors.TokenBudgetExceeded:
            return 0
        return result.input_tokens + result.output_tokens

    spent = await asyncio.gather(*(one(i) for i in range(50)))
    assert client.budget is not None
    used = await client.budget.used("carol")
    assert used == sum(spent)
    assert 0 < used <= limit + max(spent)
    assert spent.count(0) > 0  # some were refused


async def test_answer_carries_tokens_and_estimated_cost(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client()
    result = await client.generate(ask("price me", temperature=1.0))
    assert result.input_tokens == 2 and result.output_tokens == 48
    expected = (2 * 0.30 + 48 * 2.50) / 1e6
    assert result.cost_usd == pytest.approx(expected)
    assert result.attempts == 1


async def test_with_every_model_down_calls_fail_fast_after_a_bounded_number_of_model_calls(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    """Found by a security review: 120 chats made 287 model calls while all models failed."""
    stack.fault("*", error_rate=1.0, status="UNAVAILABLE")
    now = [0.0]
    client = make_client(
        clock=lambda: now[0],
        breaker_open_s=3600,  # no probe during the run
        retry_initial_s=0.01,
        retry_max_delay_s=0.02,
    )
    gate = asyncio.Semaphore(8)
    refused: list[str] = []

    async def one(i: int) -> None:
        async with gate:
            try:
                await client.generate(ask(f"down {i}", temperature=1.0))
            except errors.AppError as exc:
                refused.append(exc.code)
            now[0] += 3  # slow calls, as under real load: a 10 s window never holds 10 outcomes

    await asyncio.gather(*(one(i) for i in range(120)))
    calls = stack.model_calls()["calls"]
    per_model = {model: methods["GenerateContent"] for model, methods in calls.items()}
    # Each model's breaker opens after 5 failed calls in a row; at most the calls already in
    # flight then (8) join them, each with up to 5 attempts.
    assert set(per_model) == {FLASH, FALLBACK}
    assert all(count <= (5 + 8) * 5 for count in per_model.values()), per_model
    assert len(refused) == 120 and refused.count("circuit_open") >= 100, refused
    assert all(b.state.value == "open" for b in client.resilience.breakers.values())


async def test_readiness_reports_models_whose_breakers_are_all_open(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    """Found by a security review: a hung model took every request's deadline while /readyz
    said the model was fine."""
    client = make_client(vertex_attempt_timeout_s=0.2, retry_max_attempts=1, vertex_deadline_s=1)
    await client.ready()
    stack.fault("*", hang=True)
    for i in range(5):  # five calls cut at their timeout, in a row, on each model of the tier
        with pytest.raises(errors.AppError):
            await client.generate(ask(f"hung {i}", temperature=1.0))
    with pytest.raises(errors.CircuitOpen, match="are failing"):
        await client.ready()
    stack.clear_faults()


async def test_only_the_models_and_the_services_failures_count_as_errors(
    stack: LocalStack, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The `llm call` line behind `vertex_ai.client.errors`: a failure of the model or of this
    service is a WARNING with error_kind "service"; a client's mistake, a budget refusal and an
    open breaker's fast refusal are INFO lines of their own kind (`vertex_ai.client.refusals`)."""

    def last_call() -> tuple[str, str | None, str | None]:
        record = [r for r in caplog.records if r.getMessage() == "llm call"][-1]
        fields = record.__dict__
        return record.levelname, fields.get("error_kind"), fields.get("error_type")

    caplog.set_level(logging.INFO, logger="vertex_ai.client")
    client = make_client(
        daily_token_budget=300, retry_max_attempts=1, breaker_consecutive_failures=2
    )
    await client.generate(ask("fine", temperature=1.0))
    assert last_call() == ("INFO", None, None)
    with pytest.raises(errors.BadRequest):
        await client.generate(ask("which tier?", tier="nope"))
    assert last_call() == ("INFO", "client", "bad_request")
    with pytest.raises(errors.TokenBudgetExceeded):
        for _ in range(20):
            await client.generate(
                ask("spend", subject="carol", temperature=1.0, max_output_tokens=50)
            )
    assert last_call() == ("INFO", "refused", "token_budget_exceeded")
    stack.fault("*", error_rate=1.0, status="UNAVAILABLE")
    with pytest.raises(errors.ModelUnavailable):
        await client.generate(ask("down", temperature=1.0))
    assert last_call() == ("WARNING", "service", "model_unavailable")
    with pytest.raises(errors.AppError):
        await client.generate(ask("down again", temperature=1.0))  # second failure: breakers open
    with pytest.raises(errors.CircuitOpen):
        await client.generate(ask("down still", temperature=1.0))
    assert last_call() == ("INFO", "refused", "circuit_open")


async def test_budgets_follow_their_setting_while_memorystore_is_down(
    stack: LocalStack, private_redis: RedisServer, make_client: ClientFactory
) -> None:
    closed = make_client(redis_url=private_redis.url, budget_when_unavailable="closed")
    opened = make_client(redis_url=private_redis.url, budget_when_unavailable="open")
    private_redis.stop()
    request = ask("budget?", subject="dora", temperature=1.0)
    with pytest.raises(errors.Unavailable, match="token budgets cannot be checked"):
        await closed.generate(request)
    assert (await opened.generate(request)).text  # let through, uncounted, and logged


async def test_the_daily_token_budget_follows_the_callers_tier(
    stack: LocalStack, make_client: ClientFactory
) -> None:
    client = make_client(daily_token_budget=300, daily_token_budget_tiers={"premium": 100_000})

    def spend(subject: str, tier: str | None) -> LlmRequest:
        return ask(
            "spend", subject=subject, budget_tier=tier, temperature=1.0, max_output_tokens=50
        )

    with pytest.raises(errors.TokenBudgetExceeded, match="budget of 300 "):
        for _ in range(20):
            await client.generate(spend("frank", None))
    for _ in range(20):  # the same spending, within the premium tier's budget
        assert (await client.generate(spend("grace", "premium"))).text
    with pytest.raises(errors.TokenBudgetExceeded, match="budget of 300 "):
        for _ in range(20):  # a tier without a budget of its own gets the default
            await client.generate(spend("heidi", "standard"))

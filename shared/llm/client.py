"""`LlmClient`: everything a function needs to call Gemini well, behind `generate` and `stream`.

Per call: route the request's tier to a chain of models → serve cacheable requests from the
response cache, with one model call per distinct miss across concurrent callers and instances
(single-flight; for streams see `shared.llm.flights`) → reserve the caller's token budget → try
each model of the chain with retries (backoff with full jitter, per-attempt timeout, overall
deadline, shared retry budget) behind a circuit breaker per model → account tokens and cost →
one span and one KPI log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from shared import admission, errors, telemetry
from shared.llm import accounting
from shared.llm.cache import ResponseCache, is_cacheable, request_key
from shared.llm.flights import StreamFlights, as_hit
from shared.llm.policy import PolicySource
from shared.llm.resilience import Resilience
from shared.llm.transport import EmptyStream, VertexTransport, chunks
from shared.llm.types import CallStats, FunctionCall, LlmChunk, LlmRequest, LlmResult
from shared.memorystore import Memorystore, StoreUnavailable
from shared.settings import Settings

log = logging.getLogger("vertex_ai.client")
_NO_SPAN = contextlib.nullcontext()

# An opened stream: the call (to cancel), its chunk iterator and the first chunk.
Opened = tuple[Any, AsyncIterator[LlmChunk], LlmChunk]


class LlmClient:
    """The optimized Vertex AI client; one per process (it holds breakers and the retry budget)."""

    def __init__(
        self,
        settings: Settings,
        store: Memorystore | None = None,
        db: Any | None = None,
        transport: VertexTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.transport = transport or VertexTransport(settings)
        self.cache = (
            ResponseCache(store, settings.cache_reuse_horizon_s)
            if store is not None and settings.cache_enabled
            else None
        )
        self.budget = (
            accounting.TokenBudget(
                store,
                settings.daily_token_budget,
                fail_closed=settings.budget_when_unavailable == "closed",
                tiers=settings.daily_token_budget_tiers,
            )
            if store is not None
            else None
        )
        self.policy = PolicySource(settings, db, clock)
        self.resilience = Resilience(settings, clock)
        self._inflight: dict[str, asyncio.Future[LlmResult]] = {}
        self.flights = (
            StreamFlights(settings, self.cache, self._model_stream) if self.cache else None
        )

    # --- public interface -------------------------------------------------------------------

    async def generate(self, request: LlmRequest) -> LlmResult:
        """One whole answer; raises a typed `shared.errors.AppError` when none can be had."""
        stats = CallStats()
        started = time.perf_counter()
        with telemetry.span("llm.generate", query_class=request.query_class) as span:
            try:
                result = await self._generate(request, stats)
            except errors.AppError as exc:
                self._report(span, request, stats, started, None, exc)
                raise
            self._report(span, request, stats, started, result, None)
            return result

    async def stream(self, request: LlmRequest) -> AsyncIterator[LlmChunk]:
        """The answer in pieces, closed by a chunk carrying the whole `LlmResult`; a cached answer
        is replayed as a stream. Closing the iterator early cancels the upstream call."""
        stats = CallStats()
        started = time.perf_counter()
        with telemetry.span("llm.stream", query_class=request.query_class) as span:
            try:
                result: LlmResult | None = None
                async for item in self._stream(request, stats):
                    if isinstance(item, LlmResult):
                        result = item
                        yield LlmChunk(text="", finish_reason=item.finish_reason, result=item)
                    else:
                        yield item
            except errors.AppError as exc:
                self._report(span, request, stats, started, None, exc)
                raise
            if result is not None:
                self._report(span, request, stats, started, result, None)

    def chain(self, request: LlmRequest) -> list[str]:
        """The models that may serve a request, in order."""
        if request.model:
            return [request.model]
        models = self.settings.model_tiers.get(request.tier)
        if not models:
            raise errors.BadRequest(f"unknown tier {request.tier!r}")
        return list(models)

    async def ready(self, timeout: float = 1.0) -> None:
        """Raise unless the default tier can answer now: some model of its chain has a breaker
        that lets calls through (a hung or failing model opens its breaker within a few calls),
        and the gRPC channel connects."""
        chain = self.chain(LlmRequest(turns=()))
        if not any(self.resilience.breaker(model).allow_any() for model in chain):
            raise errors.CircuitOpen(
                f"models {', '.join(chain)} are failing; not calling them for now",
                retry_after=max(
                    1, round(min(self.resilience.breaker(m).retry_after() for m in chain))
                ),
            )
        await self.transport.ready(timeout)

    async def close(self) -> None:
        await self.transport.close()

    # --- cache and single-flight ------------------------------------------------------------

    def _cache_key(self, request: LlmRequest, chain: list[str]) -> str | None:
        if self.cache is None or not is_cacheable(request, self.settings.cache_max_temperature):
            return None
        return request_key(request, chain[0])

    async def _generate(self, request: LlmRequest, stats: CallStats) -> LlmResult:
        chain = self.chain(request)
        key = self._cache_key(request, chain)
        if key is None:
            return await self._call_model(request, chain, stats)
        pending = self._inflight.get(key)
        if pending is not None:  # an identical request is already being served in this process
            await admission.settle_pending()  # its own limits (batched with others')
            stats.cache = "shared"
            try:
                shared = await asyncio.wait_for(
                    asyncio.shield(pending), self.settings.singleflight_wait_s
                )
            except TimeoutError:
                return await self._call_model(request, chain, stats)
            except errors.RateLimited:  # the first caller's own limits, not ours: try again
                return await self._generate(request, stats)
            return as_hit(shared)
        future: asyncio.Future[LlmResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._serve(key, request, chain, stats)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _serve(
        self, key: str, request: LlmRequest, chain: list[str], stats: CallStats
    ) -> LlmResult:
        """A cacheable request: a hit (its rate limits checked in the same round trip), or a
        miss answered with one model call shared across instances."""
        hit = await self._lookup(key, request, stats)
        if hit is not None:
            return as_hit(hit)
        if stats.cache == "error":
            return await self._call_model(request, chain, stats)
        return await self._fill(key, request, chain, stats)

    async def _lookup(self, key: str, request: LlmRequest, stats: CallStats) -> LlmResult | None:
        """The cached answer, settling the request's pending rate limits in the same round trip;
        ``stats.cache`` says hit, miss or error (Memorystore unreachable)."""
        assert self.cache is not None
        with telemetry.span("cache.lookup", query_class=request.query_class) as span:
            try:
                pending = admission.pending()
                # With its rate limits in the same round trip: their span nests in this one.
                with telemetry.span("ratelimit", combined=True) if pending else _NO_SPAN:
                    hit = await self.cache.lookup(key, request.query_class, admission=pending)
            except StoreUnavailable:
                stats.cache = "error"
                return None
            span.set_attribute("cache.hit", hit is not None)
        stats.cache = "hit" if hit is not None else "miss"
        return hit

    async def _fill(
        self, key: str, request: LlmRequest, chain: list[str], stats: CallStats
    ) -> LlmResult:
        """Answer a miss with one model call shared across instances (a fill lock)."""
        assert self.cache is not None
        stats.cache = "miss"
        token = uuid.uuid4().hex
        give_up = time.monotonic() + self.settings.singleflight_wait_s
        try:
            while not await self.cache.try_lock(key, token, self.settings.singleflight_lock_s):
                shared = await self._wait_for_other(key, give_up)
                if shared is not None:
                    stats.cache = "shared"
                    return as_hit(shared)
                if time.monotonic() >= give_up:
                    return await self._call_model(request, chain, stats)
        except StoreUnavailable:
            stats.cache = "error"
            return await self._call_model(request, chain, stats)
        released = False
        try:
            result = await self._call_model(request, chain, stats)
            if not result.fallback:
                policy = await self.policy.current()
                try:  # the lock goes in the same round trip as the answer is stored
                    released = await self.cache.store_answer(
                        key, request, result, policy, unlock=token
                    )
                except StoreUnavailable:
                    stats.cache = "error"
            return result
        finally:
            if not released:
                with contextlib.suppress(StoreUnavailable):
                    await self.cache.unlock(key, token)

    async def _wait_for_other(self, key: str, give_up: float) -> LlmResult | None:
        """Poll for another instance's answer until it lands, its lock goes, or time is up."""
        assert self.cache is not None
        delay = 0.005
        while time.monotonic() < give_up:
            await asyncio.sleep(delay)
            result, locked = await self.cache.peek_with_lock(key)
            if result is not None:
                return result
            if not locked:
                return None
            delay = min(delay * 2, 0.1)
        return None

    # --- budget, routing, retries -----------------------------------------------------------

    async def _call_model(
        self, request: LlmRequest, chain: list[str], stats: CallStats
    ) -> LlmResult:
        await admission.settle_pending()
        reservation = None
        if self.budget is not None:
            reservation = await self.budget.reserve(
                request.subject, accounting.request_upper_bound(request), request.budget_tier
            )
        used = 0
        try:
            result = await self._route(request, chain, stats)
            used = result.input_tokens + result.output_tokens
            return result
        finally:
            if self.budget is not None:
                await self.budget.settle(reservation, used)

    async def _route(self, request: LlmRequest, chain: list[str], stats: CallStats) -> LlmResult:
        timeout_s = self.settings.vertex_attempt_timeout_s

        async def attempt(model: str, remaining: float) -> LlmResult:
            return await self.transport.generate(request, model, timeout=min(timeout_s, remaining))

        result, model, index = await self.resilience.call(chain, stats, attempt)
        cost = accounting.cost_usd(
            self.settings.model_prices,
            model,
            result.input_tokens,
            result.output_tokens,
            result.cached_input_tokens,
        )
        return replace(result, fallback=index > 0, attempts=stats.attempts, cost_usd=cost)

    # --- streaming --------------------------------------------------------------------------

    async def _stream(
        self, request: LlmRequest, stats: CallStats
    ) -> AsyncIterator[LlmChunk | LlmResult]:
        """Chunks, then the whole result last (for accounting, caching and the report)."""
        chain = self.chain(request)
        key = self._cache_key(request, chain)
        answer = (
            self._model_stream(request, chain, stats, None)
            if key is None or self.flights is None
            else self.flights.join(key, request, chain, stats)
        )
        async for item in answer:
            yield item

    async def _model_stream(
        self, request: LlmRequest, chain: list[str], stats: CallStats, key: str | None
    ) -> AsyncIterator[LlmChunk | LlmResult]:
        """One model stream under the caller's budget; its answer is cached under ``key``."""
        reservation = None
        if self.budget is not None:
            reservation = await self.budget.reserve(
                request.subject, accounting.request_upper_bound(request), request.budget_tier
            )
        used = reservation[1] if reservation else 0  # charged in full unless the stream completes
        call: Any = None
        try:
            call, model, index, iterator, first = await self._open_stream(request, chain, stats)
            parts: list[str] = []
            calls: list[FunctionCall] = []
            piece: LlmChunk | None = first
            last = first
            while piece is not None:
                parts.append(piece.text)
                calls.extend(piece.function_calls)
                yield piece
                last = piece
                try:
                    piece = await anext(iterator)
                except StopAsyncIteration:
                    piece = None
                except Exception as exc:
                    self.resilience.breaker(model).record(False)
                    raise errors.UpstreamError(
                        f"model stream from {model} broke off", retry_after=1
                    ) from exc
            result = LlmResult(
                text="".join(parts),
                model=model,
                finish_reason=last.finish_reason or "STOP",
                input_tokens=last.input_tokens or 0,
                output_tokens=last.output_tokens or 0,
                fallback=index > 0,
                attempts=stats.attempts,
                function_calls=tuple(calls),
                avg_logprobs=last.avg_logprobs,
                cached_input_tokens=last.cached_input_tokens or 0,
            )
            result = replace(
                result,
                cost_usd=accounting.cost_usd(
                    self.settings.model_prices,
                    model,
                    result.input_tokens,
                    result.output_tokens,
                    result.cached_input_tokens,
                ),
            )
            used = result.input_tokens + result.output_tokens
            if key is not None and not result.fallback and self.cache is not None:
                try:
                    policy = await self.policy.current()
                    await self.cache.store_answer(key, request, result, policy)
                except StoreUnavailable:
                    stats.cache = "error"
            yield result
        finally:
            if call is not None:
                call.cancel()  # no-op when complete; stops the model when the client went away
            if self.budget is not None:
                await self.budget.settle(reservation, used)

    async def _open_stream(
        self, request: LlmRequest, chain: list[str], stats: CallStats
    ) -> tuple[Any, str, int, AsyncIterator[LlmChunk], LlmChunk]:
        """Start a stream with retries and fallback, up to its first chunk (nothing sent yet)."""
        timeout_s = self.settings.vertex_attempt_timeout_s

        async def attempt(model: str, remaining: float) -> Opened:
            call = None
            try:
                call = await self.transport.open_stream(request, model, timeout=remaining)
                iterator = chunks(call)
                try:
                    first = await asyncio.wait_for(anext(iterator), min(timeout_s, remaining))
                except StopAsyncIteration:
                    raise EmptyStream(f"{model} ended the stream before any chunk") from None
            except BaseException:
                if call is not None:
                    call.cancel()
                raise
            return call, iterator, first

        (call, iterator, first), model, index = await self.resilience.call(chain, stats, attempt)
        return call, model, index, iterator, first

    # --- reporting --------------------------------------------------------------------------

    def _report(
        self,
        span: Any,
        request: LlmRequest,
        stats: CallStats,
        started: float,
        result: LlmResult | None,
        error: errors.AppError | None,
    ) -> None:
        """One span update and one structured KPI log line per call."""
        fields: dict[str, Any] = {
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "model": result.model if result else (stats.models_tried or ["-"])[-1],
            "tokens_in": result.input_tokens if result else 0,
            "tokens_out": result.output_tokens if result else 0,
            # In + out in one field: the usage KPI (`vertex_ai.client.tokens`) extracts one value.
            "tokens": (result.input_tokens + result.output_tokens) if result else 0,
            "cache": stats.cache,
            "cache_hit": stats.cache in ("hit", "shared"),
            "attempts": stats.attempts,
            "fallback": bool(result and result.fallback),
            "cost_usd": round(result.cost_usd, 8) if result else 0.0,
            "query_class": request.query_class,
            "error_type": error.code if error else None,
            "error_kind": errors.failure_kind(error) if error else None,
        }
        for name, value in fields.items():
            if value is not None:
                span.set_attribute(f"llm.{name}", value)
        if error is not None:
            span.record_exception(error)
        # WARNING only for the model's or the service's failures: the error metric counts those.
        failed = fields["error_kind"] == "service"
        log.log(logging.WARNING if failed else logging.INFO, "llm call", extra=fields)

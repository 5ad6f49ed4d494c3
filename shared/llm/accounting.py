"""Token and cost accounting: estimated prices and per-subject daily token budgets.

A budget is enforced with reservations: before a model call the caller reserves an upper bound of
its tokens (estimated input plus ``max_output_tokens``) in one atomic Lua step that refuses when
used + reserved + this request would pass the limit; after the call the reservation is replaced by
the real count. Concurrent requests therefore cannot overspend, whatever their interleaving.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import errors
from shared.llm.types import LlmRequest
from shared.memorystore import Memorystore, StoreUnavailable

log = logging.getLogger("ngx.llm.budget")

_RESERVE = """
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if used + reserved + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return {0, used, reserved} end
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used, reserved}
"""
_SETTLE = """
redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[1], 'used', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('HGET', KEYS[1], 'used')
"""
BUDGET_TTL_S = 3 * 86400


def estimate_tokens(text: str) -> int:
    """A cheap upper-leaning estimate (about four characters a token for Gemini's tokenizer)."""
    return max(1, math.ceil(len(text) / 4))


def request_upper_bound(request: LlmRequest) -> int:
    """The most tokens a request may cost: estimated prompt plus the output cap."""
    prompt = sum(estimate_tokens(t.text) for t in request.turns)
    prompt += estimate_tokens(request.system_instruction or "")
    for turn in request.turns:  # function calls and results, as the JSON the model reads
        for call in turn.calls:
            prompt += estimate_tokens(json.dumps(call.args)) + 1
        for result in turn.results:
            prompt += estimate_tokens(json.dumps(result.response)) + 1
    prompt += sum(estimate_tokens(t.description + t.parameters) for t in request.tools)
    prompt += estimate_tokens(request.response_schema or "")
    return prompt + request.max_output_tokens


CACHED_INPUT_SHARE = 0.25  # what a cached input token costs of a fresh one, unless priced


def cost_usd(
    prices: dict[str, dict[str, float]],
    model: str,
    tokens_in: int,
    tokens_out: int,
    cached_in: int = 0,
) -> float:
    """Estimated cost from the price table (USD per million tokens); 0 for an unknown model.
    ``cached_in`` of the input tokens came from Gemini's prompt cache, at its discounted price
    (``cached_input``, or a quarter of ``input``)."""
    price = prices.get(model, {})
    fresh = price.get("input", 0.0)
    cached = price.get("cached_input", fresh * CACHED_INPUT_SHARE)
    cached_in = min(cached_in, tokens_in)
    spent = (tokens_in - cached_in) * fresh + cached_in * cached
    return (spent + tokens_out * price.get("output", 0.0)) / 1e6


def seconds_to_utc_midnight(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


class TokenBudget:
    """Daily token budgets per subject, kept in Memorystore."""

    def __init__(
        self,
        store: Memorystore,
        daily_limit: int,
        fail_closed: bool = False,
        tiers: dict[str, int] | None = None,
    ) -> None:
        self.store = store
        self.limit = daily_limit
        self.tiers = tiers or {}  # tier → its own daily limit
        self.fail_closed = fail_closed  # Memorystore down: refuse calls rather than not count
        self._reserve = store.redis.register_script(_RESERVE)
        self._settle = store.redis.register_script(_SETTLE)

    @staticmethod
    def key(subject: str, day: str | None = None) -> str:
        return f"ngx:budget:{subject}:{day or datetime.now(UTC).strftime('%Y%m%d')}"

    def limit_for(self, tier: str | None) -> int:
        """The daily limit of a caller's tier (the default one when the tier sets none)."""
        return self.tiers.get(tier, self.limit) if tier else self.limit

    async def reserve(
        self, subject: str | None, tokens: int, tier: str | None = None
    ) -> tuple[str, int] | None:
        """Reserve ``tokens`` within the tier's daily limit or raise `TokenBudgetExceeded`; None
        when nothing was reserved."""
        limit = self.limit_for(tier)
        if not subject or limit <= 0:
            return None
        key = self.key(subject)
        try:
            ok, used, reserved = await self.store.run(
                lambda r: self._reserve(keys=[key], args=[limit, tokens, BUDGET_TTL_S])
            )
        except StoreUnavailable:
            if self.fail_closed:
                raise errors.Unavailable(
                    "token budgets cannot be checked now (NGX_BUDGET_WHEN_UNAVAILABLE=closed)",
                    retry_after=2,
                ) from None
            log.warning("token budget not enforced: memorystore unavailable")
            return None
        if not ok:
            raise errors.TokenBudgetExceeded(
                f"daily token budget of {limit} is spent ({int(used)} used, "
                f"{int(reserved)} reserved; this request may need {tokens})",
                details=[{"limit": limit, "used": int(used)}],
                retry_after=seconds_to_utc_midnight(),
            )
        return key, tokens

    async def settle(self, reservation: tuple[str, int] | None, actual: int) -> None:
        """Replace a reservation by the tokens really used (0 when the call failed)."""
        if reservation is None:
            return
        key, reserved = reservation
        try:
            await self.store.run(
                lambda r: self._settle(keys=[key], args=[reserved, actual, BUDGET_TTL_S])
            )
        except StoreUnavailable:
            log.warning("token usage not recorded: memorystore unavailable")

    async def used(self, subject: str) -> int:
        value: Any = await self.store.run(lambda r: r.hget(self.key(subject), "used"))
        return int(value or 0)

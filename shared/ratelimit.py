"""Rate limits shared by every instance: GCRA (generic cell rate algorithm) in Memorystore.

Each limit is "N requests per minute" on one key (an API key, a user, a client IP). GCRA keeps one
timestamp per key, admits a burst of N from rest and then one request every 60/N seconds, and is
evaluated for all of a request's limits in one atomic script: a request refused by any limit
consumes none of them. Checks made in the same turn of the event loop share one script call
(each request still decided on its own, in order), and a cache-hit chat's check rides in its
cache lookup's script (`shared.admission`): under load a request costs less than a round trip.
During a Memorystore outage each instance applies the same limits from its own memory
(`LocalLimiter`): a caller then gets at most ``instances × limit`` requests a minute, never an
unlimited number.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.memorystore import Memorystore, StoreUnavailable

log = logging.getLogger("ngx.ratelimit")
PERIOD_MS = 60_000

# GCRA over KEYS[first..first+n-1] with per-minute limits ARGV[a..a+n-1]: the same function serves
# the rate limit alone and the rate limit with a cache lookup (`shared.llm.cache`), in one script.
GCRA_FUNCTION = """
local function gcra(first, n, now, period, a)
  local tats, worst_wait, min_remaining, reset = {}, 0, nil, 0
  for i = 0, n - 1 do
    local limit = tonumber(ARGV[a + i])
    local t = period / limit
    local tat = math.max(tonumber(redis.call('GET', KEYS[first + i]) or now), now)
    local wait = tat - now - (period - t)
    if wait > worst_wait then worst_wait = wait end
    tats[i] = tat + t
    local remaining = math.floor((period - (tat + t - now)) / t)
    if min_remaining == nil or remaining < min_remaining then min_remaining = remaining end
    if tat + t - now > reset then reset = tat + t - now end
  end
  if worst_wait > 0 then return {0, math.ceil(worst_wait), 0, reset} end
  for i = 0, n - 1 do
    redis.call('SET', KEYS[first + i], tats[i], 'PX', math.max(1, math.ceil(tats[i] - now)))
  end
  return {1, 0, math.max(min_remaining, 0), reset}
end
"""
# Several requests' checks in one round trip, one after the other as separate scripts would run:
# ARGV = now, period, m, the number of limits of each of the m requests, then every per-minute
# limit; KEYS = every limit key, request after request. Four figures per request come back.
_GCRA_MANY = (
    GCRA_FUNCTION
    + """
local now, period, m = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, k, a = {}, 1, 4 + m
for j = 1, m do
  local n = tonumber(ARGV[3 + j])
  local d = gcra(k, n, now, period, a)
  for i = 1, 4 do out[#out + 1] = d[i] end
  k = k + n
  a = a + n
end
return out
"""
)


@dataclass(frozen=True)
class Limit:
    """``per_minute`` requests on ``key``."""

    key: str
    per_minute: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int = 0

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers (IETF draft) for the tightest limit."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


class LocalLimiter:
    """The GCRA of `GCRA_FUNCTION` in this process's memory, for when Memorystore is
    unreachable; at most ``max_keys`` keys are remembered (the least recently used go first)."""

    def __init__(self, max_keys: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def check(self, limits: list[Limit]) -> tuple[int, int, int, int]:
        """(allowed, wait ms, remaining, reset ms), as the script answers."""
        now = self._clock() * 1000
        tats, worst_wait, remaining, reset = [], 0.0, None, 0.0
        for limit in limits:
            t = PERIOD_MS / limit.per_minute
            tat = max(self._tats.get(limit.key, now), now)
            worst_wait = max(worst_wait, tat - now - (PERIOD_MS - t))
            tats.append(tat + t)
            left = math.floor((PERIOD_MS - (tat + t - now)) / t)
            remaining = left if remaining is None else min(remaining, left)
            reset = max(reset, tat + t - now)
        if worst_wait > 0:
            return 0, math.ceil(worst_wait), 0, math.ceil(reset)
        for limit, tat in zip(limits, tats, strict=True):
            self._tats[limit.key] = tat
            self._tats.move_to_end(limit.key)
        while len(self._tats) > self._max_keys:
            self._tats.popitem(last=False)
        return 1, 0, max(remaining or 0, 0), math.ceil(reset)


def key_of(limit: Limit) -> str:
    return f"ngx:rl:{limit.key}"


class RateLimiter:
    def __init__(self, store: Memorystore) -> None:
        self.store = store
        self._script = store.redis.register_script(_GCRA_MANY)
        self.local = LocalLimiter()
        self.degraded = False  # True while limits are kept per instance (Memorystore down)
        self._batch: list[tuple[list[Limit], asyncio.Future[Decision]]] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def check(self, limits: list[Limit]) -> Decision:
        """Admit or refuse a request against all its limits (per instance while Memorystore is
        down). The checks of concurrent requests share one round trip: those made in the same
        turn of the event loop go in one script call, each decided on its own."""
        loop = asyncio.get_running_loop()
        if self._batch is None:
            self._batch = []
            loop.call_soon(self._start_flush)
        decision: asyncio.Future[Decision] = loop.create_future()
        self._batch.append((limits, decision))
        return await asyncio.shield(decision)

    def _start_flush(self) -> None:
        batch, self._batch = self._batch or [], None
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[list[Limit], asyncio.Future[Decision]]]) -> None:
        keys = [key_of(limit) for limits, _ in batch for limit in limits]
        args = [int(time.time() * 1000), PERIOD_MS, len(batch)]
        args += [len(limits) for limits, _ in batch]
        args += [limit.per_minute for limits, _ in batch for limit in limits]
        try:
            reply = await self.store.run(lambda r: self._script(keys=keys, args=args))
        except StoreUnavailable:
            reply = None
        except BaseException as exc:  # every waiter hears of it
            for _, decision in batch:
                if not decision.done():
                    decision.set_exception(exc)
            return
        for index, (limits, decision) in enumerate(batch):
            if decision.done():
                continue
            if reply is None:
                decision.set_result(self.decide_locally(limits))
            else:
                decision.set_result(self.decided(limits, reply[4 * index : 4 * index + 4]))

    def decided(self, limits: list[Limit], reply: list[Any]) -> Decision:
        """The decision of a script's ``gcra`` reply (allowed, wait ms, remaining, reset ms)."""
        self.degraded = False
        allowed, wait_ms, remaining, reset_ms = (int(x) for x in reply[:4])
        tightest = min(limit.per_minute for limit in limits)
        return Decision(
            allowed=bool(allowed),
            limit=tightest,
            remaining=remaining,
            reset_s=math.ceil(reset_ms / 1000),
            retry_after_s=max(1, math.ceil(wait_ms / 1000)) if not allowed else 0,
        )

    def decide_locally(self, limits: list[Limit]) -> Decision:
        """The decision while Memorystore is unreachable: this instance's own limiter."""
        if not self.degraded:
            log.warning("rate limits kept per instance: memorystore unavailable")
        self.degraded = True
        decision = self.decided(limits, list(self.local.check(limits)))
        self.degraded = True
        return decision

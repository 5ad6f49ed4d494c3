"""Cache analysis: what the counters say, and the policy they argue for.

Input: the per-class hourly counters the cache writes in the lookup's round trip (hits, misses,
stores, sizes, and the histogram of gaps between identical requests), plus Redis ``INFO``.

A TTL counts from when an answer is stored, so a request repeated every 5 s hits a 4 s TTL never
and a 16 s TTL three times in four. The hit rate a TTL would give therefore depends on chains of
gaps, not on single gaps: it is predicted by replaying chains of requests drawn from the observed
gap distribution and repeat share (a fixed seed keeps it reproducible). Each class gets the
smallest TTL reaching ``cache_reuse_coverage`` of the hit rate an unbounded TTL would give,
stepped down while over the memory budget; then the entry size limit, the compression threshold
and the eviction policy — each with the figures behind it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.llm.cache import PREFIX
from shared.llm.policy import CachePolicy
from shared.settings import Settings

BUCKETS = 25  # log2 buckets 0..24 (≤ 1 s … ≤ 2^24 s)
RECOMMENDED_EVICTION = "volatile-lfu"
SEEN_MARKER_BYTES = 90  # a `seen` key and its value, as Redis stores them


@dataclass
class ClassCounters:
    """One query class's counters summed over the analysis window."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    stored_bytes: int = 0
    too_big: int = 0
    repeats: int = 0
    reuse: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    gaps: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    sizes: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, raw: dict[str, int]) -> None:
        for name in ("hits", "misses", "stores", "stored_bytes", "too_big", "repeats"):
            setattr(self, name, getattr(self, name) + raw.get(name, 0))
        for prefix, target in (
            ("reuse_le_", self.reuse),
            ("gap_le_", self.gaps),
            ("size_le_", self.sizes),
        ):
            for b in range(BUCKETS):
                target[b] += raw.get(f"{prefix}{b}", 0)

    @property
    def lookups(self) -> int:
        return self.hits + self.misses


@dataclass
class ClassAdvice:
    query_class: str
    hits: int
    misses: int
    hit_rate: float
    repeats_observed: int
    current_ttl_s: int
    recommended_ttl_s: int
    predicted_hit_rate_now: float
    predicted_hit_rate: float
    best_possible_hit_rate: float
    avg_entry_bytes: int
    estimated_memory_bytes: int
    reason: str


@dataclass
class MemoryFigures:
    used_bytes: int
    max_bytes: int
    budget_bytes: int | None
    eviction_policy: str
    evicted_keys: int
    expired_keys: int


def ttl_bucket(seconds: int) -> int:
    b = 0
    while 2**b < seconds and b < BUCKETS - 1:
        b += 1
    return b


class HitModel:
    """Predicts a class's hit rate under any TTL from its gap histogram and repeat share."""

    SAMPLES = 40_000  # gaps drawn in all: bounds the work whatever the repeat share

    def __init__(self, c: ClassCounters, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.repeat_share = min(0.999, c.repeats / c.lookups) if c.lookups else 0.0
        # Chains of identical requests: each request is followed by another with the repeat
        # share's probability, after a gap drawn from the histogram (log-uniform in its bucket).
        self.chains: list[list[float]] = []
        self._memo: dict[float, float] = {}
        if not sum(c.gaps):
            return
        drawn = 0
        while drawn < self.SAMPLES:
            chain: list[float] = []
            while rng.random() < self.repeat_share and drawn < self.SAMPLES:
                b = rng.choices(range(BUCKETS), c.gaps)[0]
                chain.append(2 ** rng.uniform(b - 1, b) if b else rng.random())
                drawn += 1
            self.chains.append(chain)
            drawn += 1

    def hit_rate(self, ttl_s: float) -> float:
        if ttl_s in self._memo:
            return self._memo[ttl_s]
        requests = hits = 0
        for gaps in self.chains:
            requests += 1 + len(gaps)
            age = 0.0
            for gap in gaps:
                age += gap
                if age <= ttl_s:
                    hits += 1
                else:
                    age = 0.0  # a miss stores a fresh answer
        self._memo[ttl_s] = hits / requests if requests else 0.0
        return self._memo[ttl_s]


def _memory(c: ClassCounters, ttl_s: int, window_s: float) -> int:
    """Entries alive at once under ``ttl_s``: at most one store per TTL per distinct request,
    bounded by the observed store rate."""
    if not c.stores:
        return 0
    average = c.stored_bytes / c.stores
    live = min(c.stores, c.stores / max(window_s, 1.0) * ttl_s)
    return int(live * (average + SEEN_MARKER_BYTES))


def advise(
    counters: dict[str, ClassCounters],
    policy: CachePolicy,
    settings: Settings,
    memory: MemoryFigures,
    window_s: float,
) -> list[ClassAdvice]:
    """A TTL per class; stepped down, least valuable first, while over the memory budget."""
    low, high = settings.cache_min_ttl_s, settings.cache_max_ttl_s
    candidates = sorted({low, high, *(int(2**b) for b in range(BUCKETS) if low <= 2**b <= high)})
    models = {name: HitModel(c) for name, c in counters.items()}
    chosen: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for name, c in counters.items():
        current = policy.ttl_for(name)
        if c.repeats < settings.cache_min_reuses:
            chosen[name] = current
            reasons[name] = (
                f"only {c.repeats} repeated requests observed (< {settings.cache_min_reuses}): "
                "TTL kept"
            )
            continue
        model = models[name]
        best = model.hit_rate(high)
        target = settings.cache_reuse_coverage * best
        ttl = next((t for t in candidates if model.hit_rate(t) >= target), high)
        chosen[name] = ttl
        reasons[name] = (
            (
                f"{c.repeats} of {c.lookups} lookups repeat an earlier request; a {ttl} s TTL is "
                f"predicted to hit {model.hit_rate(ttl):.0%}, {model.hit_rate(ttl) / best:.0%} of "
                f"the {best:.0%} an unbounded TTL would "
                f"(target {settings.cache_reuse_coverage:.0%}); "
                f"the current {current} s: {model.hit_rate(current):.0%}"
            )
            if best
            else f"repeats never come back within {high} s: TTL {ttl} s"
        )
    budget = memory.budget_bytes
    if budget is not None:

        def total() -> int:
            return sum(_memory(counters[n], t, window_s) for n, t in chosen.items())

        while total() > budget:
            # Step down the class that loses the fewest hits per byte saved.
            pick: tuple[float, str, int] | None = None
            for name, ttl in chosen.items():
                lower = max([t for t in candidates if t < ttl], default=ttl)
                if lower >= ttl:
                    continue
                c, model = counters[name], models[name]
                saved = _memory(c, ttl, window_s) - _memory(c, lower, window_s)
                lost = (model.hit_rate(ttl) - model.hit_rate(lower)) * c.lookups
                if saved > 0 and (pick is None or lost / saved < pick[0]):
                    pick = (lost / saved, name, lower)
            if pick is None:
                break
            _, name, lower = pick
            chosen[name] = lower
            reasons[name] += f"; lowered to {lower} s to fit the memory budget of {budget} B"
    advice = []
    for name, c in sorted(counters.items()):
        model, ttl, current = models[name], chosen[name], policy.ttl_for(name)
        advice.append(
            ClassAdvice(
                query_class=name,
                hits=c.hits,
                misses=c.misses,
                hit_rate=round(c.hits / c.lookups, 4) if c.lookups else 0.0,
                repeats_observed=c.repeats,
                current_ttl_s=current,
                recommended_ttl_s=ttl,
                predicted_hit_rate_now=round(model.hit_rate(current), 4),
                predicted_hit_rate=round(model.hit_rate(ttl), 4),
                best_possible_hit_rate=round(model.hit_rate(high), 4),
                avg_entry_bytes=int(c.stored_bytes / c.stores) if c.stores else 0,
                estimated_memory_bytes=_memory(c, ttl, window_s),
                reason=reasons[name],
            )
        )
    return advice


def size_limit(counters: dict[str, ClassCounters], policy: CachePolicy) -> tuple[int, str]:
    """Raise the entry size limit when more than 1% of answers were too big to cache."""
    stores = sum(c.stores for c in counters.values())
    too_big = sum(c.too_big for c in counters.values())
    sizes = [sum(c.sizes[b] for c in counters.values()) for b in range(BUCKETS)]
    running, p99 = 0, 0
    for b, count in enumerate(sizes):
        running += count
        if stores and running >= 0.99 * stores:
            p99 = int(2**b)
            break
    attempts = stores + too_big
    if attempts and too_big / attempts > 0.01:
        limit = min(1024 * 1024, policy.max_entry_bytes * 2)
        return limit, (
            f"{too_big} of {attempts} answers ({too_big / attempts:.1%}) exceeded "
            f"{policy.max_entry_bytes} B and were not cached"
        )
    return policy.max_entry_bytes, (
        f"{too_big} of {attempts} answers were too big; 99% of stored entries are ≤ {p99} B"
    )


def compression_threshold(policy: CachePolicy, memory: MemoryFigures) -> tuple[int, str]:
    """Compress smaller entries when memory is tight; otherwise keep the measured default."""
    tight = memory.max_bytes and memory.used_bytes > 0.8 * memory.max_bytes
    if tight or memory.evicted_keys:
        return min(policy.compress_min_bytes, 512), (
            f"memory is tight ({memory.used_bytes} of {memory.max_bytes} B used, "
            f"{memory.evicted_keys} evictions): compress entries from 512 B"
        )
    return policy.compress_min_bytes, (
        f"{memory.used_bytes} B used of {memory.max_bytes or 'unlimited'}, no evictions: keep "
        f"{policy.compress_min_bytes} B (zstd-3 halves 2 KiB entries, tests/bench/README.md)"
    )


def eviction_policy(memory: MemoryFigures) -> tuple[str, str]:
    return RECOMMENDED_EVICTION, (
        f"every key this product writes has a TTL and reuse is skewed, so evict the least "
        f"frequently used keys with a TTL; now {memory.eviction_policy!r}, "
        f"{memory.evicted_keys} evictions and {memory.expired_keys} expiries since start"
    )


def window_hours(since: datetime, until: datetime) -> list[str]:
    """The hour suffixes of the counters that cover [since, until]."""
    hours, at = [], since.replace(minute=0, second=0, microsecond=0)
    while at <= until:
        hours.append(at.strftime("%Y%m%d%H"))
        at += timedelta(hours=1)
    return hours


def stats_pattern() -> str:
    return f"{PREFIX}:stats:*"


def report(
    advice: list[ClassAdvice],
    memory: MemoryFigures,
    policy: CachePolicy,
    recommended: CachePolicy,
    reasons: dict[str, str],
    since: datetime,
    until: datetime,
) -> dict[str, Any]:
    return {
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "memory": asdict(memory),
        "classes": [asdict(a) for a in advice],
        "current_policy": policy.model_dump(),
        "recommended_policy": recommended.model_dump(),
        "reasons": reasons,
        "generated_at": datetime.now(UTC).isoformat(),
    }

"""Cache analysis: what the counters say, and the policy they argue for.

Input: the per-class hourly counters the cache writes in the lookup's round trip (hits, misses,
stores, sizes, and the reuse-age histograms ``reuse_le_<b>`` for hits and ``expired_le_<b>`` for
reuses that found their answer expired), plus Redis ``INFO``. Output: per class a TTL that covers
``cache_reuse_coverage`` of the observed reuses, bounded by the memory budget; the entry size
limit, the compression threshold and the eviction policy — each with the figures behind it.
"""

from __future__ import annotations

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
    reuse: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    expired: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    sizes: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, raw: dict[str, int]) -> None:
        for name in ("hits", "misses", "stores", "stored_bytes", "too_big"):
            setattr(self, name, getattr(self, name) + raw.get(name, 0))
        for prefix, target in (
            ("reuse_le_", self.reuse),
            ("expired_le_", self.expired),
            ("size_le_", self.sizes),
        ):
            for b in range(BUCKETS):
                target[b] += raw.get(f"{prefix}{b}", 0)

    @property
    def reuses(self) -> int:
        return sum(self.reuse) + sum(self.expired)


@dataclass
class ClassAdvice:
    query_class: str
    hits: int
    misses: int
    hit_rate: float
    reuses_observed: int
    current_ttl_s: int
    recommended_ttl_s: int
    reuses_covered_now: float
    reuses_covered_recommended: float
    predicted_hit_rate: float
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


def coverage(c: ClassCounters, ttl_s: int) -> float:
    """Share of observed reuses whose age was within ``ttl_s`` (bucket resolution)."""
    total = c.reuses
    if not total:
        return 0.0
    limit = ttl_bucket(ttl_s)
    covered = sum(c.reuse[: limit + 1]) + sum(c.expired[: limit + 1])
    return covered / total


def covering_ttl(c: ClassCounters, share: float) -> int:
    """The smallest bucket bound (2^b s) covering ``share`` of the reuses."""
    total, running = c.reuses, 0
    for b in range(BUCKETS):
        running += c.reuse[b] + c.expired[b]
        if running >= share * total:
            return int(2**b)
    return int(2 ** (BUCKETS - 1))


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
    chosen: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for name, c in counters.items():
        current = policy.ttl_for(name)
        if c.reuses < settings.cache_min_reuses:
            chosen[name] = current
            reasons[name] = f"only {c.reuses} reuses observed (< {settings.cache_min_reuses}): kept"
            continue
        ttl = min(high, max(low, covering_ttl(c, settings.cache_reuse_coverage)))
        chosen[name] = ttl
        reasons[name] = (
            f"{coverage(c, ttl):.0%} of {c.reuses} reuses are at most {ttl} s old "
            f"(target {settings.cache_reuse_coverage:.0%}); the current {current} s covers "
            f"{coverage(c, current):.0%}"
        )
    budget = memory.budget_bytes
    if budget is not None:

        def total() -> int:
            return sum(_memory(counters[n], t, window_s) for n, t in chosen.items())

        while total() > budget:
            # Step down the class that loses the fewest reuses per byte saved.
            best: tuple[float, str, int] | None = None
            for name, ttl in chosen.items():
                lower = max(low, int(2 ** max(0, ttl_bucket(ttl) - 1)))
                if lower >= ttl:
                    continue
                c = counters[name]
                saved = _memory(c, ttl, window_s) - _memory(c, lower, window_s)
                lost = (coverage(c, ttl) - coverage(c, lower)) * c.reuses
                if saved > 0 and (best is None or lost / saved < best[0]):
                    best = (lost / saved, name, lower)
            if best is None:
                break
            _, name, lower = best
            chosen[name] = lower
            reasons[name] += f"; lowered to {lower} s to fit the memory budget of {budget} B"
    advice = []
    for name, c in sorted(counters.items()):
        lookups = c.hits + c.misses
        ttl = chosen[name]
        covered = coverage(c, ttl)
        predicted = (covered * c.reuses / lookups) if lookups and c.reuses else 0.0
        advice.append(
            ClassAdvice(
                query_class=name,
                hits=c.hits,
                misses=c.misses,
                hit_rate=round(c.hits / lookups, 4) if lookups else 0.0,
                reuses_observed=c.reuses,
                current_ttl_s=policy.ttl_for(name),
                recommended_ttl_s=ttl,
                reuses_covered_now=round(coverage(c, policy.ttl_for(name)), 4),
                reuses_covered_recommended=round(covered, 4),
                predicted_hit_rate=round(predicted, 4),
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
